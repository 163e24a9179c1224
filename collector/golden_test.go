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
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/kafkatest"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/offsetslog"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/store"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/testkit"
)

var update = flag.Bool("update", false, "rewrite testdata/golden.prom from the current output")

// goldenStore is a store with the default analyzers, fed a fixed history:
// a failed first groups poll, then successful polls of both loops, all
// stamped t0 by the store's clock.
func goldenStore(t *testing.T, t0 time.Time) *store.Store {
	t.Helper()
	cfg := kafkatest.Config(t, []string{"localhost:9092"}, nil)
	// The coordinators' log has read orders-app's generation 5 (what its
	// members' KIP-792 metadata says too) and commits of both classic
	// groups.
	view := &offsetslog.View{Topic: offsetslog.DefaultTopic, Time: t0,
		Partitions: []offsetslog.PartitionStatus{{Partition: 0, Next: 30, HighWatermark: 30, ReadAt: t0}},
		Groups: map[string]*offsetslog.Group{
			"orders-app": {Name: "orders-app", Metadata: &offsetslog.GroupMetadata{ProtocolType: "consumer", Generation: 5, Protocol: "cooperative-sticky", Leader: "m-1",
				Members: []offsetslog.Member{{MemberID: "m-1", ClientID: "orders-1", ClientHost: "/10.0.0.1", SessionTimeout: 45 * time.Second, RebalanceTimeout: 5 * time.Minute},
					{MemberID: "m-2", ClientID: "orders-2", ClientHost: "/10.0.0.2", SessionTimeout: 10 * time.Second, RebalanceTimeout: time.Minute}}},
				MetadataOffset: 28, MetadataTime: t0.Add(-time.Minute), Commits: 42, LastCommit: t0.Add(-1500 * time.Millisecond)},
			"batch":     {Name: "batch", MetadataOffset: -1, Commits: 2, LastCommit: t0.Add(-time.Hour)},
			"not-there": {Name: "not-there", MetadataOffset: -1, Commits: 7, LastCommit: t0}, // in the log, not described: not exported
		}}
	viewOf := func() *offsetslog.View { return view }
	st := store.New(store.Options{Log: zerolog.Nop(), Analyzers: store.NewAnalyzers(cfg, zerolog.Nop(), offsetslog.NewSource(viewOf)),
		OffsetsLog: viewOf, Now: func() time.Time { return t0 }})
	st.GroupsPolled(nil, &kafka.StageError{Stage: kafka.StageConnect, Broker: -1, Err: os.ErrDeadlineExceeded})
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
	st.GroupsPolled(groups, nil)
	// Partition 1 is under-replicated and led by a replica that is not
	// its preferred one.
	brokers := []cluster.Broker{{ID: 0, Addr: "kafka-0:9092", Rack: "a"}, {ID: 1, Addr: "kafka-1:9092", Rack: "b"}, {ID: 2, Addr: "kafka-2:9092", Rack: "c"}}
	offsets := &cluster.OffsetsObservation{Time: t0, Brokers: 3, BrokerList: brokers,
		Topics: map[string]*cluster.Topic{"orders": {Name: "orders", Partitions: map[int32]cluster.Partition{
			0: {Leader: 0, Newest: 120, Oldest: 0, Replicas: []int32{0, 1, 2}, ISR: []int32{0, 1, 2}},
			1: {Leader: 1, Newest: 80, Oldest: 10, Replicas: []int32{2, 1, 0}, ISR: []int32{1, 0}},
			2: {Leader: 2, Newest: 0, Oldest: 0, Replicas: []int32{2, 0, 1}, ISR: []int32{2, 0, 1}}}}},
		Committed: map[string]map[string]map[int32]int64{
			"orders-app": {"orders": {0: 100, 1: 80}},
			"batch":      {"orders": {0: 20, 1: 90}}, // 90 > log end: lag clamps to 0
		}}
	st.OffsetsPolled(offsets, nil)

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
	st.GroupsPolled(groups2, nil)
	offsets2 := &cluster.OffsetsObservation{Time: t1, Brokers: 3, BrokerList: brokers,
		Topics: map[string]*cluster.Topic{"orders": {Name: "orders", Partitions: map[int32]cluster.Partition{
			0: {Leader: 0, Newest: 220, Oldest: 0, Replicas: []int32{0, 1, 2}, ISR: []int32{0, 1, 2}},
			1: {Leader: 1, Newest: 80, Oldest: 10, Replicas: []int32{2, 1, 0}, ISR: []int32{1, 0}},
			2: {Leader: 2, Newest: 0, Oldest: 0, Replicas: []int32{2, 0, 1}, ISR: []int32{2, 0, 1}}}}},
		Committed: map[string]map[string]map[int32]int64{
			"orders-app": {"orders": {0: 170, 1: 80}},
			"batch":      {"orders": {0: 20, 1: 90}},
		}}
	st.OffsetsPolled(offsets2, nil)
	return st
}

func TestGoldenExposition(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	st := goldenStore(t, t0)
	c := collector.New(st, collector.Options{Now: func() time.Time { return t0.Add(15 * time.Second) }})

	got := testkit.Text(t, c)
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
