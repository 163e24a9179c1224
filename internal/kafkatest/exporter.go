package kafkatest

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/config"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/kafka"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/store"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/testkit"
)

// Config loads the exporter configuration for addrs, with extra settings
// given as KRE_-less variable names (e.g. "GROUP_EXCLUDE": "x").
func Config(t *testing.T, addrs []string, env map[string]string) *config.Config {
	t.Helper()
	t.Setenv(config.Prefix+"_BROKERS", strings.Join(addrs, ","))
	t.Setenv(config.Prefix+"_REQUEST_TIMEOUT", "5s")
	for k, v := range env {
		t.Setenv(config.Prefix+"_"+k, v)
	}
	return load(t)
}

// ConfigTB is Config for benchmarks, which have no Setenv.
func ConfigTB(tb testing.TB, addrs []string, env map[string]string) *config.Config {
	tb.Helper()
	env2 := map[string]string{"BROKERS": strings.Join(addrs, ","), "REQUEST_TIMEOUT": "5s"}
	for k, v := range env {
		env2[k] = v
	}
	for k, v := range env2 {
		key := config.Prefix + "_" + k
		old, had := os.LookupEnv(key)
		os.Setenv(key, v)
		tb.Cleanup(func() {
			if had {
				os.Setenv(key, old)
			} else {
				os.Unsetenv(key)
			}
		})
	}
	return load(tb)
}

func load(tb testing.TB) *config.Config {
	tb.Helper()
	cfg, err := config.Load()
	if err != nil {
		tb.Fatalf("config: %v", err)
	}
	return cfg
}

// Exporter is the exporter's Kafka side without HTTP: a poller feeding a
// store, polled on demand by the test.
type Exporter struct {
	Poller *kafka.Poller
	Store  *store.Store
}

// NewExporter builds a poller and store for cfg; the poller is closed when
// the test ends. Without TLS and SASL, every request the poller writes is
// recorded, and the test fails at its end if one was not read-only: the
// read-only check runs under every scenario a test sets up.
func NewExporter(t testing.TB, cfg *config.Config) *Exporter {
	t.Helper()
	sc, err := kafka.SaramaConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var requests *requestLog
	if !cfg.TLSEnabled && cfg.SASLMechanism == "" {
		requests = recordRequests(sc)
	}
	p := kafka.New(cfg, sc, zerolog.Nop())
	e := &Exporter{Poller: p, Store: store.New(store.Options{Log: zerolog.Nop(), Analyzers: store.NewAnalyzers(cfg, zerolog.Nop())})}
	t.Cleanup(func() {
		_ = e.Poller.Close()
		if requests != nil {
			requests.checkReadOnly(t)
		}
	})
	return e
}

// Poll runs one groups poll and one offsets poll, as the background loops
// would, and fails the test if either fails.
func (e *Exporter) Poll(t testing.TB) {
	t.Helper()
	if err := e.TryPoll(); err != nil {
		t.Fatalf("poll: %v", err)
	}
}

// TryPoll is Poll that returns the error instead of failing.
func (e *Exporter) TryPoll() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return errors.Join(e.Poller.GroupsPoll(ctx, e.Store), e.Poller.OffsetsPoll(ctx, e.Store))
}

// PollErrors is the exporter's kafka_rebalance_exporter_poll_errors_total
// for stage.
func (e *Exporter) PollErrors(t testing.TB, stage string) float64 {
	t.Helper()
	v, _ := testkit.Collect(t, e.Poller.Metrics()).Get(kafka.SelfPrefix+"poll_errors_total", "stage", stage)
	return v
}
