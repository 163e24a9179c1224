// Package kafka is the only code that talks to Kafka: the sarama client
// set-up (versions, timeouts, TLS, SASL) and the poller, whose two loops
// read consumer groups and offsets and hand each observation to a Sink.
//
// Rules:
//   - Read-only. It sends Metadata, ListGroups, DescribeGroups,
//     ConsumerGroupDescribe, OffsetFetch, ListOffsets and (exact lag in
//     seconds only) Fetch; sarama adds ApiVersions and SASL on connect. It
//     never joins a group, commits or produces.
//   - sarama negotiates every request's version with each broker; the
//     poller only caps versions at KRE_KAFKA_VERSION (versions.go) and
//     handles the two cases sarama cannot: OffsetFetch batching (v8+) and
//     KIP-848's ConsumerGroupDescribe.
//   - A failed step is a StageError naming its stage and broker; a poll
//     in which some brokers fail is partial, and what they could not say
//     is carried forward from the poller's previous observation (the only
//     copy kept).
//   - Its own metrics (requests, poll durations, errors by stage) are
//     client_golang instruments in Metrics.
package kafka

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/IBM/sarama"
	"github.com/rs/zerolog"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/cluster"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/config"
)

// Stages name the steps of a poll; errors are counted per stage.
const (
	StageConnect                = "connect"
	StageTimeout                = "timeout" // the poll's deadline passed before a step could start
	StageMetadata               = "metadata"
	StageListGroups             = "list_groups"
	StageDescribeGroups         = "describe_groups"
	StageDescribeConsumerGroups = "describe_consumer_groups"
	StageDecodeMember           = "decode_member"
	StageOffsetFetch            = "offset_fetch"
	StageListOffsets            = "list_offsets"
	StageFetch                  = "fetch" // record timestamps for exact lag in seconds
)

// Stages lists every stage, so that error counters exist at zero.
var Stages = []string{StageConnect, StageTimeout, StageMetadata, StageListGroups, StageDescribeGroups,
	StageDescribeConsumerGroups, StageDecodeMember, StageOffsetFetch, StageListOffsets, StageFetch}

// StageError is one failed step of a poll. A poll can fail in several
// places at once; they are joined with errors.Join.
type StageError struct {
	Stage  string
	Broker int32 // -1 when not tied to one broker
	Err    error
}

func (e *StageError) Error() string {
	if e.Broker >= 0 {
		return fmt.Sprintf("%s on broker %d: %v", e.Stage, e.Broker, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.Stage, e.Err)
}

func (e *StageError) Unwrap() error { return e.Err }

// StageErrors flattens a joined poll error into its stage errors.
func StageErrors(err error) []*StageError {
	var out []*StageError
	var walk func(error)
	walk = func(err error) {
		if err == nil {
			return
		}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		var se *StageError
		if errors.As(err, &se) {
			out = append(out, se)
			return
		}
		stage := StageConnect
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			stage = StageTimeout
		}
		out = append(out, &StageError{Stage: stage, Broker: -1, Err: err})
	}
	walk(err)
	return out
}

// Poller holds the Kafka client and the previous observations.
type Poller struct {
	cfg     *config.Config
	sarama  *sarama.Config
	log     zerolog.Logger
	filters config.Filters
	vers    requestVersions
	metrics *Metrics

	mu     sync.Mutex
	client sarama.Client

	// The previous results: the offsets poll reads each group's
	// coordinator from lastGroups, and a partly failed poll carries
	// forward from them what it could not read. This is the only copy.
	lastGroups  atomic.Pointer[cluster.GroupsObservation]
	lastOffsets atomic.Pointer[cluster.OffsetsObservation]

	// times caches record timestamps for exact lag in seconds; nil when
	// KRE_LAG_EXACT is off.
	times *timestampCache
}

// New returns a poller; it connects lazily, so a cluster that is down at
// start only makes polls fail until it comes up.
func New(cfg *config.Config, sc *sarama.Config, log zerolog.Logger) *Poller {
	p := &Poller{cfg: cfg, sarama: sc, log: log, filters: cfg.Filters, vers: versionsFor(cfg.Version), metrics: NewMetrics()}
	if cfg.LagExact {
		p.times = newTimestampCache(cfg.LagExactCacheSize)
	}
	return p
}

// Metrics returns the poller's instruments, to be registered.
func (p *Poller) Metrics() *Metrics { return p.metrics }

func (p *Poller) count(api string) { p.metrics.request(api) }

// Close releases the Kafka connections.
func (p *Poller) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.client == nil {
		return nil
	}
	err := p.client.Close()
	p.client = nil
	return err
}

// clientFor returns the shared client, creating it on first use or after
// it was closed (for example when every broker went away).
func (p *Poller) clientFor() (sarama.Client, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.client != nil && !p.client.Closed() {
		return p.client, nil
	}
	p.count(apiMetadata) // creating a client sends a Metadata request
	c, err := sarama.NewClient(p.cfg.Brokers, p.sarama)
	if err != nil {
		return nil, &StageError{Stage: StageConnect, Broker: -1, Err: err}
	}
	p.client = c
	return c, nil
}

// brokers returns every broker of the cluster with an open connection.
// Brokers that cannot be reached are reported as stage errors.
func (p *Poller) brokers(c sarama.Client) ([]*sarama.Broker, error) {
	var out []*sarama.Broker
	var errs []error
	for _, b := range c.Brokers() {
		err := b.Open(c.Config())
		if err != nil && !errors.Is(err, sarama.ErrAlreadyConnected) {
			errs = append(errs, &StageError{Stage: StageConnect, Broker: b.ID(), Err: err})
			continue
		}
		if ok, err := b.Connected(); !ok {
			if err == nil {
				err = errors.New("not connected")
			}
			errs = append(errs, &StageError{Stage: StageConnect, Broker: b.ID(), Err: err})
			_ = b.Close()
			continue
		}
		out = append(out, b)
	}
	slices.SortFunc(out, func(a, b *sarama.Broker) int { return cmp.Compare(a.ID(), b.ID()) })
	return out, errors.Join(errs...)
}

// forEachBroker runs fn for every broker concurrently and joins the errors.
func forEachBroker(ctx context.Context, brokers []*sarama.Broker, fn func(*sarama.Broker) error) error {
	var wg sync.WaitGroup
	errs := make([]error, len(brokers))
	for i, b := range brokers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if ctx.Err() != nil {
				errs[i] = ctx.Err()
				return
			}
			errs[i] = fn(b)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// closeOnError drops a broker connection after a transport error so the
// next poll reconnects instead of reusing a broken socket.
func (p *Poller) closeOnError(b *sarama.Broker, err error) {
	var kerr sarama.KError
	if err != nil && !errors.As(err, &kerr) {
		_ = b.Close()
	}
}
