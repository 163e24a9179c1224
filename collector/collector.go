// Package collector renders the exporter's snapshot as Prometheus metrics.
// It never talks to Kafka: a scrape costs the same whether the cluster is
// up, slow or gone, and says how fresh its data is.
//
// Render writes a snapshot straight into the exposition formats
// (internal/exposition); that is what /metrics serves, once per snapshot
// and format. Collector wraps the same rendering as a prometheus.Collector
// (by parsing it back) for registries, testutil comparisons and lint: there
// is one definition of every series, the families table and the render
// functions here.
package collector

import (
	"bytes"
	"cmp"
	"maps"
	"math"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/cluster"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/exposition"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/kafka"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/store"
)

// SelfPrefix is the namespace of the exporter's own health metrics.
const SelfPrefix = kafka.SelfPrefix

// Source is where the collector reads from.
type Source interface {
	Current() *store.Snapshot
}

// Options tune what the collector exports (the series budget: README,
// "Series per group").
type Options struct {
	// Now is the clock for snapshot age; time.Now when nil.
	Now func() time.Time
	// MemberMetrics exports assigned partitions per member.
	MemberMetrics bool
	// DurationBuckets exports every bucket of the per-group rebalance
	// duration histogram; without it only +Inf, _sum and _count.
	DurationBuckets bool
	// Granularity of the lag families; the zero value is Partition.
	Granularity Granularity
	// MaxGroups bounds the exported groups, the first in name order; 0
	// exports all.
	MaxGroups int
	// SkipTopicSeries leaves out the topic and broker series, which every
	// shard but the first does (they are the same on each).
	SkipTopicSeries bool
	// ConstLabels are added to every series (KRE_CONST_LABELS); their
	// names must differ from every label the collector writes, which
	// config validates.
	ConstLabels map[string]string
}

// Granularity says down to what the lag families go.
type Granularity string

const (
	Partition Granularity = "partition" // per partition, per topic, per group
	Topic     Granularity = "topic"     // no per-partition series
	Group     Granularity = "group"     // one lag_sum per group, without a topic label
)

// family is one metric family: its name, help and type. Every family the
// collector exports is a variable below, so a name is written once.
type family struct {
	name, help string
	typ        exposition.Type
}

var (
	famCurrentOffset = family{"kafka_consumergroup_current_offset",
		"Committed offset of the consumer group in the partition.", exposition.Gauge}
	famLag = family{"kafka_consumergroup_lag",
		"Messages the consumer group is behind: log end offset minus committed offset, never negative. Only partitions with a committed offset.", exposition.Gauge}
	famLagSum = family{"kafka_consumergroup_lag_sum",
		"Sum of kafka_consumergroup_lag over the topic's partitions.", exposition.Gauge}
	famMembers = family{"kafka_consumergroup_members",
		"Members of the consumer group.", exposition.Gauge}
	famState = family{"kafka_consumergroup_state",
		"Group state as the coordinator reports it: 1 for the current state, 0 for the others.", exposition.Gauge}
	famInfo = family{"kafka_consumergroup_info",
		"Constant 1 with the group's type, protocol type, assignor, coordinator broker and generation source as labels.", exposition.Gauge}

	famTopicPartitions = family{"kafka_topic_partitions",
		"Partitions of the topic.", exposition.Gauge}
	famTopicCurrent = family{"kafka_topic_partition_current_offset",
		"Log end offset (high watermark) of the partition.", exposition.Gauge}
	famTopicOldest = family{"kafka_topic_partition_oldest_offset",
		"Log start offset of the partition.", exposition.Gauge}
	famBrokers = family{"kafka_brokers",
		"Brokers in the cluster according to the latest metadata.", exposition.Gauge}

	famNotExported = family{SelfPrefix + "groups_not_exported",
		"Groups left out of the exposition by KRE_MAX_GROUPS.", exposition.Gauge}
	famUp = family{SelfPrefix + "up",
		"1 when the latest poll of every loop produced data (brokers that did not answer are served from their last answer and counted in poll_errors_total and broker_up), else 0.", exposition.Gauge}
	famLastSuccess = family{SelfPrefix + "last_successful_poll_timestamp_seconds",
		"Unix time of the loop's last poll that produced data.", exposition.Gauge}
	famSnapshotAge = family{SelfPrefix + "snapshot_age_seconds",
		"Age of the data served for the loop: now minus the time of its last poll that produced data.", exposition.Gauge}
)

