// Package collector renders the exporter's latest snapshot as Prometheus
// metrics. It never talks to Kafka: a scrape costs the same whether the
// cluster is up, slow or gone, and says how fresh its data is.
package collector

import (
	"cmp"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/cluster"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/kafka"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/store"
)

// SelfPrefix is the namespace of the exporter's own health metrics.
const SelfPrefix = kafka.SelfPrefix

// Source is where the collector reads from.
type Source interface {
	Current() *store.Snapshot
}

// Options tune what the collector exports.
type Options struct {
	// Now is the clock for snapshot age; time.Now when nil.
	Now func() time.Time
	// MemberMetrics exports assigned partitions per member.
	MemberMetrics bool
}

// Collector is a prometheus.Collector over a Source. The poller's own
// instruments (requests, poll durations, errors by stage) are registered
// beside it (kafka.Metrics).
type Collector struct {
	src  Source
	opts Options
	part part
}

// part selects what a Collector exports: everything, the metrics fixed by
// the snapshot (rendered once per snapshot), or the snapshot's age (which
// changes with the clock, so it is rendered at every scrape).
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

var (
	groupLabels     = []string{"consumergroup"}
	partitionLabels = []string{"consumergroup", "topic", "partition"}

	descCurrentOffset = prometheus.NewDesc("kafka_consumergroup_current_offset",
		"Committed offset of the consumer group in the partition.", partitionLabels, nil)
	descLag = prometheus.NewDesc("kafka_consumergroup_lag",
		"Messages the consumer group is behind: log end offset minus committed offset, never negative. Only partitions with a committed offset.", partitionLabels, nil)
	descLagSum = prometheus.NewDesc("kafka_consumergroup_lag_sum",
		"Sum of kafka_consumergroup_lag over the topic's partitions.", []string{"consumergroup", "topic"}, nil)
	descMembers = prometheus.NewDesc("kafka_consumergroup_members",
		"Members of the consumer group.", groupLabels, nil)
	descState = prometheus.NewDesc("kafka_consumergroup_state",
		"Group state as the coordinator reports it: 1 for the current state, 0 for the others.", []string{"consumergroup", "state"}, nil)
	descInfo = prometheus.NewDesc("kafka_consumergroup_info",
		"Constant 1 with the group's type, protocol type, assignor, coordinator broker and generation source as labels.",
		[]string{"consumergroup", "group_type", "protocol_type", "assignor", "coordinator", "generation_source"}, nil)

	descTopicPartitions = prometheus.NewDesc("kafka_topic_partitions",
		"Partitions of the topic.", []string{"topic"}, nil)
	descTopicCurrent = prometheus.NewDesc("kafka_topic_partition_current_offset",
		"Log end offset (high watermark) of the partition.", []string{"topic", "partition"}, nil)
	descTopicOldest = prometheus.NewDesc("kafka_topic_partition_oldest_offset",
		"Log start offset of the partition.", []string{"topic", "partition"}, nil)
	descBrokers = prometheus.NewDesc("kafka_brokers",
		"Brokers in the cluster according to the latest metadata.", nil, nil)

	descUp = prometheus.NewDesc(SelfPrefix+"up",
		"1 when the latest poll of every loop fully succeeded, else 0.", nil, nil)
	descLastSuccess = prometheus.NewDesc(SelfPrefix+"last_successful_poll_timestamp_seconds",
		"Unix time of the loop's last fully successful poll.", []string{"loop"}, nil)
	descSnapshotAge = prometheus.NewDesc(SelfPrefix+"snapshot_age_seconds",
		"Age of the data served for the loop: now minus the time of its last successful poll.", []string{"loop"}, nil)
)

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	if c.part != partSnapshot {
		ch <- descSnapshotAge
	}
	if c.part == partAge {
		return
	}
	for _, d := range []*prometheus.Desc{descCurrentOffset, descLag, descLagSum, descMembers, descState, descInfo,
		descTopicPartitions, descTopicCurrent, descTopicOldest, descBrokers,
		descUp, descLastSuccess} {
		ch <- d
	}
	describeRebalance(ch)
	describeLagTime(ch)
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	s := c.src.Current()
	if c.part != partSnapshot {
		c.collectAge(ch, s)
	}
	if c.part == partAge {
		return
	}
	c.collectGroups(ch, s)
	c.collectOffsets(ch, s)
	c.collectRebalance(ch, s)
	c.collectLagTime(ch, s)
	c.collectSelf(ch, s)
}

