package main

import (
	"bytes"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/config"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/kafkatest"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/testkit"
)

// KRE_CONST_LABELS (kafka_exporter's --kafka.labels) puts its labels on
// every series the running exporter serves: the rendered snapshot and the
// live registry (poller, build, Go and process metrics) alike.
func TestConstLabelsOnEveryServedSeries(t *testing.T) {
	c := kafkatest.NewCluster(t)
	kafkatest.CreateTopic(t, c.ListenAddrs(), "orders", 2)
	kafkatest.Produce(t, c.ListenAddrs(), "orders", []int32{0, 1}, 3)
	kafkatest.ConsumeAll(t, c.ListenAddrs(), "billing", []string{"orders"})

	addr := testkit.FreeAddr(t)
	t.Setenv("KRE_BROKERS", strings.Join(c.ListenAddrs(), ","))
	t.Setenv("KRE_LISTEN_ADDRESS", addr)
	t.Setenv("KRE_GROUP_POLL_INTERVAL", "200ms")
	t.Setenv("KRE_POLL_INTERVAL", "300ms")
	t.Setenv("KRE_CONST_LABELS", "cluster=prod, region=eu-west-1")
	serveFromEnv(t)

	var scraped testkit.Series
	testkit.Eventually(t, 30*time.Second, 25*time.Millisecond, "billing's lag served", func() error {
		s, err := testkit.Scrape("http://" + addr + "/metrics")
		if err != nil {
			return err
		}
		if _, ok := s.Get("kafka_consumergroup_lag_sum", "cluster", "prod", "consumergroup", "billing", "region", "eu-west-1", "topic", "orders"); !ok {
			return fmt.Errorf("no lag_sum of billing with the constant labels yet")
		}
		scraped = s
		return nil
	})
	for key := range scraped {
		_, labels, _ := testkit.SplitKey(key)
		if labels["cluster"] != "prod" || labels["region"] != "eu-west-1" {
			t.Errorf("%s lacks the constant labels", key)
		}
	}
	// Both halves of /metrics were checked: snapshot and live series.
	for _, need := range []string{"kafka_consumergroup_lag", "kafka_rebalance_exporter_build_info", "kafka_rebalance_exporter_snapshot_age_seconds",
		"kafka_rebalance_exporter_polls_total", "go_goroutines", "process_cpu_seconds_total"} {
		if len(scraped.Family(need)) == 0 {
			t.Errorf("scrape has no %s", need)
		}
	}
}

func TestConstLabelsRejected(t *testing.T) {
	for _, tc := range []struct{ value, want string }{
		{"cluster", `"cluster" is not name=value`},
		{"cluster=", `"cluster=" is not name=value`},
		{"1cluster=x", `"1cluster" is not a label name`},
		{"clus-ter=x", `"clus-ter" is not a label name`},
		{"__name__=x", "reserved to Prometheus"},
		{"topic=x", `"topic" is a label the exporter or Prometheus sets itself`},
		{"job=x", `"job" is a label the exporter or Prometheus sets itself`},
		{"cluster=a,cluster=b", `label "cluster" given twice`},
	} {
		t.Run(tc.value, func(t *testing.T) {
			t.Setenv("KRE_CONST_LABELS", tc.value)
			var stdout, stderr bytes.Buffer
			if code := run(nil, &stdout, &stderr); code != exitConfig {
				t.Fatalf("exit %d, want %d; stderr: %s", code, exitConfig, stderr.String())
			}
			msg := strings.TrimSpace(stderr.String())
			if strings.Contains(msg, "\n") || !strings.Contains(msg, "KRE_CONST_LABELS: ") || !strings.Contains(msg, tc.want) {
				t.Errorf("stderr %q: want one line naming KRE_CONST_LABELS with %q", msg, tc.want)
			}
		})
	}
}

func TestConstLabelsParsed(t *testing.T) {
	for spec, want := range map[string]map[string]string{
		"":                               nil,
		" , ":                            nil,
		"cluster=prod":                   {"cluster": "prod"},
		" cluster = prod ,region=eu-1,":  {"cluster": "prod", "region": "eu-1"},
		"dsn=host=a":                     {"dsn": "host=a"},
		"env=staging,_team=payments-ops": {"env": "staging", "_team": "payments-ops"},
	} {
		t.Setenv("KRE_CONST_LABELS", spec)
		cfg, err := config.Load()
		if err != nil {
			t.Fatalf("%q: %v", spec, err)
		}
		if !maps.Equal(cfg.Labels, want) {
			t.Errorf("%q parsed as %v, want %v", spec, cfg.Labels, want)
		}
	}
}

// KRE_FILTER_MODE=unanchored matches the filters anywhere in a name, as
// kafka_exporter's --group.filter and --topic.filter do; the default
// topic exclusion hides internal topics in both modes, and an empty one
// shows them, as kafka_exporter does by default.
func TestFilterModes(t *testing.T) {
	type check struct {
		kind, name string
		exported   bool
	}
	for _, tc := range []struct {
		env    map[string]string
		checks []check
	}{
		{map[string]string{"GROUP_INCLUDE": "billing", "TOPIC_INCLUDE": "orders"}, []check{
			{"group", "billing", true}, {"group", "old-billing-v2", false},
			{"topic", "orders", true}, {"topic", "orders-dlq", false},
			{"topic", "__consumer_offsets", false},
		}},
		{map[string]string{"FILTER_MODE": "unanchored", "GROUP_INCLUDE": "billing", "TOPIC_INCLUDE": "orders", "GROUP_EXCLUDE": "^old"}, []check{
			{"group", "billing", true}, {"group", "new-billing-v2", true}, {"group", "old-billing-v2", false}, {"group", "shipping", false},
			{"topic", "orders", true}, {"topic", "orders-dlq", true}, {"topic", "payments", false},
		}},
		{map[string]string{"FILTER_MODE": "unanchored"}, []check{
			{"topic", "__consumer_offsets", false}, {"topic", "__transaction_state", false},
			{"topic", "orders__v2", true}, {"group", "anything", true},
		}},
		{map[string]string{"TOPIC_EXCLUDE": "^__.*"}, []check{{"topic", "__consumer_offsets", false}, {"topic", "orders__v2", true}}},
		{map[string]string{"TOPIC_EXCLUDE": ""}, []check{{"topic", "__consumer_offsets", true}}},
		{map[string]string{"FILTER_MODE": "unanchored", "TOPIC_EXCLUDE": "^$"}, []check{{"topic", "__consumer_offsets", true}, {"topic", "orders", true}}},
	} {
		t.Run(fmt.Sprint(tc.env), func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv("KRE_"+k, v)
			}
			cfg, err := config.Load()
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range tc.checks {
				got := cfg.Filters.Topic(c.name)
				if c.kind == "group" {
					got = cfg.Filters.Group(c.name)
				}
				if got != c.exported {
					t.Errorf("%s %q exported %v, want %v", c.kind, c.name, got, c.exported)
				}
			}
		})
	}

	t.Setenv("KRE_FILTER_MODE", "regex")
	var stdout, stderr bytes.Buffer
	if code := run(nil, &stdout, &stderr); code != exitConfig || !strings.Contains(stderr.String(), "KRE_FILTER_MODE: \"regex\" is not anchored or unanchored") {
		t.Errorf("KRE_FILTER_MODE=regex: exit %d, stderr %q", code, stderr.String())
	}
}