// Render writes every metric that depends on s alone (everything but the
// snapshot age, which RenderAge writes at each scrape), family by family
// in name order, series in label order, labels in name order: the order a
// registry gathers them in.
func Render(w *exposition.Writer, s *store.Snapshot, opts Options) {
	r := renderer{w: newOutput(w, opts.ConstLabels), s: s, opts: opts}
	r.selectGroups()
	if s.Groups != nil {
		r.groups = r.exported(sortedKeys(s.Groups.Groups))
	}
	if s.Offsets != nil {
		r.committed = r.exported(sortedKeys(s.Offsets.Committed))
		r.topics = sortedKeys(s.Offsets.Topics)
	}
	// Name order, as a registry would gather them.
	r.brokerInfo()
	r.brokers()
	r.rebalance(famAssignmentEpoch, r.assignmentEpoch)
	r.commits(famCommits, false)
	r.currentOffsets()
	r.currentOffsetSum()
	r.rebalance(famGeneration, r.generation)
	r.info()
	r.lag()
	r.lagSeconds()
	r.lagSum()
	r.commits(famLastCommit, true)
	r.rebalance(famLastRebalance, r.lastRebalance)
	r.maxLagSeconds()
	r.memberPartitions()
	r.rebalance(famMemberJoins, r.memberJoins)
	r.rebalance(famMemberLeaves, r.memberLeaves)
	r.members()
	r.rebalance(famOwnerChanges, r.ownerChanges)
	r.rebalance(famRebalanceDuration, r.rebalanceDuration)
	r.rebalance(famRebalanceInProgress, r.rebalanceInProgress)
	r.rebalance(famRebalances, r.rebalances)
	r.rebalance(famRebalancing, r.rebalancing)
	r.state()
	r.status()
	r.notExported()
	r.lastSuccess()
	r.up()
	r.topicCurrent()
	r.topicInSync()
	r.topicLeader()
	r.topicPreferred()
	r.topicOldest()
	r.topicReplicas()
	r.topicUnderReplicated()
	r.topicPartitions()
}

// RenderAge writes the snapshot's age at now.
func RenderAge(w *exposition.Writer, s *store.Snapshot, now time.Time) {
	renderAge(newOutput(w, nil), s, now)
}

func renderAge(w *output, s *store.Snapshot, now time.Time) {
	first := true
	for _, loop := range cluster.Loops {
		if ls := s.Loops[loop]; !ls.LastSuccess.IsZero() {
			if first {
				w.Family(famSnapshotAge.name, famSnapshotAge.help, famSnapshotAge.typ)
				first = false
			}
			w.Sample(famSnapshotAge.name, max(now.Sub(ls.LastSuccess).Seconds(), 0), "loop", loop)
		}
	}
}

// renderer writes one snapshot.
type renderer struct {
	w         *output
	s         *store.Snapshot
	opts      Options
	groups    []string // sorted exported group names of the groups observation
	committed []string // sorted exported groups with committed offsets
	topics    []string // sorted topics of the offsets observation
	keep      map[string]bool
	dropped   int
}

// selectGroups applies MaxGroups: of every group the snapshot names, the
// first MaxGroups in name order are exported.
func (r *renderer) selectGroups() {
	if r.opts.MaxGroups <= 0 {
		return
	}
	all := map[string]bool{}
	if r.s.Groups != nil {
		for n := range r.s.Groups.Groups {
			all[n] = true
		}
	}
	if r.s.Offsets != nil {
		for n := range r.s.Offsets.Committed {
			all[n] = true
		}
	}
	for n := range r.s.Status {
		all[n] = true
	}
	for _, g := range r.s.LagSeconds.Groups {
		all[g.Group] = true
	}
	names := sortedKeys(all)
	r.keep = map[string]bool{}
	for _, n := range names[:min(r.opts.MaxGroups, len(names))] {
		r.keep[n] = true
	}
	r.dropped = len(names) - len(r.keep)
}

