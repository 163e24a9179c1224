package collector

import (
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/exposition"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/rebalance"
)

var (
	famGeneration = family{"kafka_consumergroup_generation_id",
		"Current generation of the group (KIP-848: group epoch). Absent when no source knows it; kafka_consumergroup_info's generation_source says which source answered.", exposition.Gauge}
	famAssignmentEpoch = family{"kafka_consumergroup_assignment_epoch",
		"KIP-848 groups: epoch of the target assignment; below the generation while the coordinator computes a new assignment.", exposition.Gauge}
	famRebalances = family{"kafka_consumergroup_rebalances_total",
		"Rebalances counted since the exporter first saw the group: by generation delta where a generation is known, else from rebalancing states and membership or assignment changes.", exposition.Counter}
	famRebalancing = family{"kafka_consumergroup_rebalancing",
		"1 while a rebalance is in progress, else 0.", exposition.Gauge}
	famRebalanceInProgress = family{"kafka_consumergroup_rebalance_in_progress_seconds",
		"How long the current rebalance has lasted so far; 0 when none is in progress.", exposition.Gauge}
	famRebalanceDuration = family{"kafka_consumergroup_rebalance_duration_seconds",
		"Durations of rebalances seen in progress, from the first poll that saw the group rebalancing to the first that saw it settled.", exposition.Histogram}
	famLastRebalance = family{"kafka_consumergroup_last_rebalance_timestamp_seconds",
		"Unix time of the poll that last counted or saw the end of a rebalance.", exposition.Gauge}
	famMemberJoins = family{"kafka_consumergroup_member_joins_total",
		"Members that joined the group.", exposition.Counter}
	famMemberLeaves = family{"kafka_consumergroup_member_leaves_total",
		"Members that left the group (cleanly or by session timeout).", exposition.Counter}
	famOwnerChanges = family{"kafka_consumergroup_partition_owner_changes_total",
		"Partitions whose owning member changed between two settled observations.", exposition.Counter}
	famMemberPartitions = family{"kafka_consumergroup_member_assigned_partitions",
		"Partitions assigned to the member (KRE_MEMBER_METRICS=true).", exposition.Gauge}
)

// rebalance writes family f with write's series for each group that the
// tracker and the groups observation both know.
func (r *renderer) rebalance(f family, write func(h *head, name string, st *rebalance.GroupStats)) {
	if r.s.Groups == nil {
		return
	}
	h := r.head(f)
	for _, name := range r.groups {
		if st, ok := r.s.Rebalance[name]; ok {
			write(h, name, &st)
		}
	}
}

func (r *renderer) generation(h *head, name string, st *rebalance.GroupStats) {
	if st.GenerationKnown {
		h.write()
		r.w.Int(famGeneration.name, int64(st.Generation), "consumergroup", name)
	}
}

func (r *renderer) assignmentEpoch(h *head, name string, st *rebalance.GroupStats) {
	if st.AssignmentEpochKnown {
		h.write()
		r.w.Int(famAssignmentEpoch.name, int64(st.AssignmentEpoch), "consumergroup", name)
	}
}

func (r *renderer) lastRebalance(h *head, name string, st *rebalance.GroupStats) {
	if !st.LastRebalance.IsZero() {
		h.write()
		r.w.Sample(famLastRebalance.name, float64(st.LastRebalance.UnixNano())/1e9, "consumergroup", name)
	}
}

func (r *renderer) counter(h *head, name string, v uint64) {
	h.write()
	r.w.Int(h.f.name, int64(v), "consumergroup", name)
}

func (r *renderer) rebalances(h *head, name string, st *rebalance.GroupStats) {
	r.counter(h, name, st.Rebalances)
}

func (r *renderer) memberJoins(h *head, name string, st *rebalance.GroupStats) {
	r.counter(h, name, st.MemberJoins)
}

func (r *renderer) memberLeaves(h *head, name string, st *rebalance.GroupStats) {
	r.counter(h, name, st.MemberLeaves)
}

func (r *renderer) ownerChanges(h *head, name string, st *rebalance.GroupStats) {
	r.counter(h, name, st.PartitionOwnerChanges)
}

func (r *renderer) rebalancing(h *head, name string, st *rebalance.GroupStats) {
	v := int64(0)
	if st.Rebalancing {
		v = 1
	}
	h.write()
	r.w.Int(famRebalancing.name, v, "consumergroup", name)
}

func (r *renderer) rebalanceInProgress(h *head, name string, st *rebalance.GroupStats) {
	h.write()
	r.w.Sample(famRebalanceInProgress.name, st.RebalanceInProgress().Seconds(), "consumergroup", name)
}

func (r *renderer) rebalanceDuration(h *head, name string, st *rebalance.GroupStats) {
	d := st.Durations
	bounds, counts := d.UpperBounds, d.CumulativeCounts
	if !r.opts.DurationBuckets {
		bounds, counts = nil, nil // +Inf, _sum and _count: mean durations
	}
	h.write()
	r.w.HistogramSamples(famRebalanceDuration.name, bounds, counts, d.Sum, d.Count, "consumergroup", name)
}

func (r *renderer) memberPartitions() {
	if !r.opts.MemberMetrics || r.s.Groups == nil {
		return
	}
	h := r.head(famMemberPartitions)
	for _, name := range r.groups {
		st, ok := r.s.Rebalance[name]
		if !ok {
			continue
		}
		for _, m := range st.Members {
			n := 0
			for _, ps := range m.Assignment {
				n += len(ps)
			}
			h.write()
			r.w.Int(famMemberPartitions.name, int64(n), "client_host", m.ClientHost, "client_id", m.ClientID, "consumergroup", name, "member_id", m.MemberID)
		}
	}
}
