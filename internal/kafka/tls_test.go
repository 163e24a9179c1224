package kafka_test

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/kafka"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/kafkatest"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/testkit"
)

func TestTLS(t *testing.T) {
	ca := testkit.NewCA(t, "kafkatest")
	c := kafkatest.NewCluster(t, kfake.TLS(&tls.Config{Certificates: []tls.Certificate{ca.Server(t, "kafkatest").TLS}, MinVersion: tls.VersionTLS12}))
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, ca.PEM, 0o600); err != nil {
		t.Fatal(err)
	}

	verified := kafkatest.NewExporter(t, kafkatest.Config(t, c.ListenAddrs(), map[string]string{"TLS_ENABLED": "true", "TLS_CA_FILE": caFile}))
	verified.Poll(t)
	if got := verified.Store.Current().Offsets.Brokers; got != 3 {
		t.Fatalf("brokers over TLS: %d", got)
	}

	// Without the CA the broker's certificate must be refused.
	otherFile := filepath.Join(dir, "other.pem")
	if err := os.WriteFile(otherFile, testkit.NewCA(t, "other").PEM, 0o600); err != nil {
		t.Fatal(err)
	}
	untrusted := kafkatest.NewExporter(t, kafkatest.Config(t, c.ListenAddrs(), map[string]string{"TLS_ENABLED": "true", "TLS_CA_FILE": otherFile}))
	if err := untrusted.TryPoll(); err == nil {
		t.Fatal("poll succeeded against a broker whose certificate is signed by an untrusted CA")
	}
	if n := untrusted.PollErrors(t, kafka.StageConnect); n == 0 {
		t.Fatal("certificate failure not counted as a connect error")
	}
}