// exported filters sorted group names by MaxGroups.
func (r *renderer) exported(names []string) []string {
	if r.keep == nil {
		return names
	}
	return slices.DeleteFunc(names, func(n string) bool { return !r.keep[n] })
}

// exports reports whether a group is exported.
func (r *renderer) exports(name string) bool { return r.keep == nil || r.keep[name] }

func (r *renderer) notExported() {
	r.w.Family(famNotExported.name, famNotExported.help, famNotExported.typ)
	r.w.Int(famNotExported.name, int64(r.dropped))
}

// head writes f's HELP and TYPE the first time; families with no series
// are left out, as a registry leaves them out.
type head struct {
	w    *exposition.Writer
	f    family
	done bool
}

func (h *head) write() {
	if !h.done {
		h.w.Family(h.f.name, h.f.help, h.f.typ)
		h.done = true
	}
}

func (r *renderer) head(f family) *head { return &head{w: r.w.Writer, f: f} }

func (r *renderer) brokers() {
	if o := r.s.Offsets; o != nil && !r.opts.SkipTopicSeries {
		r.w.Family(famBrokers.name, famBrokers.help, famBrokers.typ)
		r.w.Int(famBrokers.name, int64(o.Brokers))
	}
}

func (r *renderer) members() {
	h := r.head(famMembers)
	for _, name := range r.groups {
		h.write()
		r.w.Int(famMembers.name, int64(len(r.s.Groups.Groups[name].Members)), "consumergroup", name)
	}
}

func (r *renderer) state() {
	h := r.head(famState)
	for _, name := range r.groups {
		h.write()
		g := r.s.Groups.Groups[name]
		known := slices.Contains(cluster.AllStates, g.State) && g.State != "Unknown"
		for _, st := range sortedStates {
			v := int64(0)
			if st == g.State || (st == "Unknown" && !known) {
				v = 1
			}
			r.w.Int(famState.name, v, "consumergroup", name, "state", st)
		}
	}
}

// sortedStates is cluster.AllStates in label order.
var sortedStates = slices.Sorted(slices.Values(cluster.AllStates))

func (r *renderer) info() {
	h := r.head(famInfo)
	for _, name := range r.groups {
		h.write()
		g := r.s.Groups.Groups[name]
		r.w.Int(famInfo.name, 1, "assignor", g.Assignor, "consumergroup", name, "coordinator", strconv.Itoa(int(g.Coordinator)),
			"generation_source", r.s.Rebalance[name].GenerationSource, "group_type", g.Type, "protocol_type", g.ProtocolType)
	}
}

// partitionsOf calls fn for each committed partition of each exported group, in
// label order (partition IDs compare as strings, as a registry sorts them).
func (r *renderer) partitionsOf(fn func(group, topic string, t *cluster.Topic, id int32, part string, committed int64)) {
	o := r.s.Offsets
	for _, group := range r.committed {
		for _, topic := range sortedKeys(o.Committed[group]) {
			parts := o.Committed[group][topic]
			for _, id := range labelOrder(parts) {
				fn(group, topic, o.Topics[topic], id, strconv.Itoa(int(id)), parts[id])
			}
		}
	}
}

func (r *renderer) currentOffsets() {
	if r.opts.Granularity != Partition && r.opts.Granularity != "" {
		return
	}
	h := r.head(famCurrentOffset)
	r.partitionsOf(func(group, topic string, _ *cluster.Topic, _ int32, part string, off int64) {
		h.write()
		r.w.Int(famCurrentOffset.name, off, "consumergroup", group, "partition", part, "topic", topic)
	})
}

func (r *renderer) lag() {
	if r.opts.Granularity != Partition && r.opts.Granularity != "" {
		return
	}
	h := r.head(famLag)
	r.partitionsOf(func(group, topic string, t *cluster.Topic, id int32, part string, off int64) {
		if lag, ok := cluster.Lag(t, id, off); ok {
			h.write()
			r.w.Int(famLag.name, lag, "consumergroup", group, "partition", part, "topic", topic)
		}
	})
}

