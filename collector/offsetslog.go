package collector

import "github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/exposition"

// The families of the coordinators' own log (KRE_OFFSETS_LOG_ENABLED),
// for every exported group the log has a commit of.
var (
	famCommits = family{"kafka_consumergroup_commits_total",
		"Offset commits of the group read from __consumer_offsets since the reader's start position (KRE_OFFSETS_LOG_START): one per partition per commit, transactional ones when their transaction committed. Only with KRE_OFFSETS_LOG_ENABLED.", exposition.Counter}
	famLastCommit = family{"kafka_consumergroup_last_commit_timestamp_seconds",
		"Unix time of the group's latest offset commit read from __consumer_offsets (the coordinator's clock). Only with KRE_OFFSETS_LOG_ENABLED.", exposition.Gauge}
)

// commits writes famCommits, or famLastCommit with last, for each exported
// group of the groups observation that the log has a commit of.
func (r *renderer) commits(f family, last bool) {
	v := r.s.OffsetsLog
	if v == nil || r.s.Groups == nil {
		return
	}
	h := r.head(f)
	for _, name := range r.groups {
		g, ok := v.Group(name)
		if !ok || g.Commits == 0 {
			continue
		}
		h.write()
		if last {
			r.w.Sample(f.name, float64(g.LastCommit.UnixNano())/1e9, "consumergroup", name)
		} else {
			r.w.Int(f.name, int64(g.Commits), "consumergroup", name)
		}
	}
}
