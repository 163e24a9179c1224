package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/kafka"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/kafkatest"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/store"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/testkit"
)

// The poller leaves nothing behind across reconnects: started and stopped
// 20 times against one cluster, with one broker's connections dropped
// (every request to it fails, so sarama closes and reopens them) in every
// third run and one broker removed and added back on the same port
// (a restart) in every fifth, the goroutine count returns to what it was
// before the first start. TestMain's goleak check covers the rest.
func TestPollerStartStopAcrossReconnectsLeaksNothing(t *testing.T) {
	w := newFaultWorld(t, 12)
	victim := w.busiest()
	_, port, err := net.SplitHostPort(w.addrs[victim])
	if err != nil {
		t.Fatal(err)
	}
	victimPort, _ := strconv.Atoi(port)
	var drop atomic.Bool
	w.c.Control(func(kmsg.Request) (kmsg.Response, error, bool) {
		w.c.KeepControl()
		if drop.Load() && w.c.CurrentNode() == victim {
			return nil, errors.New("injected connection drop"), true
		}
		return nil, nil, false
	})
	cfg := kafkatest.Config(t, w.addrs, map[string]string{
		"GROUP_POLL_INTERVAL": "100ms", "POLL_INTERVAL": "200ms", "REQUEST_TIMEOUT": "2s"})
	sc, err := kafka.SaramaConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// kfake's own goroutines for a connection end shortly after the
	// connection; settle before and after.
	settle := func() int {
		n := runtime.NumGoroutine()
		for range 20 {
			time.Sleep(50 * time.Millisecond) // measuring a quiet count, not synchronising
			m := runtime.NumGoroutine()
			if m == n {
				break
			}
			n = m
		}
		return n
	}
	baseline := settle()
	peak := 0
	for run := range 20 {
		p := kafka.New(cfg, sc, zerolog.Nop())
		st := store.New(store.Options{Log: zerolog.Nop(), Analyzers: store.NewAnalyzers(cfg, zerolog.Nop())})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); p.Run(ctx, st) }()
		polls := func(loop string) float64 {
			v, _ := testkit.Collect(t, p.Metrics()).Get(kafka.SelfPrefix+"polls_total", "loop", loop)
			return v
		}
		waitPolls := func(n float64, what string) {
			testkit.Eventually(t, 20*time.Second, 20*time.Millisecond, fmt.Sprintf("run %d: %s", run, what), func() error {
				if g, o := polls("groups"), polls("offsets"); g < n || o < n {
					return fmt.Errorf("%v groups and %v offsets polls, want %v", g, o, n)
				}
				return nil
			})
		}
		waitPolls(2, "polls")
		if !st.Current().Ready() {
			t.Fatalf("run %d: not ready after two polls of each loop", run)
		}
		if run%3 == 1 {
			drop.Store(true)
			waitPolls(4, "polls while a broker drops its connections")
			drop.Store(false)
			waitPolls(6, "polls after the drops")
		}
		if run%5 == 4 {
			if err := w.c.RemoveNode(victim); err != nil {
				t.Fatal(err)
			}
			waitPolls(4, "polls with a broker gone")
			if _, _, err := w.c.AddNode(victim, victimPort); err != nil {
				t.Fatalf("restart broker %d on port %d: %v", victim, victimPort, err)
			}
			waitPolls(6, "polls after the restart")
		}
		peak = max(peak, runtime.NumGoroutine())
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("run %d: Run did not return within 10s of cancel", run)
		}
		if err := p.Close(); err != nil {
			t.Logf("run %d: close: %v", run, err)
		}
	}
	testkit.Eventually(t, 10*time.Second, 100*time.Millisecond, "goroutines back to the baseline", func() error {
		if n := runtime.NumGoroutine(); n > baseline+2 {
			buf := make([]byte, 1<<16)
			return fmt.Errorf("%d goroutines, %d before the first start (peak %d)\n%s", n, baseline, peak, buf[:runtime.Stack(buf, true)])
		}
		return nil
	})
	t.Logf("goroutines: %d before, peak %d while polling, %d after 20 start/stop cycles", baseline, peak, runtime.NumGoroutine())
}
