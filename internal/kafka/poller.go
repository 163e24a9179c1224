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
//   - A hung broker (connected, answering nothing) delays only what it
//     coordinates or leads: requests go out in per-broker rounds
//     (rounds.go), connection checks are waited on for a bounded time
//     (Poller.brokers), and metadata refreshes run off the poll's path
//     (metadata.go); broker_up is 0 for a broker that did not answer in
//     time. A failed refresh that still brought metadata (a leaderless
//     partition) costs only that partition.
//   - Nothing a broker or member sends is trusted: member metadata or
//     assignments above maxMemberMetadata (1 MiB) are not decoded and
//     are counted (member_metadata_skipped_total); a group whose
//     description exceeds sarama's response limit is asked alone, not
//     with the others.
//   - A group that moved to a broker the cached metadata does not know
//     makes the groups poll refresh the metadata and ask that broker in
//     the same poll.
//   - Credentials are read again when their files change (reload.go);
//     OAUTHBEARER tokens come from the token endpoint (oauth.go).
//   - Its own metrics (requests, poll durations, errors by stage, broker
//     reachability, denials, skipped member metadata, repaired label
//     values) are client_golang instruments in Metrics; credential and
//     token instruments are Auth's.
package kafka

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

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
	StageFindCoordinator        = "find_coordinator" // where a group that left its coordinator went
	StageDecodeMember           = "decode_member"
	StageOffsetFetch            = "offset_fetch"
	StageListOffsets            = "list_offsets"
	StageFetch                  = "fetch" // record timestamps for exact lag in seconds
)

// Stages lists every stage, so that error counters exist at zero.
var Stages = []string{StageConnect, StageTimeout, StageMetadata, StageListGroups, StageDescribeGroups,
	StageDescribeConsumerGroups, StageFindCoordinator, StageDecodeMember, StageOffsetFetch, StageListOffsets, StageFetch}

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

	// meta runs the loops' metadata refreshes off the polls' path; checks
	// are the connection checks still running (see brokers).
	meta   metadataRefresh
	checks connectChecks

	// plainPassword is the SASL PLAIN password file, read again before
	// each poll (nil without PLAIN and a file). sarama takes PLAIN's
	// password from its static configuration, so a loop whose client was
	// made with another password gets a new client (clientPassword: the
	// password of each loop's client).
	plainPassword  *watched[string]
	clientPassword map[string]string
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
	if cfg.SASLMechanism == sarama.SASLTypePlaintext && cfg.SASLPasswordFile != "" {
		// Read at start by the configuration already: an error here
		// leaves the password sarama has.
		if w, err := newSecretFile(fileSASLPassword, cfg.SASLPasswordFile, authLogger(cfg)); err == nil {
			p.plainPassword, p.clientPassword = w, map[string]string{}
		}
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
	sc := p.sarama
	if p.plainPassword != nil {
		pw := p.plainPassword.Get()
		if c := p.clients[loop]; c != nil && !c.Closed() && p.clientPassword[loop] != pw {
			// New connections are to use the new password; open ones
			// stay as they were authenticated, so the old client goes.
			_ = c.Close()
		}
		copied := *p.sarama
		copied.Net.SASL.Password = pw
		sc = &copied
		defer func() { p.clientPassword[loop] = pw }()
	}
	if c := p.clients[loop]; c != nil && !c.Closed() {
		return c, nil
	}
	p.count(apiMetadata) // creating a client sends a Metadata request
	c, err := sarama.NewClient(p.cfg.Brokers, sc)
	if err != nil {
		return nil, &StageError{Stage: StageConnect, Broker: -1, Err: err}
	}
	p.clients[loop] = c
	return c, nil
}

// reportReachable sets the per-broker reachability gauge from the groups
// loop's view: answered says, for each broker connected, whether it
// answered within the poll; each that failed to connect is 0.
func (p *Poller) reportReachable(answered map[int32]bool, connErr error) {
	up := maps.Clone(answered)
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
// so asking it would wait for that request. The others are checked at
// once, and for at most connectWait: sarama holds the lock through a
// connection's handshake too (ApiVersions, SASL), which a broker that
// accepts connections and answers nothing (hung) never finishes. Such a
// broker is returned as if connected: its round, not the whole poll, then
// waits for it and runs out of time.
func (p *Poller) brokers(c sarama.Client, busy func(id int32) bool) ([]*sarama.Broker, error) {
	type checked struct {
		b   *sarama.Broker
		err error
	}
	var out []*sarama.Broker
	var errs []error
	results := make(chan checked, len(c.Brokers()))
	pending := map[int32]*sarama.Broker{}
	for _, b := range c.Brokers() {
		if busy(b.ID()) || !p.checks.start(b) {
			// Busy, or its check of an earlier poll still waits on the
			// handshake: one check at a time per broker.
			out = append(out, b)
			continue
		}
		pending[b.ID()] = b
		go func() {
			defer p.checks.done(b)
			err := b.Open(c.Config())
			if err == nil || errors.Is(err, sarama.ErrAlreadyConnected) {
				err = nil
				if ok, cerr := b.Connected(); !ok {
					err = cerr
					if err == nil {
						err = errors.New("not connected")
					}
					_ = b.Close()
				}
			}
			results <- checked{b, err}
		}()
	}
	wait := time.NewTimer(p.connectWait())
	defer wait.Stop()
	for len(pending) > 0 {
		select {
		case r := <-results:
			delete(pending, r.b.ID())
			if r.err != nil {
				errs = append(errs, &StageError{Stage: StageConnect, Broker: r.b.ID(), Err: r.err})
				continue
			}
			out = append(out, r.b)
		case <-wait.C:
			for _, b := range pending {
				out = append(out, b)
			}
			clear(pending)
		}
	}
	slices.SortFunc(out, func(a, b *sarama.Broker) int { return cmp.Compare(a.ID(), b.ID()) })
	return out, errors.Join(errs...)
}

// connectChecks are the connection checks of brokers still running, by
// broker; a hung broker's lasts until its handshake times out.
type connectChecks struct {
	mu      sync.Mutex
	running map[*sarama.Broker]bool
}

// start reports whether a check of b may start (none is running), and
// marks it running.
func (c *connectChecks) start(b *sarama.Broker) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.running[b] {
		return false
	}
	if c.running == nil {
		c.running = map[*sarama.Broker]bool{}
	}
	c.running[b] = true
	return true
}

func (c *connectChecks) done(b *sarama.Broker) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.running, b)
}

// connectWait is how long brokers waits for connection checks: half the
// shorter poll interval, but at least a second (a refused handshake, SASL
// included, has the time to say so and be counted as a connect error) and
// at most the request timeout.
func (p *Poller) connectWait() time.Duration {
	return min(max(min(p.cfg.GroupPollInterval, p.cfg.PollInterval)/2, time.Second), p.cfg.RequestTimeout)
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
