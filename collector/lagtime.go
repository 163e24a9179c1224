package collector

import (
	"strconv"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/exposition"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/status"
)

var (
	famLagSeconds = family{"kafka_consumergroup_lag_seconds",
		"How long ago the partition's log end was at the group's committed offset: 0 when caught up; absent while the log end history is too short to say.", exposition.Gauge}
	famMaxLagSeconds = family{"kafka_consumergroup_max_lag_seconds",
		"The group's largest kafka_consumergroup_lag_seconds.", exposition.Gauge}
	famStatus = family{"kafka_consumergroup_status",
		"Consumer health verdict over the recent offsets polls: 1 for the current status, 0 for the others (rules in docs/status.md).", exposition.Gauge}
)

// sortedStatuses is status.Statuses in label order.
var sortedStatuses = sortedKeys(func() map[string]bool {
	m := map[string]bool{}
	for _, s := range status.Statuses {
		m[s] = true
	}
	return m
}())

func (r *renderer) lagSeconds() {
	if r.opts.Granularity != Partition && r.opts.Granularity != "" {
		return
	}
	h := r.head(famLagSeconds)
	for _, g := range r.s.LagSeconds.Groups {
		if !r.exports(g.Group) {
			continue
		}
		// Partitions are sorted by topic, then partition number; the
		// series go in label order.
		for _, p := range g.Partitions {
			h.write()
			r.w.Sample(famLagSeconds.name, p.Seconds, "consumergroup", g.Group, "partition", strconv.Itoa(int(p.Partition)), "topic", p.Topic)
		}
	}
}

func (r *renderer) maxLagSeconds() {
	h := r.head(famMaxLagSeconds)
	for _, g := range r.s.LagSeconds.Groups {
		if !r.exports(g.Group) {
			continue
		}
		h.write()
		r.w.Sample(famMaxLagSeconds.name, g.MaxSeconds, "consumergroup", g.Group)
	}
}

func (r *renderer) status() {
	h := r.head(famStatus)
	for _, name := range r.exported(sortedKeys(r.s.Status)) {
		h.write()
		cur := r.s.Status[name].Status
		for _, st := range sortedStatuses {
			v := int64(0)
			if st == cur {
				v = 1
			}
			r.w.Int(famStatus.name, v, "consumergroup", name, "status", st)
		}
	}
}
