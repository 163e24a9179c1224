package main

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/config"
)

func setenv(t *testing.T, m map[string]string) {
	for k, v := range m {
		t.Setenv(k, v)
	}
}

func TestFlagsDefaultFromConfiguration(t *testing.T) {
	setenv(t, map[string]string{
		"KRE_BROKERS": "k1:9092,k2:9092", "KRE_DEMO_CHURN_INTERVAL": "5s", "KRE_DEMO_STORM": "true",
		"KRE_DEMO_PRODUCE_RATE": "7",
	})
	cfg, err := config.Load()
	if err != nil {
		t.Fatal(err)
	}
	o, err := parseFlags(cfg, nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.brokers != "k1:9092,k2:9092" || o.churnInterval != 5*time.Second || !o.storm || o.produceRate != 7 {
		t.Errorf("options %+v", o)
	}
	// A flag wins over its variable.
	o, err = parseFlags(cfg, []string{"-storm=false", "-brokers", "x:1"}, io.Discard)
	if err != nil || o.storm || o.brokers != "x:1" {
		t.Errorf("flags did not override the environment: %+v, %v", o, err)
	}
}

func TestInvalidSettingsExitWithUsageError(t *testing.T) {
	for _, c := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{nil, map[string]string{"KRE_DEMO_CHURN_INTERVAL": "soon"}, "KRE_DEMO_CHURN_INTERVAL"},
		{nil, map[string]string{"KRE_DEMO_STORM": "maybe"}, "KRE_DEMO_STORM"},
		{nil, map[string]string{"KRE_LOG_LEVEL": "loud"}, "KRE_LOG_LEVEL"},
		{[]string{"-produce-rate", "0"}, nil, "-produce-rate"},
		{[]string{"-brokers", " , "}, nil, "no brokers"},
		{[]string{"extra"}, nil, "unexpected arguments"},
	} {
		t.Run(strings.Join(c.args, " ")+c.want, func(t *testing.T) {
			setenv(t, c.env)
			var stderr strings.Builder
			code := run(context.Background(), c.args, &stderr)
			if code != 2 || !strings.Contains(stderr.String(), c.want) {
				t.Errorf("args %v env %v: exit %d, stderr %q; want 2 and %q", c.args, c.env, code, stderr.String(), c.want)
			}
		})
	}
}

func TestHelpExitsZero(t *testing.T) {
	var stderr strings.Builder
	if code := run(context.Background(), []string{"-h"}, &stderr); code != 0 || !strings.Contains(stderr.String(), "-storm") {
		t.Errorf("exit %d, usage %q", code, stderr.String())
	}
}
