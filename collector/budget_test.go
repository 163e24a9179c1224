package collector_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/collector"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/cluster"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/kafkatest"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/store"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/testkit"
)

// budgetStore holds groups classic groups that never rebalanced, each
// with one member and committed on all partitions of one topic, after two
// polls of both loops (so lag in seconds and status exist).
func budgetStore(t *testing.T, groups, partitions int) *store.Store {
	t.Helper()
	cfg := kafkatest.Config(t, []string{"localhost:9092"}, nil)
	st := store.New(store.Options{Log: zerolog.Nop(), Analyzers: store.NewAnalyzers(cfg, zerolog.Nop())})
	t0 := time.Unix(1_800_000_000, 0)
	for poll := range 2 {
		at := t0.Add(time.Duration(poll) * 10 * time.Second)
		gobs := &cluster.GroupsObservation{Time: at, Groups: map[string]*cluster.Group{}}
		topic := &cluster.Topic{Name: "t", Partitions: map[int32]cluster.Partition{}}
		oobs := &cluster.OffsetsObservation{Time: at, Brokers: 1, Topics: map[string]*cluster.Topic{"t": topic}, Committed: map[string]map[string]map[int32]int64{}}
		for p := range int32(partitions) {
			topic.Partitions[p] = cluster.Partition{Newest: int64(100 + 10*poll), Oldest: 0}
		}
		for g := range groups {
			name := fmt.Sprintf("g%03d", g)
			gobs.Groups[name] = &cluster.Group{Name: name, Type: cluster.GroupTypeClassic, ProtocolType: "consumer", State: "Stable", Assignor: "range",
				Members: []cluster.Member{{MemberID: "m", ClientID: "c", ClientHost: "/h", Generation: -1}}}
			parts := map[int32]int64{}
			for p := range int32(partitions) {
				parts[p] = 95
			}
			oobs.Committed[name] = map[string]map[int32]int64{"t": parts}
		}
		st.GroupsPolled(gobs, nil)
		st.OffsetsPolled(oobs, nil)
	}
	return st
}

// perGroup counts the series that carry a consumergroup label.
func perGroup(s testkit.Series) int {
	n := 0
	for k := range s {
		if strings.Contains(k, `consumergroup="`) {
			n++
		}
	}
	return n
}

// Series per group and per group-partition for each setting, as the
// README's "Series per group" table states them.
func TestSeriesBudget(t *testing.T) {
	cases := []struct {
		opts                collector.Options
		perGroup, perGroupP int // series per group (beyond its partitions) and per group-partition
	}{
		{collector.Options{}, 29, 3},
		{collector.Options{DurationBuckets: true}, 42, 3},
		{collector.Options{Granularity: collector.Topic}, 29, 0},
		{collector.Options{Granularity: collector.Group}, 29, 0},
	}
	one, ten := budgetStore(t, 1, 1), budgetStore(t, 1, 11)
	for _, c := range cases {
		a := perGroup(testkit.Collect(t, collector.NewSnapshot(one.Current(), c.opts)))
		b := perGroup(testkit.Collect(t, collector.NewSnapshot(ten.Current(), c.opts)))
		perP := (b - a) / 10
		if got := a - perP; got != c.perGroup || perP != c.perGroupP {
			t.Errorf("%+v: %d series per group and %d per group-partition, documented %d and %d", c.opts, got, perP, c.perGroup, c.perGroupP)
		}
	}
}

func TestGranularityAndGroupCap(t *testing.T) {
	st := budgetStore(t, 5, 3)
	snap := st.Current()

	topic := testkit.Collect(t, collector.NewSnapshot(snap, collector.Options{Granularity: collector.Topic}))
	for _, fam := range []string{"kafka_consumergroup_lag", "kafka_consumergroup_current_offset", "kafka_consumergroup_lag_seconds"} {
		if n := len(topic.Family(fam)); n != 0 {
			t.Errorf("topic granularity: %d %s series", n, fam)
		}
	}
	if v, ok := topic.Get("kafka_consumergroup_lag_sum", "consumergroup", "g000", "topic", "t"); !ok || v != 45 {
		t.Errorf("topic granularity: lag_sum %v %v, want 45", v, ok)
	}

	group := testkit.Collect(t, collector.NewSnapshot(snap, collector.Options{Granularity: collector.Group}))
	if v, ok := group.Get("kafka_consumergroup_lag_sum", "consumergroup", "g000"); !ok || v != 45 {
		t.Errorf("group granularity: lag_sum %v %v, want 45 without a topic label (%v)", v, ok, group.Family("kafka_consumergroup_lag_sum"))
	}

	capped := testkit.Collect(t, collector.NewSnapshot(snap, collector.Options{MaxGroups: 2}))
	if v, _ := capped.Get("kafka_rebalance_exporter_groups_not_exported"); v != 3 {
		t.Errorf("groups_not_exported %v, want 3", v)
	}
	for k := range capped {
		for _, gone := range []string{"g002", "g003", "g004"} {
			if strings.Contains(k, `consumergroup="`+gone+`"`) {
				t.Errorf("capped group exported: %s", k)
			}
		}
	}
	if perGroup(capped) == 0 {
		t.Fatal("no group exported under the cap")
	}
}
