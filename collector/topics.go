package collector

import (
	"cmp"
	"slices"
	"strconv"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/cluster"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/exposition"
)

// The broker and partition metadata families and the committed offset sum,
// named, labelled and meant as kafka_exporter exports them
// (docs/migrating-from-kafka_exporter.md). They come from the metadata the
// offsets poll refreshes anyway: no request of their own.
var (
	famBrokerInfo = family{"kafka_broker_info",
		"Constant 1 for each broker of the latest metadata, with its ID and advertised address as labels.", exposition.Gauge}
	famCurrentOffsetSum = family{"kafka_consumergroup_current_offset_sum",
		"Sum of kafka_consumergroup_current_offset over the topic's partitions with a committed offset.", exposition.Gauge}

	famTopicLeader = family{"kafka_topic_partition_leader",
		"Broker ID of the partition's leader; absent while the partition has none.", exposition.Gauge}
	famTopicReplicas = family{"kafka_topic_partition_replicas",
		"Replicas assigned to the partition.", exposition.Gauge}
	famTopicInSync = family{"kafka_topic_partition_in_sync_replica",
		"Replicas of the partition in sync with its leader.", exposition.Gauge}
	famTopicPreferred = family{"kafka_topic_partition_leader_is_preferred",
		"1 when the partition's leader is its preferred replica (the first assigned), else 0.", exposition.Gauge}
	famTopicUnderReplicated = family{"kafka_topic_partition_under_replicated_partition",
		"1 when fewer of the partition's replicas are in sync than are assigned, else 0.", exposition.Gauge}
)

// brokerInfo writes one series per broker, in label order (address, then
// ID); shard 0 only, like every topic and broker series.
func (r *renderer) brokerInfo() {
	o := r.s.Offsets
	if o == nil || r.opts.SkipTopicSeries {
		return
	}
	brokers := slices.Clone(o.BrokerList)
	slices.SortFunc(brokers, func(a, b cluster.Broker) int {
		return cmp.Or(cmp.Compare(a.Addr, b.Addr), cmp.Compare(strconv.Itoa(int(a.ID)), strconv.Itoa(int(b.ID))))
	})
	h := r.head(famBrokerInfo)
	for _, b := range brokers {
		h.write()
		r.w.Int(famBrokerInfo.name, 1, "address", b.Addr, "id", strconv.Itoa(int(b.ID)))
	}
}

// currentOffsetSum writes the committed offsets summed per group and
// topic, or at group granularity per group over all its topics (as
// lag_sum). Unlike lag_sum it needs no log end, so it is there whenever
// the group has a commit on the topic.
func (r *renderer) currentOffsetSum() {
	h := r.head(famCurrentOffsetSum)
	o := r.s.Offsets
	for _, group := range r.committed {
		var total int64
		for _, topic := range sortedKeys(o.Committed[group]) {
			var sum int64
			for _, off := range o.Committed[group][topic] {
				sum += off
			}
			total += sum
			if r.opts.Granularity != Group {
				h.write()
				r.w.Int(famCurrentOffsetSum.name, sum, "consumergroup", group, "topic", topic)
			}
		}
		if r.opts.Granularity == Group {
			h.write()
			r.w.Int(famCurrentOffsetSum.name, total, "consumergroup", group)
		}
	}
}

// replicated returns value(p) for a partition whose replicas the metadata
// listed, else -1 (no series).
func replicated(value func(cluster.Partition) int64) func(cluster.Partition) int64 {
	return func(p cluster.Partition) int64 {
		if len(p.Replicas) == 0 {
			return -1
		}
		return value(p)
	}
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

func (r *renderer) topicLeader() {
	r.topicOffsets(famTopicLeader, func(p cluster.Partition) int64 { return int64(p.Leader) })
}

func (r *renderer) topicReplicas() {
	r.topicOffsets(famTopicReplicas, replicated(func(p cluster.Partition) int64 { return int64(len(p.Replicas)) }))
}

func (r *renderer) topicInSync() {
	r.topicOffsets(famTopicInSync, replicated(func(p cluster.Partition) int64 { return int64(len(p.ISR)) }))
}

// topicPreferred is 0 for a partition without a leader, as kafka_exporter
// has it.
func (r *renderer) topicPreferred() {
	r.topicOffsets(famTopicPreferred, replicated(func(p cluster.Partition) int64 {
		return boolInt(p.Leader >= 0 && p.Leader == p.Replicas[0])
	}))
}

func (r *renderer) topicUnderReplicated() {
	r.topicOffsets(famTopicUnderReplicated, replicated(func(p cluster.Partition) int64 {
		return boolInt(len(p.ISR) < len(p.Replicas))
	}))
}
