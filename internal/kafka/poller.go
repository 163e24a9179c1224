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

	// Each loop has its own client, so its own connections: a broker that
	// hangs on one loop's requests, or a connection one loop has to drop,
	// does not stall or fail the other loop.
	mu      sync.Mutex
	clients map[string]sarama.Client

	// Per-broker rounds of each loop's requests (see rounds).
	groupRounds  *rounds[brokerGroups]
	commitRounds *rounds[brokerCommits]
	logRounds    *rounds[brokerLogOffsets]

	// The previous results: the offsets poll reads each group's
	// coordinator from lastGroups, and a partly failed poll carries
	// forward from them what it could not read. This is the only copy.
	lastGroups  atomic.Pointer[cluster.GroupsObservation]
	lastOffsets atomic.Pointer[cluster.OffsetsObservation]

	// times caches record timestamps for lag in seconds (made on first
	// use).
	times *timestampCache
}

// New returns a poller; it connects lazily, so a cluster that is down at
// start only makes polls fail until it comes up.
func New(cfg *config.Config, sc *sarama.Config, log zerolog.Logger) *Poller {
	p := &Poller{cfg: cfg, sarama: sc, log: log, filters: cfg.Filters, vers: versionsFor(cfg.Version), metrics: NewMetrics(),
		clients: map[string]sarama.Client{}, groupRounds: newRounds[brokerGroups](),
		commitRounds: newRounds[brokerCommits](), logRounds: newRounds[brokerLogOffsets]()}
	if cfg.LagExact {
		p.times = newTimestampCache(cfg.LagExactCacheSize)
	}
	return p
}

// Metrics returns the poller's instruments, to be registered.
func (p *Poller) Metrics() *Metrics { return p.metrics }

func (p *Poller) count(api string) { p.metrics.request(api) }

// The loops, for their clients.
const (
	loopGroups  = cluster.LoopGroups
	loopOffsets = cluster.LoopOffsets
)

// Close releases the Kafka connections.
func (p *Poller) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []error
	for loop, c := range p.clients {
		errs = append(errs, c.Close())
		delete(p.clients, loop)
	}
	return errors.Join(errs...)
}

// client returns loop's client, creating it on first use or after it was
// closed (for example when every broker went away).
func (p *Poller) client(loop string) (sarama.Client, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c := p.clients[loop]; c != nil && !c.Closed() {
		return c, nil
	}
	p.count(apiMetadata) // creating a client sends a Metadata request
	c, err := sarama.NewClient(p.cfg.Brokers, p.sarama)
	if err != nil {
		return nil, &StageError{Stage: StageConnect, Broker: -1, Err: err}
	}
	p.clients[loop] = c
	return c, nil
}

// reportReachable sets the per-broker reachability gauge from the groups
// loop's view: 1 for each broker connected, 0 for each that failed.
func (p *Poller) reportReachable(brokers []*sarama.Broker, connErr error) {
	up := map[int32]bool{}
	for _, b := range brokers {
		up[b.ID()] = true
	}
	for id := range failedBrokers(connErr) {
		up[id] = false
	}
	p.metrics.brokersReachable(up)
}

// denied counts an authorization failure by the resource it denies.
func (p *Poller) denied(err error) {
	switch {
	case errors.Is(err, sarama.ErrClusterAuthorizationFailed):
		p.metrics.denied("cluster")
	case errors.Is(err, sarama.ErrGroupAuthorizationFailed):
		p.metrics.denied("group")
	case errors.Is(err, sarama.ErrTopicAuthorizationFailed):
		p.metrics.denied("topic")
	}
}

// brokers returns every broker of the cluster with an open connection.
// Brokers that cannot be reached are reported as stage errors. A broker
// still busy with a request of an earlier round counts as connected
// without being touched: sarama holds a broker's lock for a whole request,
// so asking it would wait for that request.
func (p *Poller) brokers(c sarama.Client, busy func(id int32) bool) ([]*sarama.Broker, error) {
	var out []*sarama.Broker
	var errs []error
	for _, b := range c.Brokers() {
		if busy(b.ID()) {
			out = append(out, b)
			continue
		}
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

// reopen connects b again when an earlier request of this loop dropped its
// connection, so one failed request costs only itself.
func (p *Poller) reopen(b *sarama.Broker) error {
	if ok, _ := b.Connected(); ok {
		return nil
	}
	if err := b.Open(p.sarama); err != nil && !errors.Is(err, sarama.ErrAlreadyConnected) {
		return &StageError{Stage: StageConnect, Broker: b.ID(), Err: err}
	}
	if ok, err := b.Connected(); !ok {
		if err == nil {
			err = errors.New("not connected")
		}
		return &StageError{Stage: StageConnect, Broker: b.ID(), Err: err}
	}
	return nil
}

// closeOnError drops a broker connection after a transport error so the
// next poll reconnects instead of reusing a broken socket.
func (p *Poller) closeOnError(b *sarama.Broker, err error) {
	var kerr sarama.KError
	if err != nil && !errors.As(err, &kerr) {
		_ = b.Close()
	}
}
