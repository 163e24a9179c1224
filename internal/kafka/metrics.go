package kafka

import (
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/cluster"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/exposition"
)

// SelfPrefix is the namespace of the exporter's own metrics.
const SelfPrefix = "kafka_rebalance_exporter_"

// PollDurationBuckets are the poll duration histogram's bounds in seconds.
var PollDurationBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// Kafka API keys the poller sends, by the names used in the requests
// metric's api label.
const (
	apiFetch                 = "Fetch"
	apiListOffsets           = "ListOffsets"
	apiMetadata              = "Metadata"
	apiOffsetFetch           = "OffsetFetch"
	apiDescribeGroups        = "DescribeGroups"
	apiListGroups            = "ListGroups"
	apiConsumerGroupDescribe = "ConsumerGroupDescribe"
	apiFindCoordinator       = "FindCoordinator"
)

var apis = []string{apiFetch, apiListOffsets, apiMetadata, apiOffsetFetch, apiDescribeGroups, apiListGroups, apiConsumerGroupDescribe, apiFindCoordinator}

// Metrics are the poller's own instruments: what it sent, how long its
// polls took and which steps failed. They count work as it happens, so
// they live here rather than in the snapshot; register them beside the
// snapshot collector.
type Metrics struct {
	pollDuration *prometheus.HistogramVec
	polls        *prometheus.CounterVec
	pollErrors   *prometheus.CounterVec
	requests     *prometheus.CounterVec
	brokerUp     *prometheus.GaugeVec
	deniedTotal  *prometheus.CounterVec
	skipped      *prometheus.CounterVec
	badUTF8      prometheus.CounterFunc

	mu      sync.Mutex
	brokers map[int32]bool // brokers with a brokerUp series
}

// NewMetrics returns the instruments with every label value of their
// fixed vocabularies at zero, so that a rate() over them never starts from
// a missing series.
func NewMetrics() *Metrics {
	m := &Metrics{
		pollDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: SelfPrefix + "poll_duration_seconds", Help: "Duration of polls, successful or not.", Buckets: PollDurationBuckets,
		}, []string{"loop"}),
		polls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: SelfPrefix + "polls_total", Help: "Polls attempted.",
		}, []string{"loop"}),
		pollErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: SelfPrefix + "poll_errors_total", Help: "Failed poll steps by stage.",
		}, []string{"stage"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: SelfPrefix + "kafka_requests_total", Help: "Kafka requests sent by the exporter, by API.",
		}, []string{"api"}),
		brokerUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: SelfPrefix + "broker_up", Help: "1 when the broker answered the latest groups poll in time, else 0 (unreachable, failing, or connected but not answering).",
		}, []string{"broker"}),
		deniedTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: SelfPrefix + "denied_total", Help: "Requests or parts of them the brokers denied for lack of permission, by resource type (cluster, group, topic).",
		}, []string{"resource"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: SelfPrefix + "member_metadata_skipped_total",
			Help: "Member metadata or assignments not decoded because they exceed the size bound (1 MiB per member), and groups not described because their DescribeGroups response exceeds the client's response size limit, by reason.",
		}, []string{"reason"}),
		// Not the poller's, but the exporter's own count of what it had
		// to repair in what Kafka told it; it lives with the poller's
		// instruments so that it is served, constant labels and all,
		// wherever they are.
		badUTF8: prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: SelfPrefix + "invalid_utf8_labels_total",
			Help: "Label values rendered with bytes that are not UTF-8 replaced by U+FFFD; counted at each rendering, i.e. once per snapshot and format scraped.",
		}, func() float64 { return float64(exposition.RepairedLabelValues()) }),
		brokers: map[int32]bool{},
	}
	for _, r := range skipReasons {
		m.skipped.WithLabelValues(r)
	}
	for _, r := range []string{"cluster", "group", "topic"} {
		m.deniedTotal.WithLabelValues(r)
	}
	for _, l := range cluster.Loops {
		m.pollDuration.WithLabelValues(l)
		m.polls.WithLabelValues(l)
	}
	for _, s := range Stages {
		m.pollErrors.WithLabelValues(s)
	}
	for _, a := range apis {
		m.requests.WithLabelValues(a)
	}
	return m
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	m.pollDuration.Describe(ch)
	m.polls.Describe(ch)
	m.pollErrors.Describe(ch)
	m.requests.Describe(ch)
	m.brokerUp.Describe(ch)
	m.deniedTotal.Describe(ch)
	m.skipped.Describe(ch)
	m.badUTF8.Describe(ch)
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.pollDuration.Collect(ch)
	m.polls.Collect(ch)
	m.pollErrors.Collect(ch)
	m.requests.Collect(ch)
	m.brokerUp.Collect(ch)
	m.deniedTotal.Collect(ch)
	m.skipped.Collect(ch)
	m.badUTF8.Collect(ch)
}

// ObservePoll records one poll of loop: its duration and each failed step
// of err.
func (m *Metrics) ObservePoll(loop string, took time.Duration, err error) {
	m.polls.WithLabelValues(loop).Inc()
	m.pollDuration.WithLabelValues(loop).Observe(took.Seconds())
	for _, se := range StageErrors(err) {
		m.stageError(se.Stage)
	}
}

func (m *Metrics) stageError(stage string) { m.pollErrors.WithLabelValues(stage).Inc() }

func (m *Metrics) request(api string) { m.requests.WithLabelValues(api).Inc() }

func (m *Metrics) denied(resource string) { m.deniedTotal.WithLabelValues(resource).Inc() }

// Reasons of member_metadata_skipped_total.
const (
	skipMetadata   = "metadata_too_large"   // one member's subscription metadata above maxMemberMetadata
	skipAssignment = "assignment_too_large" // one member's assignment above maxMemberMetadata
	skipResponse   = "response_too_large"   // one group's DescribeGroups response above sarama.MaxResponseSize
)

var skipReasons = []string{skipMetadata, skipAssignment, skipResponse}

func (m *Metrics) skip(reason string) { m.skipped.WithLabelValues(reason).Inc() }

// brokersReachable sets broker_up for the brokers in up and removes the
// series of brokers no longer in the cluster.
func (m *Metrics) brokersReachable(up map[int32]bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for id := range m.brokers {
		if _, ok := up[id]; !ok {
			m.brokerUp.DeleteLabelValues(strconv.Itoa(int(id)))
			delete(m.brokers, id)
		}
	}
	for id, ok := range up {
		v := 0.0
		if ok {
			v = 1
		}
		m.brokerUp.WithLabelValues(strconv.Itoa(int(id))).Set(v)
		m.brokers[id] = true
	}
}
