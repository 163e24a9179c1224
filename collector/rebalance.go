package collector

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/store"
)

var (
	descGeneration = prometheus.NewDesc("kafka_consumergroup_generation_id",
		"Current generation of the group (KIP-848: group epoch). Absent when no source knows it; kafka_consumergroup_info's generation_source says which source answered.", groupLabels, nil)
	descAssignmentEpoch = prometheus.NewDesc("kafka_consumergroup_assignment_epoch",
		"KIP-848 groups: epoch of the target assignment; below the generation while the coordinator computes a new assignment.", groupLabels, nil)
	descRebalances = prometheus.NewDesc("kafka_consumergroup_rebalances_total",
		"Rebalances counted since the exporter first saw the group: by generation delta where a generation is known, else from rebalancing states and membership or assignment changes.", groupLabels, nil)
	descRebalancing = prometheus.NewDesc("kafka_consumergroup_rebalancing",
		"1 while a rebalance is in progress, else 0.", groupLabels, nil)
	descRebalanceInProgress = prometheus.NewDesc("kafka_consumergroup_rebalance_in_progress_seconds",
		"How long the current rebalance has lasted so far; 0 when none is in progress.", groupLabels, nil)
	descRebalanceDuration = prometheus.NewDesc("kafka_consumergroup_rebalance_duration_seconds",
		"Durations of rebalances seen in progress, from the first poll that saw the group rebalancing to the first that saw it settled.", groupLabels, nil)
	descLastRebalance = prometheus.NewDesc("kafka_consumergroup_last_rebalance_timestamp_seconds",
		"Unix time of the poll that last counted or saw the end of a rebalance.", groupLabels, nil)
	descMemberJoins = prometheus.NewDesc("kafka_consumergroup_member_joins_total",
		"Members that joined the group.", groupLabels, nil)
	descMemberLeaves = prometheus.NewDesc("kafka_consumergroup_member_leaves_total",
		"Members that left the group (cleanly or by session timeout).", groupLabels, nil)
	descOwnerChanges = prometheus.NewDesc("kafka_consumergroup_partition_owner_changes_total",
		"Partitions whose owning member changed between two settled observations.", groupLabels, nil)
	descMemberPartitions = prometheus.NewDesc("kafka_consumergroup_member_assigned_partitions",
		"Partitions assigned to the member (KRE_MEMBER_METRICS=true).", []string{"consumergroup", "member_id", "client_id", "client_host"}, nil)
)

func describeRebalance(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descGeneration, descAssignmentEpoch, descRebalances, descRebalancing,
		descRebalanceInProgress, descRebalanceDuration, descLastRebalance, descMemberJoins, descMemberLeaves,
		descOwnerChanges, descMemberPartitions} {
		ch <- d
	}
}

func (c *Collector) collectRebalance(ch chan<- prometheus.Metric, s *store.Snapshot) {
	if s.Groups == nil {
		return
	}
	for _, name := range sortedKeys(s.Rebalance) {
		if _, ok := s.Groups.Groups[name]; !ok {
			continue
		}
		st := s.Rebalance[name]
		gauge := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, name)
		}
		counter := func(d *prometheus.Desc, v uint64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), name)
		}
		if st.GenerationKnown {
			gauge(descGeneration, float64(st.Generation))
		}
		if st.AssignmentEpochKnown {
			gauge(descAssignmentEpoch, float64(st.AssignmentEpoch))
		}
		counter(descRebalances, st.Rebalances)
		rebalancing := 0.0
		if st.Rebalancing {
			rebalancing = 1
		}
		gauge(descRebalancing, rebalancing)
		gauge(descRebalanceInProgress, st.RebalanceInProgress().Seconds())
		ch <- prometheus.MustNewConstHistogram(descRebalanceDuration, st.Durations.Count, st.Durations.Sum, st.Durations.BucketMap(), name)
		if !st.LastRebalance.IsZero() {
			gauge(descLastRebalance, float64(st.LastRebalance.UnixNano())/1e9)
		}
		counter(descMemberJoins, st.MemberJoins)
		counter(descMemberLeaves, st.MemberLeaves)
		counter(descOwnerChanges, st.PartitionOwnerChanges)
		if c.opts.MemberMetrics {
			for _, m := range st.Members {
				n := 0
				for _, ps := range m.Assignment {
					n += len(ps)
				}
				ch <- prometheus.MustNewConstMetric(descMemberPartitions, prometheus.GaugeValue, float64(n), name, m.MemberID, m.ClientID, m.ClientHost)
			}
		}
	}
}