func (c *Collector) collectGroups(ch chan<- prometheus.Metric, s *store.Snapshot) {
	if s.Groups == nil {
		return
	}
	for _, name := range sortedKeys(s.Groups.Groups) {
		g := s.Groups.Groups[name]
		ch <- prometheus.MustNewConstMetric(descMembers, prometheus.GaugeValue, float64(len(g.Members)), name)
		known := false
		for _, st := range cluster.AllStates {
			v := 0.0
			if st == g.State {
				v, known = 1, true
			}
			if st == "Unknown" && !known {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(descState, prometheus.GaugeValue, v, name, st)
		}
		ch <- prometheus.MustNewConstMetric(descInfo, prometheus.GaugeValue, 1,
			name, g.Type, g.ProtocolType, g.Assignor, strconv.Itoa(int(g.Coordinator)), s.Rebalance[name].GenerationSource)
	}
}

func (c *Collector) collectOffsets(ch chan<- prometheus.Metric, s *store.Snapshot) {
	o := s.Offsets
	if o == nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(descBrokers, prometheus.GaugeValue, float64(o.Brokers))
	for _, name := range sortedKeys(o.Topics) {
		t := o.Topics[name]
		ch <- prometheus.MustNewConstMetric(descTopicPartitions, prometheus.GaugeValue, float64(len(t.Partitions)), name)
		for _, id := range sortedKeys(t.Partitions) {
			p := t.Partitions[id]
			part := strconv.Itoa(int(id))
			if p.Newest >= 0 {
				ch <- prometheus.MustNewConstMetric(descTopicCurrent, prometheus.GaugeValue, float64(p.Newest), name, part)
			}
			if p.Oldest >= 0 {
				ch <- prometheus.MustNewConstMetric(descTopicOldest, prometheus.GaugeValue, float64(p.Oldest), name, part)
			}
		}
	}
	for _, group := range sortedKeys(o.Committed) {
		for _, topic := range sortedKeys(o.Committed[group]) {
			t, parts := o.Topics[topic], o.Committed[group][topic]
			for _, id := range sortedKeys(parts) {
				off := parts[id]
				part := strconv.Itoa(int(id))
				ch <- prometheus.MustNewConstMetric(descCurrentOffset, prometheus.GaugeValue, float64(off), group, topic, part)
				if lag, ok := cluster.Lag(t, id, off); ok {
					ch <- prometheus.MustNewConstMetric(descLag, prometheus.GaugeValue, float64(lag), group, topic, part)
				}
			}
			if sum, ok := cluster.TopicLag(t, parts); ok {
				ch <- prometheus.MustNewConstMetric(descLagSum, prometheus.GaugeValue, float64(sum), group, topic)
			}
		}
	}
}

func (c *Collector) collectSelf(ch chan<- prometheus.Metric, s *store.Snapshot) {
	up := 1.0
	for _, loop := range cluster.Loops {
		ls := s.Loops[loop]
		if !ls.LastOK {
			up = 0
		}
		if !ls.LastSuccess.IsZero() {
			ch <- prometheus.MustNewConstMetric(descLastSuccess, prometheus.GaugeValue, float64(ls.LastSuccess.UnixNano())/1e9, loop)
		}
	}
	ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, up)
}

func (c *Collector) collectAge(ch chan<- prometheus.Metric, s *store.Snapshot) {
	now := c.opts.Now()
	for _, loop := range cluster.Loops {
		if ls := s.Loops[loop]; !ls.LastSuccess.IsZero() {
			ch <- prometheus.MustNewConstMetric(descSnapshotAge, prometheus.GaugeValue, max(now.Sub(ls.LastSuccess).Seconds(), 0), loop)
		}
	}
}

// sortedKeys returns m's keys in order: series are emitted sorted, so
// the exposition is stable.
func sortedKeys[M ~map[K]V, K cmp.Ordered, V any](m M) []K { return slices.Sorted(maps.Keys(m)) }

// SnapshotGatherer returns what renders one snapshot's metrics, for
// web.MetricsOptions.Snapshot.
func SnapshotGatherer(opts Options) func(*store.Snapshot) prometheus.Gatherer {
	return func(s *store.Snapshot) prometheus.Gatherer {
		reg := prometheus.NewRegistry()
		reg.MustRegister(NewSnapshot(s, opts))
		return reg
	}
}

// LiveRegistry returns a registry of the metrics gathered at every scrape:
// src's snapshot age and the given collectors (the poller's instruments,
// build, Go and process metrics), for web.MetricsOptions.Live.
func LiveRegistry(src Source, opts Options, cs ...prometheus.Collector) (*prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	for _, c := range append([]prometheus.Collector{NewAge(src, opts)}, cs...) {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return reg, nil
}
