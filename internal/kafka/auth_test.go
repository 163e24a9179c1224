package kafka_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/kafka"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/kafkatest"
)

func TestSASL(t *testing.T) {
	for _, mech := range []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"} {
		t.Run(mech, func(t *testing.T) {
			c := kafkatest.NewCluster(t, kfake.EnableSASL(), kfake.Superuser(mech, "admin", "s3cret"))
			pwFile := filepath.Join(t.TempDir(), "pw")
			if err := os.WriteFile(pwFile, []byte("s3cret\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			good := kafkatest.NewExporter(t, kafkatest.Config(t, c.ListenAddrs(), map[string]string{
				"SASL_MECHANISM": mech, "SASL_USERNAME": "admin", "SASL_PASSWORD_FILE": pwFile,
			}))
			good.Poll(t)
			if !good.Store.Current().Ready() {
				t.Fatal("not ready after a successful poll")
			}

			bad := kafkatest.NewExporter(t, kafkatest.Config(t, c.ListenAddrs(), map[string]string{
				"SASL_MECHANISM": mech, "SASL_USERNAME": "admin", "SASL_PASSWORD": "wrong", "SASL_PASSWORD_FILE": "",
			}))
			err := bad.TryPoll()
			if err == nil {
				t.Fatal("poll with a wrong password succeeded")
			}
			snap := bad.Store.Current()
			if snap.Ready() || snap.Loops["groups"].LastOK {
				t.Fatal("store reports success after an authentication failure")
			}
			if bad.PollErrors(t, kafka.StageConnect) == 0 {
				t.Fatal("authentication failure not counted under stage connect")
			}
			// kfake drops the connection on a failed SASL exchange, so the
			// error can only say the brokers could not be reached.
			if !strings.Contains(err.Error(), "connect") {
				t.Fatalf("error does not name the failed stage: %v", err)
			}
		})
	}
}

// A broker that hangs must cost one request timeout, not a stuck poll.
func TestPollHonoursRequestTimeout(t *testing.T) {
	c := kafkatest.NewCluster(t)
	e := kafkatest.NewExporter(t, kafkatest.Config(t, c.ListenAddrs(), map[string]string{"REQUEST_TIMEOUT": "1s"}))
	e.Poll(t)
	release := make(chan struct{})
	defer close(release)
	c.ControlKey(16, func(_ kmsgRequest) (kmsgResponse, error, bool) {
		c.KeepControl()
		c.SleepControl(func() { <-release })
		return nil, nil, false
	})
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := e.Poller.PollGroups(ctx)
	if err == nil {
		t.Fatal("poll succeeded against a hanging broker")
	}
	if took := time.Since(start); took > 8*time.Second {
		t.Fatalf("poll took %s with a 1s request timeout", took)
	}
}
