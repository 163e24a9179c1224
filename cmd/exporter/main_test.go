package main

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/config"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/kafka"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/kafkatest"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/offsetslog"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/testkit"
)

func TestBadConfigurationExitsTwoWithOneClearLine(t *testing.T) {
	for _, tc := range []struct{ env, value, want string }{
		{"POLL_INTERVAL", "soon", "KRE_POLL_INTERVAL"},
		{"POLL_INTERVAL", "-1s", "KRE_POLL_INTERVAL: must be a positive duration"},
		{"BROKERS", "no-port", "KRE_BROKERS: \"no-port\" is not host:port"},
		{"GROUP_INCLUDE", "(", "KRE_GROUP_INCLUDE: not a valid regular expression"},
		{"KAFKA_VERSION", "banana", "KRE_KAFKA_VERSION"},
		{"LOG_FORMAT", "xml", "KRE_LOG_FORMAT"},
		{"SASL_MECHANISM", "GSSAPI", "KRE_SASL_MECHANISM"},
		{"SASL_PASSWORD_FILE", "/nonexistent/secret", "KRE_SASL_PASSWORD_FILE"},
		{"TLS_CA_FILE", "main_test.go", "KRE_TLS_CA_FILE: no PEM certificate found"},
	} {
		t.Run(tc.env+"="+tc.value, func(t *testing.T) {
			t.Setenv("KRE_"+tc.env, tc.value)
			if tc.env == "TLS_CA_FILE" {
				t.Setenv("KRE_TLS_ENABLED", "true")
			}
			if tc.env == "SASL_PASSWORD_FILE" {
				t.Setenv("KRE_SASL_MECHANISM", "PLAIN")
				t.Setenv("KRE_SASL_USERNAME", "u")
			}
			var stdout, stderr bytes.Buffer
			code := run(nil, &stdout, &stderr)
			if code != 2 {
				t.Fatalf("exit code %d, want 2; stderr: %s", code, stderr.String())
			}
			msg := strings.TrimSpace(stderr.String())
			if strings.Count(msg, "\n") != 0 || !strings.Contains(msg, tc.want) {
				t.Fatalf("stderr %q: want one line containing %q", msg, tc.want)
			}
		})
	}
}

func TestHelpListsEveryVariable(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"-help"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, v := range []string{"KRE_BROKERS", "KRE_POLL_INTERVAL", "KRE_SASL_PASSWORD_FILE", "KRE_TLS_CA_FILE", "KRE_LISTEN_ADDRESS", "9308"} {
		if !strings.Contains(stderr.String(), v) {
			t.Errorf("-help output lacks %s", v)
		}
	}
}

func TestPasswordNeverLogged(t *testing.T) {
	t.Setenv("KRE_SASL_MECHANISM", "SCRAM-SHA-512")
	t.Setenv("KRE_SASL_USERNAME", "exporter")
	t.Setenv("KRE_SASL_PASSWORD", "hunter2-secret")
	cfg, err := config.Load()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	log := zerolog.New(&buf)
	log.Info().Interface("config", cfg.Redacted()).Msg("x")
	if strings.Contains(buf.String(), "hunter2") {
		t.Fatalf("password logged: %s", buf.String())
	}
}

// Brokers down at start: the process stays up, is not ready, reports
// up=0, and recovers by itself once the cluster appears.
func TestUnreachableAtStartThenRecovers(t *testing.T) {
	ports := testkit.FreePorts(t, 4)
	httpAddr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	t.Setenv("KRE_BROKERS", fmt.Sprintf("127.0.0.1:%d", ports[1]))
	t.Setenv("KRE_LISTEN_ADDRESS", httpAddr)
	t.Setenv("KRE_GROUP_POLL_INTERVAL", "200ms")
	t.Setenv("KRE_POLL_INTERVAL", "300ms")
	t.Setenv("KRE_REQUEST_TIMEOUT", "1s")

	serveFromEnv(t)

	base := "http://" + httpAddr
	testkit.Eventually(t, 10*time.Second, 25*time.Millisecond, "up 0 with connect errors counted", func() error {
		s, err := testkit.Scrape(base + "/metrics")
		if err != nil {
			return err
		}
		if up, ok := s.Get("kafka_rebalance_exporter_up"); !ok || up != 0 {
			return fmt.Errorf("up is not 0 yet")
		}
		if _, ok := s.Get("kafka_rebalance_exporter_poll_errors_total", "stage", "connect"); !ok {
			return fmt.Errorf("no connect errors counted")
		}
		return nil
	})
	if code, _, _ := testkit.Get(base + "/readyz"); code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz = %d before Kafka exists, want 503", code)
	}
	if code, _, _ := testkit.Get(base + "/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz = %d, want 200", code)
	}

	kafkatest.NewCluster(t, kfake.Ports(ports[1], ports[2], ports[3]))
	testkit.Eventually(t, 30*time.Second, 25*time.Millisecond, "ready with up 1 and 3 brokers", func() error {
		if _, err := testkit.HTTPGet(base + "/readyz"); err != nil {
			return err
		}
		s, err := testkit.Scrape(base + "/metrics")
		if err != nil {
			return err
		}
		if up, _ := s.Get("kafka_rebalance_exporter_up"); up != 1 {
			return fmt.Errorf("not recovered yet: up %v", up)
		}
		if brokers, _ := s.Get("kafka_brokers"); brokers != 3 {
			return fmt.Errorf("not recovered yet: %v brokers", brokers)
		}
		return nil
	})
}

func TestOffsetsLogMetricsUnderSelfPrefix(t *testing.T) {
	if !strings.HasPrefix(offsetslog.MetricPrefix, kafka.SelfPrefix) {
		t.Errorf("the __consumer_offsets reader's prefix %q is not under the exporter's %q", offsetslog.MetricPrefix, kafka.SelfPrefix)
	}
}