// lagSum writes the lag per group and topic, or at group granularity per
// group over all its topics; either is absent where a log end is unknown.
func (r *renderer) lagSum() {
	h := r.head(famLagSum)
	o := r.s.Offsets
	for _, group := range r.committed {
		var total int64
		complete := true
		for _, topic := range sortedKeys(o.Committed[group]) {
			sum, ok := cluster.TopicLag(o.Topics[topic], o.Committed[group][topic])
			total, complete = total+sum, complete && ok
			if ok && r.opts.Granularity != Group {
				h.write()
				r.w.Int(famLagSum.name, sum, "consumergroup", group, "topic", topic)
			}
		}
		if complete && r.opts.Granularity == Group {
			h.write()
			r.w.Int(famLagSum.name, total, "consumergroup", group)
		}
	}
}

func (r *renderer) topicPartitions() {
	if r.opts.SkipTopicSeries {
		return
	}
	h := r.head(famTopicPartitions)
	for _, name := range r.topics {
		h.write()
		r.w.Int(famTopicPartitions.name, int64(len(r.s.Offsets.Topics[name].Partitions)), "topic", name)
	}
}

func (r *renderer) topicOffsets(f family, value func(cluster.Partition) int64) {
	if r.opts.SkipTopicSeries {
		return
	}
	h := r.head(f)
	for _, name := range r.topics {
		t := r.s.Offsets.Topics[name]
		for _, id := range labelOrder(t.Partitions) {
			if v := value(t.Partitions[id]); v >= 0 {
				h.write()
				r.w.Int(f.name, v, "partition", strconv.Itoa(int(id)), "topic", name)
			}
		}
	}
}

func (r *renderer) topicCurrent() {
	r.topicOffsets(famTopicCurrent, func(p cluster.Partition) int64 { return p.Newest })
}

func (r *renderer) topicOldest() {
	r.topicOffsets(famTopicOldest, func(p cluster.Partition) int64 { return p.Oldest })
}

func (r *renderer) lastSuccess() {
	h := r.head(famLastSuccess)
	for _, loop := range slices.Sorted(slices.Values(cluster.Loops)) {
		if ls := r.s.Loops[loop]; !ls.LastSuccess.IsZero() {
			h.write()
			r.w.Sample(famLastSuccess.name, float64(ls.LastSuccess.UnixNano())/1e9, "loop", loop)
		}
	}
}

func (r *renderer) up() {
	up := int64(1)
	for _, loop := range cluster.Loops {
		if !r.s.Loops[loop].Serving {
			up = 0
		}
	}
	r.w.Family(famUp.name, famUp.help, famUp.typ)
	r.w.Int(famUp.name, up)
}

// sortedKeys returns m's keys in order: series are written sorted, so
// the exposition is stable.
func sortedKeys[M ~map[K]V, K cmp.Ordered, V any](m M) []K { return slices.Sorted(maps.Keys(m)) }

// labelOrder returns partition IDs in the order of their label values
// ("10" before "2"), the order a registry gathers them in.
func labelOrder[V any](m map[int32]V) []int32 {
	ids := sortedKeys(m)
	slices.SortFunc(ids, func(a, b int32) int { return cmp.Compare(strconv.Itoa(int(a)), strconv.Itoa(int(b))) })
	return ids
}

// Collector is a prometheus.Collector over a Source, for registries,
// testutil and lint: it renders the current snapshot and parses the text
// back. The exporter's /metrics serves Render's bytes instead.
type Collector struct {
	src  Source
	opts Options
	part part
}

// part selects what a Collector exports: everything, the metrics fixed by
// the snapshot, or the snapshot's age.
type part int

const (
	partAll part = iota
	partSnapshot
	partAge
)

// New returns a collector of every metric of src's current snapshot.
func New(src Source, opts Options) *Collector { return newCollector(src, opts, partAll) }

// NewSnapshot returns a collector of the metrics that depend on snap
// alone: everything New exports but snapshot_age_seconds.
func NewSnapshot(snap *store.Snapshot, opts Options) *Collector {
	return newCollector(fixed{snap}, opts, partSnapshot)
}

