package collector_test

import (
	"flag"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/collector"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/cluster"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/kafka"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/lagtime"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/rebalance"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/status"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/store"
)

var update = flag.Bool("update", false, "rewrite testdata/golden.prom from the current output")

type fixedRequests map[string]uint64

func (f fixedRequests) RequestCounts() map[string]uint64 { return f }

func (f fixedRequests) DecodeErrors() uint64 { return 2 }

// goldenStore is a store fed a fixed history: a failed first groups poll,
// then successful polls of both loops.
func goldenStore(t *testing.T, t0 time.Time) *store.Store {
	t.Helper()
	st := store.NewStoreWith(zerolog.Nop(), store.Analyzers{
		Rebalance: rebalance.NewTracker(rebalance.Options{}),
		Lag:       lagtime.New(lagtime.Options{}),
		Health:    status.New(status.DefaultConfig()),
	})
	st.GroupsPolled(nil, 30*time.Millisecond, &kafka.StageError{Stage: kafka.StageConnect, Broker: -1, Err: os.ErrDeadlineExceeded})
	groups := &cluster.GroupsObservation{Time: t0, Groups: map[string]*cluster.Group{
		"orders-app": {Name: "orders-app", Type: cluster.GroupTypeClassic, ProtocolType: "consumer", State: "Stable", Assignor: "cooperative-sticky", Coordinator: 1,
			Members: []cluster.Member{
				{MemberID: "m-1", ClientID: "orders-1", ClientHost: "/10.0.0.1", Generation: 4, Assignment: cluster.Assignment{"orders": {0, 1}}},
				{MemberID: "m-2", ClientID: "orders-2", ClientHost: "/10.0.0.2", Generation: 4, Assignment: cluster.Assignment{"orders": {2}}},
			}},
		"next-gen": {Name: "next-gen", Type: cluster.GroupTypeConsumer, ProtocolType: "consumer", State: "Reconciling", Assignor: "uniform", Coordinator: 2,
			GroupEpoch: 7, AssignmentEpoch: 6,
			Members: []cluster.Member{{MemberID: "n-1", ClientID: "ng", ClientHost: "/10.0.0.3", Generation: -1, MemberEpoch: 6,
				Assignment: cluster.Assignment{"orders": {0}}, TargetAssignment: cluster.Assignment{"orders": {0, 1}}}}},
		"batch": {Name: "batch", Type: cluster.GroupTypeClassic, State: "Empty", Coordinator: 0},
	}}
	st.GroupsPolled(groups, 12*time.Millisecond, nil)
	offsets := &cluster.OffsetsObservation{Time: t0, Brokers: 3,
		Topics: map[string]*cluster.Topic{"orders": {Name: "orders", Partitions: map[int32]cluster.Partition{
			0: {Leader: 0, Newest: 120, Oldest: 0}, 1: {Leader: 1, Newest: 80, Oldest: 10}, 2: {Leader: 2, Newest: 0, Oldest: 0}}}},
		Committed: map[string]map[string]map[int32]int64{
			"orders-app": {"orders": {0: 100, 1: 80}},
			"batch":      {"orders": {0: 20, 1: 90}}, // 90 > log end: lag clamps to 0
		}}
	st.OffsetsPolled(offsets, 40*time.Millisecond, nil)

	t1 := t0.Add(10 * time.Second)
	groups2 := &cluster.GroupsObservation{Time: t1, Groups: map[string]*cluster.Group{}}
	for k, v := range groups.Groups {
		g := *v
		groups2.Groups[k] = &g
	}
	ng := *groups.Groups["next-gen"]
	ng.State, ng.GroupEpoch, ng.AssignmentEpoch = "Stable", 9, 9
	ng.Members = []cluster.Member{{MemberID: "n-1", ClientID: "ng", ClientHost: "/10.0.0.3", Generation: -1, MemberEpoch: 9,
		Assignment: cluster.Assignment{"orders": {0, 1}}, TargetAssignment: cluster.Assignment{"orders": {0, 1}}}}
	groups2.Groups["next-gen"] = &ng
	st.GroupsPolled(groups2, 11*time.Millisecond, nil)
	offsets2 := &cluster.OffsetsObservation{Time: t1, Brokers: 3,
		Topics: map[string]*cluster.Topic{"orders": {Name: "orders", Partitions: map[int32]cluster.Partition{
			0: {Leader: 0, Newest: 220, Oldest: 0}, 1: {Leader: 1, Newest: 80, Oldest: 10}, 2: {Leader: 2, Newest: 0, Oldest: 0}}}},
		Committed: map[string]map[string]map[int32]int64{
			"orders-app": {"orders": {0: 170, 1: 80}},
			"batch":      {"orders": {0: 20, 1: 90}},
		}}
	st.OffsetsPolled(offsets2, 35*time.Millisecond, nil)
	return st
}

func TestGoldenExposition(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	st := goldenStore(t, t0)
	// The store stamps polls with the wall clock; fix them for the golden.
	snap := st.Current()
	for _, l := range store.Loops {
		ls := snap.Loops[l]
		ls.LastSuccess, ls.LastAttempt = t0, t0
		snap.Loops[l] = ls
	}
	c := collector.New(st, fixedRequests{"ListGroups": 6, "DescribeGroups": 3}, collector.Options{Now: func() time.Time { return t0.Add(15 * time.Second) }})

	got := scrape(t, c)
	// Poll durations are real measurements of the fake history above and
	// deterministic, so they stay in the golden file.
	if *update {
		if err := os.WriteFile("testdata/golden.prom", []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile("testdata/golden.prom")
	if err != nil {
		t.Fatal(err)
	}
	if err := testutil.CollectAndCompare(c, strings.NewReader(string(want))); err != nil {
		t.Fatal(err)
	}
	assertLintClean(t, c)
}
