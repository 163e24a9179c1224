package offsetslog

import (
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// MetricPrefix is the name prefix of the package's metrics: the
// exporter's self-metrics namespace (kafka.SelfPrefix) and offsets_log_.
const MetricPrefix = "kafka_rebalance_exporter_offsets_log_"

// Record types of records_total.
const (
	typeOffsetCommit           = "offset_commit"
	typeOffsetCommitTombstone  = "offset_commit_tombstone"
	typeGroupMetadata          = "group_metadata"
	typeGroupMetadataTombstone = "group_metadata_tombstone"
)

var recordTypes = []string{typeOffsetCommit, typeOffsetCommitTombstone, typeGroupMetadata, typeGroupMetadataTombstone}

// Reasons of records_skipped_total.
const (
	skipUnknownKey = "unknown_key" // key version 3+: KIP-848, share, streams group records
	skipControl    = "control"     // transaction markers
	skipAborted    = "aborted"     // offset commits of aborted transactions
)

var skipReasons = []string{skipUnknownKey, skipControl, skipAborted}

// Reasons of read_errors_total, PartitionStatus.Error and View.Error.
const (
	ReasonConnect      = "connect"       // no broker answered, or authentication failed
	ReasonMetadata     = "metadata"      // the topic's metadata could not be read
	ReasonDenied       = "denied"        // TOPIC_AUTHORIZATION_FAILED: no Describe or no Read on the topic
	ReasonUnknownTopic = "unknown_topic" // the topic or partition does not exist
	ReasonNoLeader     = "no_leader"     // the partition has no leader, or the broker asked is not it
	ReasonBroker       = "broker"        // the request to the leader failed (network, timeout)
	ReasonOffsetReset  = "offset_reset"  // the position was out of range and was moved
	ReasonOther        = "other"         // any other error code
)

// Reasons lists every read error reason.
var Reasons = []string{ReasonConnect, ReasonMetadata, ReasonDenied, ReasonUnknownTopic, ReasonNoLeader, ReasonBroker,
	ReasonOffsetReset, ReasonOther}

// Kafka APIs the reader sends, as requests_total's api label names them.
const (
	apiMetadata    = "Metadata"
	apiListOffsets = "ListOffsets"
	apiFetch       = "Fetch"
)

var apis = []string{apiMetadata, apiListOffsets, apiFetch}

// Metrics are the reader's own instruments. They count work as it
// happens; the caller registers them (Reader.Metrics) beside the
// exporter's other self-metrics. Every label value of a fixed vocabulary
// exists from the start, at zero.
type Metrics struct {
	records       *prometheus.CounterVec
	skipped       *prometheus.CounterVec
	decodeErrors  *prometheus.CounterVec
	readErrors    *prometheus.CounterVec
	requests      *prometheus.CounterVec
	behind        *prometheus.GaugeVec
	partsBehind   prometheus.Gauge
	caughtUp      prometheus.Gauge
	readable      prometheus.Gauge
	groups        prometheus.Gauge
	lastPartition map[int32]bool
	mu            sync.Mutex
}

func newMetrics() *Metrics {
	m := &Metrics{
		records: prometheus.NewCounterVec(prometheus.CounterOpts{Name: MetricPrefix + "records_total",
			Help: "Records of __consumer_offsets decoded, by type."}, []string{"type"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: MetricPrefix + "records_skipped_total",
			Help: "Records of __consumer_offsets read and skipped, by reason: unknown_key (KIP-848, share and other records with key version 3+), control (transaction markers), aborted (offset commits of aborted transactions)."},
			[]string{"reason"}),
		decodeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: MetricPrefix + "decode_errors_total",
			Help: "Records of __consumer_offsets that could not be decoded, by the part that failed."}, []string{"part"}),
		readErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: MetricPrefix + "read_errors_total",
			Help: "Failed attempts to read __consumer_offsets, by reason; each is retried with backoff."}, []string{"reason"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: MetricPrefix + "kafka_requests_total",
			Help: "Kafka requests sent by the __consumer_offsets reader, by API."}, []string{"api"}),
		behind: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: MetricPrefix + "records_behind",
			Help: "Offsets between the reader's position and the high watermark, per partition of __consumer_offsets."},
			[]string{"partition"}),
		partsBehind: prometheus.NewGauge(prometheus.GaugeOpts{Name: MetricPrefix + "partitions_behind",
			Help: "Partitions of __consumer_offsets not live and caught up (behind, unreadable or not started)."}),
		caughtUp: prometheus.NewGauge(prometheus.GaugeOpts{Name: MetricPrefix + "caught_up",
			Help: "1 when every partition of __consumer_offsets is live and caught up."}),
		readable: prometheus.NewGauge(prometheus.GaugeOpts{Name: MetricPrefix + "readable",
			Help: "1 when __consumer_offsets and every partition of it were read successfully at the latest attempt."}),
		groups: prometheus.NewGauge(prometheus.GaugeOpts{Name: MetricPrefix + "groups",
			Help: "Groups with a record in __consumer_offsets since the start position."}),
		lastPartition: map[int32]bool{},
	}
	for _, v := range recordTypes {
		m.records.WithLabelValues(v)
	}
	for _, v := range skipReasons {
		m.skipped.WithLabelValues(v)
	}
	for _, v := range decodeParts {
		m.decodeErrors.WithLabelValues(v)
	}
	for _, v := range Reasons {
		m.readErrors.WithLabelValues(v)
	}
	for _, v := range apis {
		m.requests.WithLabelValues(v)
	}
	return m
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	m.records.Describe(ch)
	m.skipped.Describe(ch)
	m.decodeErrors.Describe(ch)
	m.readErrors.Describe(ch)
	m.requests.Describe(ch)
	m.behind.Describe(ch)
	m.partsBehind.Describe(ch)
	m.caughtUp.Describe(ch)
	m.readable.Describe(ch)
	m.groups.Describe(ch)
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.records.Collect(ch)
	m.skipped.Collect(ch)
	m.decodeErrors.Collect(ch)
	m.readErrors.Collect(ch)
	m.requests.Collect(ch)
	m.behind.Collect(ch)
	m.partsBehind.Collect(ch)
	m.caughtUp.Collect(ch)
	m.readable.Collect(ch)
	m.groups.Collect(ch)
}

// observeView sets the gauges from a published view. Partitions no longer
// in the topic lose their series; a partition whose position or high
// watermark is not known yet has none.
func (m *Metrics) observeView(v *View) {
	m.mu.Lock()
	defer m.mu.Unlock()
	seen := make(map[int32]bool, len(v.Partitions))
	notLive := 0
	for _, p := range v.Partitions {
		if !p.Live() || v.Error != "" {
			notLive++
		}
		if b := p.Behind(); b >= 0 {
			m.behind.WithLabelValues(strconv.Itoa(int(p.Partition))).Set(float64(b))
			seen[p.Partition] = true
		}
	}
	for id := range m.lastPartition {
		if !seen[id] {
			m.behind.DeleteLabelValues(strconv.Itoa(int(id)))
		}
	}
	m.lastPartition = seen
	m.partsBehind.Set(float64(notLive))
	m.caughtUp.Set(boolGauge(v.CaughtUp()))
	m.readable.Set(boolGauge(v.Readable()))
	m.groups.Set(float64(len(v.Groups)))
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