// NewAge returns a collector of snapshot_age_seconds over src.
func NewAge(src Source, opts Options) *Collector { return newCollector(src, opts, partAge) }

func newCollector(src Source, opts Options, p part) *Collector {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Collector{src: src, opts: opts, part: p}
}

// fixed is a Source that always serves one snapshot.
type fixed struct{ s *store.Snapshot }

func (f fixed) Current() *store.Snapshot { return f.s }

// Describe implements prometheus.Collector. It describes nothing: the
// families depend on the snapshot, so the collector is unchecked.
func (c *Collector) Describe(chan<- *prometheus.Desc) {}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	s := c.src.Current()
	w := exposition.NewWriter(exposition.Text, 0)
	if c.part != partAge {
		Render(w, s, c.opts)
	}
	if c.part != partSnapshot {
		renderAge(newOutput(w, c.opts.ConstLabels), s, c.opts.Now())
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(bytes.NewReader(w.Bytes()))
	if err != nil {
		ch <- prometheus.NewInvalidMetric(prometheus.NewDesc("kafka_rebalance_exporter_render_error", "Rendering failed.", nil, nil), err)
		return
	}
	for _, name := range sortedKeys(mfs) {
		mf := mfs[name]
		for _, m := range mf.GetMetric() {
			ch <- parsed{desc: descOf(mf, m), m: m}
		}
	}
}

// parsed is one series read back from the rendering.
type parsed struct {
	desc *prometheus.Desc
	m    *dto.Metric
}

func (p parsed) Desc() *prometheus.Desc { return p.desc }

func (p parsed) Write(out *dto.Metric) error {
	out.Label, out.Gauge, out.Counter, out.Histogram = p.m.Label, p.m.Gauge, p.m.Counter, p.m.Histogram
	if h := out.Histogram; h != nil {
		// The text format lists the +Inf bucket; a client_golang
		// histogram leaves it implicit.
		if n := len(h.Bucket); n > 0 && math.IsInf(h.Bucket[n-1].GetUpperBound(), 1) {
			out.Histogram = &dto.Histogram{SampleCount: h.SampleCount, SampleSum: h.SampleSum, Bucket: h.Bucket[:n-1]}
		}
	}
	return nil
}

func descOf(mf *dto.MetricFamily, m *dto.Metric) *prometheus.Desc {
	labels := make([]string, 0, len(m.GetLabel()))
	for _, l := range m.GetLabel() {
		labels = append(labels, l.GetName())
	}
	return prometheus.NewDesc(mf.GetName(), mf.GetHelp(), labels, nil)
}

// SnapshotRenderer returns what renders one snapshot for /metrics, for
// web.MetricsOptions.Render.
//
// Each rendering starts with room for the previous one's size, so a large
// exposition is not copied over and over as it grows.
func SnapshotRenderer(opts Options) func(*store.Snapshot, exposition.Format) []byte {
	var last atomic.Int64
	return func(s *store.Snapshot, f exposition.Format) []byte {
		w := exposition.NewWriter(f, int(last.Load()+last.Load()/8)+1<<12)
		Render(w, s, opts)
		last.Store(int64(w.Len()))
		return w.Bytes()
	}
}

// LiveRegistry returns a registry of the metrics gathered at every scrape:
// src's snapshot age and the given collectors (the poller's instruments,
// build, Go and process metrics), for web.MetricsOptions.Live. They are
// registered through prometheus.WrapRegistererWith(opts.ConstLabels), so
// the constant labels are on these series too; a collector that already
// has one of those labels fails to register.
func LiveRegistry(src Source, opts Options, cs ...prometheus.Collector) (*prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	wrapped := prometheus.WrapRegistererWith(opts.ConstLabels, reg)
	ageOpts := opts
	ageOpts.ConstLabels = nil // the wrapping adds them
	for _, c := range append([]prometheus.Collector{NewAge(src, ageOpts)}, cs...) {
		if err := wrapped.Register(c); err != nil {
			return nil, err
		}
	}
	return reg, nil
}
