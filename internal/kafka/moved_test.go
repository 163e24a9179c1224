package kafka_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/kafkatest"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/testkit"
)

// Groups that move to a broker the cached metadata does not know (a
// broker added to the cluster takes over their coordination) are found in
// the same poll: the poll sees groups vanish from their coordinator's
// listing, refreshes the metadata and asks the new broker. Every one of the
// 39 groups is in every poll's observation, fresh; before, the moved
// groups were absent, with no error, until the next offsets poll refreshed
// the metadata of the other loop's client (which the groups loop never
// saw).
func TestGroupsMovedToUnknownBroker(t *testing.T) {
	w := newFaultWorld(t, 39)
	const interval = time.Second
	e := kafkatest.NewExporter(t, kafkatest.Config(t, w.addrs, map[string]string{"GROUP_POLL_INTERVAL": interval.String()}))
	e.Poll(t)
	if n := len(e.Store.Current().Groups.Groups); n != 39 {
		t.Fatalf("%d groups before the move, want 39", n)
	}
	metadataBefore := apiRequests(t, e, "Metadata")

	added, _, err := w.c.AddNode(-1, 0)
	if err != nil {
		t.Fatal(err)
	}
	moved := 0
	for g := range w.coordinator {
		if w.c.CoordinatorFor(g) == added {
			moved++
		}
	}
	if moved == 0 {
		t.Fatalf("no group moved to the new broker %d", added)
	}

	check := func(when string) {
		t.Helper()
		start := time.Now()
		if err := e.Poller.GroupsPoll(context.Background(), e.Store); err != nil {
			t.Fatalf("%s: poll: %v", when, err)
		}
		if took := time.Since(start); took > interval {
			t.Errorf("%s: poll took %s, more than the interval %s", when, took, interval)
		}
		snap := e.Store.Current().Groups
		onNew := 0
		for g := range w.coordinator {
			got := snap.Groups[g]
			if got == nil {
				t.Errorf("%s: group %s (coordinator now %d) missing", when, g, w.c.CoordinatorFor(g))
				continue
			}
			if got.ObservedAt.Before(start) {
				t.Errorf("%s: group %s observed %s before the poll", when, g, start.Sub(got.ObservedAt))
			}
			if want := w.c.CoordinatorFor(g); got.Coordinator != want {
				t.Errorf("%s: group %s coordinator %d, want %d", when, g, got.Coordinator, want)
			}
			if got.Coordinator == added {
				onNew++
			}
		}
		if onNew != moved {
			t.Errorf("%s: %d groups observed on the new broker, want %d", when, onNew, moved)
		}
	}
	t.Logf("%d of 39 groups moved to the new broker %d", moved, added)
	check("the poll after the move")
	if got := apiRequests(t, e, "Metadata") - metadataBefore; got != 1 {
		t.Errorf("%v Metadata requests for the move, want 1", got)
	}
	check("the next poll")
	if got := apiRequests(t, e, "Metadata") - metadataBefore; got != 1 {
		t.Errorf("%v Metadata requests after a quiet poll, want still 1 (refresh only when a group vanishes)", got)
	}

	// The coordinators move again among the four known brokers: nothing
	// to refresh for, but the groups are still all there, fresh.
	w.c.RehashCoordinators()
	testkit.Eventually(t, 10*time.Second, 0, "groups found after a rehash", func() error {
		start := time.Now()
		_ = e.Poller.GroupsPoll(context.Background(), e.Store)
		for g := range w.coordinator {
			got := e.Store.Current().Groups.Groups[g]
			if got == nil || got.ObservedAt.Before(start) {
				return fmt.Errorf("group %s not fresh: %+v", g, got)
			}
		}
		return nil
	})
}

func apiRequests(t *testing.T, e *kafkatest.Exporter, api string) float64 {
	t.Helper()
	v, _ := testkit.Collect(t, e.Poller.Metrics()).Get("kafka_rebalance_exporter_kafka_requests_total", "api", api)
	return v
}
