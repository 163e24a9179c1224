package collector_test

import (
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/collector"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/cluster"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/store"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/testkit"
)

// replicaStore holds one offsets poll of a topic whose partitions are, in
// order: healthy; led by a replica that is not the preferred one and under-
// replicated; without a leader; and without replicas in the metadata.
// Group g committed on t (partitions 0 and 1) and on u.
func replicaStore(t *testing.T) *store.Store {
	t.Helper()
	t0 := time.Unix(1_800_000_000, 0)
	st := store.New(store.Options{Log: zerolog.Nop()})
	st.OffsetsPolled(&cluster.OffsetsObservation{Time: t0, Brokers: 3,
		BrokerList: []cluster.Broker{{ID: 3, Addr: "b:9092", Rack: "r2"}, {ID: 1, Addr: "a:9092", Rack: "r1"}, {ID: 2, Addr: "c:9092"}},
		Topics: map[string]*cluster.Topic{
			"t": {Name: "t", Partitions: map[int32]cluster.Partition{
				0: {Leader: 1, Newest: 5, Oldest: 0, Replicas: []int32{1, 2, 3}, ISR: []int32{1, 2, 3}},
				1: {Leader: 2, Newest: 9, Oldest: 0, Replicas: []int32{1, 2, 3}, ISR: []int32{2, 3}},
				2: {Leader: -1, Newest: -1, Oldest: -1, Replicas: []int32{3, 1, 2}},
				3: {Leader: 1, Newest: 7, Oldest: 0},
			}},
			"u": {Name: "u", Partitions: map[int32]cluster.Partition{0: {Leader: 3, Newest: 20, Oldest: 0, Replicas: []int32{3}, ISR: []int32{3}}}},
		},
		Committed: map[string]map[string]map[int32]int64{"g": {"t": {0: 3, 1: 4}, "u": {0: 10}}},
	}, nil)
	return st
}

func TestPartitionMetadataFamilies(t *testing.T) {
	series := testkit.Collect(t, collector.NewSnapshot(replicaStore(t).Current(), collector.Options{}))
	type want struct {
		family    string
		partition string
		value     float64 // -1: no series
	}
	for _, w := range []want{
		{"kafka_topic_partition_leader", "0", 1}, {"kafka_topic_partition_leader", "1", 2},
		{"kafka_topic_partition_leader", "2", -1}, {"kafka_topic_partition_leader", "3", 1},

		{"kafka_topic_partition_replicas", "0", 3}, {"kafka_topic_partition_replicas", "1", 3},
		{"kafka_topic_partition_replicas", "2", 3}, {"kafka_topic_partition_replicas", "3", -1},

		{"kafka_topic_partition_in_sync_replica", "0", 3}, {"kafka_topic_partition_in_sync_replica", "1", 2},
		{"kafka_topic_partition_in_sync_replica", "2", 0}, {"kafka_topic_partition_in_sync_replica", "3", -1},

		{"kafka_topic_partition_leader_is_preferred", "0", 1}, {"kafka_topic_partition_leader_is_preferred", "1", 0},
		{"kafka_topic_partition_leader_is_preferred", "2", 0}, {"kafka_topic_partition_leader_is_preferred", "3", -1},

		{"kafka_topic_partition_under_replicated_partition", "0", 0}, {"kafka_topic_partition_under_replicated_partition", "1", 1},
		{"kafka_topic_partition_under_replicated_partition", "2", 1}, {"kafka_topic_partition_under_replicated_partition", "3", -1},
	} {
		got, ok := series.Get(w.family, "partition", w.partition, "topic", "t")
		switch {
		case w.value < 0 && ok:
			t.Errorf("%s{partition=%q}: %v, want no series", w.family, w.partition, got)
		case w.value >= 0 && (!ok || got != w.value):
			t.Errorf("%s{partition=%q}: %v (present %v), want %v", w.family, w.partition, got, ok, w.value)
		}
	}
	for _, b := range [][2]string{{"1", "a:9092"}, {"2", "c:9092"}, {"3", "b:9092"}} {
		if v, ok := series.Get("kafka_broker_info", "address", b[1], "id", b[0]); !ok || v != 1 {
			t.Errorf("kafka_broker_info{id=%q,address=%q} = %v (present %v), want 1", b[0], b[1], v, ok)
		}
	}
	if n := len(series.Family("kafka_broker_info")); n != 3 {
		t.Errorf("%d kafka_broker_info series, want 3", n)
	}
	for topic, want := range map[string]float64{"t": 7, "u": 10} {
		if v, ok := series.Get("kafka_consumergroup_current_offset_sum", "consumergroup", "g", "topic", topic); !ok || v != want {
			t.Errorf("current_offset_sum{topic=%q} = %v (present %v), want %v", topic, v, ok, want)
		}
	}
	assertLintClean(t, collector.NewSnapshot(replicaStore(t).Current(), collector.Options{}))
}

// Replicas other than the first export no topic or broker series; the
// committed offset sum is a group series, so every shard has its own.
func TestPartitionMetadataOnShardZeroOnly(t *testing.T) {
	series := testkit.Collect(t, collector.NewSnapshot(replicaStore(t).Current(), collector.Options{SkipTopicSeries: true}))
	for _, fam := range []string{"kafka_broker_info", "kafka_topic_partition_leader", "kafka_topic_partition_replicas",
		"kafka_topic_partition_in_sync_replica", "kafka_topic_partition_leader_is_preferred", "kafka_topic_partition_under_replicated_partition"} {
		if n := len(series.Family(fam)); n != 0 {
			t.Errorf("SkipTopicSeries: %d %s series", n, fam)
		}
	}
	if _, ok := series.Get("kafka_consumergroup_current_offset_sum", "consumergroup", "g", "topic", "t"); !ok {
		t.Error("SkipTopicSeries dropped the group's current_offset_sum")
	}
}

// At group granularity current_offset_sum is summed over the group's
// topics, without a topic label, as lag_sum is; at topic granularity it
// stays per topic.
func TestCurrentOffsetSumGranularity(t *testing.T) {
	snap := replicaStore(t).Current()
	group := testkit.Collect(t, collector.NewSnapshot(snap, collector.Options{Granularity: collector.Group})).Family("kafka_consumergroup_current_offset_sum")
	if v, ok := group.Get("kafka_consumergroup_current_offset_sum", "consumergroup", "g"); !ok || v != 17 || len(group) != 1 {
		t.Errorf("group granularity: %v, want only {consumergroup=\"g\"} 17", group)
	}
	topic := testkit.Collect(t, collector.NewSnapshot(snap, collector.Options{Granularity: collector.Topic})).Family("kafka_consumergroup_current_offset_sum")
	if v, ok := topic.Get("kafka_consumergroup_current_offset_sum", "consumergroup", "g", "topic", "u"); !ok || v != 10 || len(topic) != 2 {
		t.Errorf("topic granularity: %v, want one series per topic", topic)
	}
}
