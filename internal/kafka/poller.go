// Package poller reads consumer groups and offsets from Kafka. It is the
// only package that talks to Kafka, and it only sends read requests:
// Metadata, ApiVersions, ListGroups, DescribeGroups, ConsumerGroupDescribe,
// OffsetFetch and ListOffsets. It never joins a group, commits or produces.
package kafka

import (
	"context"
	"errors"
	"fmt"
	"sort"
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
	StageMetadata               = "metadata"
	StageAPIVersions            = "api_versions"
	StageListGroups             = "list_groups"
	StageDescribeGroups         = "describe_groups"
	StageDescribeConsumerGroups = "describe_consumer_groups"
	StageDecodeMember           = "decode_member"
	StageOffsetFetch            = "offset_fetch"
	StageListOffsets            = "list_offsets"
)

// Stages lists every stage, so that error counters exist at zero.
var Stages = []string{StageConnect, StageMetadata, StageAPIVersions, StageListGroups, StageDescribeGroups,
	StageDescribeConsumerGroups, StageDecodeMember, StageOffsetFetch, StageListOffsets}

// Kafka API keys the poller sends, by the names used in the requests metric.
var apiNames = map[int16]string{
	3: "Metadata", 18: "ApiVersions", 16: "ListGroups", 15: "DescribeGroups",
	69: "ConsumerGroupDescribe", 9: "OffsetFetch", 2: "ListOffsets", 1: "Fetch",
}

// APINames lists the request names the poller counts.
func APINames() []string {
	names := make([]string, 0, len(apiNames))
	for _, n := range apiNames {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

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
		out = append(out, &StageError{Stage: StageConnect, Broker: -1, Err: err})
	}
	walk(err)
	return out
}

// Poller holds the Kafka client and what it learned about each broker.
type Poller struct {
	cfg     *config.Config
	sarama  *sarama.Config
	log     zerolog.Logger
	filters config.Filters
	vers    requestVersions

	mu     sync.Mutex
	client sarama.Client
	// versions caches each broker's ApiVersions answer for the life of its
	// connection; opening or dropping a connection forgets it.
	versions map[*sarama.Broker]map[int16]int16

	// The previous results, for carrying forward what a partly failed poll
	// could not read.
	lastGroups  atomic.Pointer[cluster.GroupsObservation]
	lastOffsets atomic.Pointer[cluster.OffsetsObservation]

	requests     sync.Map // api name -> *atomic.Uint64
	decodeErrors atomic.Uint64
}

// New returns a poller; it connects lazily, so a cluster that is down at
// start only makes polls fail until it comes up.
func New(cfg *config.Config, sc *sarama.Config, log zerolog.Logger) *Poller {
	p := &Poller{cfg: cfg, sarama: sc, log: log, filters: cfg.Filters, versions: map[*sarama.Broker]map[int16]int16{}, vers: versionsFor(cfg.Version)}
	for _, n := range apiNames {
		p.requests.Store(n, new(atomic.Uint64))
	}
	return p
}

// RequestCounts returns how many requests of each API the poller has sent.
func (p *Poller) RequestCounts() map[string]uint64 {
	out := map[string]uint64{}
	p.requests.Range(func(k, v any) bool {
		out[k.(string)] = v.(*atomic.Uint64).Load()
		return true
	})
	return out
}

// DecodeErrors counts member metadata or assignments that did not decode.
// They do not fail a poll: the member is exported without them.
func (p *Poller) DecodeErrors() uint64 { return p.decodeErrors.Load() }

func (p *Poller) count(key int16) {
	if v, ok := p.requests.Load(apiNames[key]); ok {
		v.(*atomic.Uint64).Add(1)
	}
}

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
	p.count(3) // creating a client sends a Metadata request
	c, err := sarama.NewClient(p.cfg.Brokers, p.sarama)
	if err != nil {
		return nil, &StageError{Stage: StageConnect, Broker: -1, Err: err}
	}
	p.client = c
	p.versions = map[*sarama.Broker]map[int16]int16{}
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
		if err == nil {
			// A new connection may reach an upgraded broker: ask its API
			// versions again.
			p.forgetVersions(b)
		}
		if ok, err := b.Connected(); !ok {
			if err == nil {
				err = errors.New("not connected")
			}
			errs = append(errs, &StageError{Stage: StageConnect, Broker: b.ID(), Err: err})
			_ = b.Close()
			p.forgetVersions(b)
			continue
		}
		out = append(out, b)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID() < out[j].ID() })
	return out, errors.Join(errs...)
}

// maxVersion returns the highest version of an API the broker supports, or
// -1 when it does not support it at all.
func (p *Poller) maxVersion(b *sarama.Broker, key int16) (int16, error) {
	p.mu.Lock()
	v, ok := p.versions[b]
	p.mu.Unlock()
	if !ok {
		p.count(18)
		resp, err := b.ApiVersions(&sarama.ApiVersionsRequest{Version: max(p.vers.apiVersions, 0), ClientSoftwareName: "kafka-rebalance-exporter", ClientSoftwareVersion: "1"})
		if err != nil {
			p.closeOnError(b, err)
			return -1, &StageError{Stage: StageAPIVersions, Broker: b.ID(), Err: err}
		}
		v = make(map[int16]int16, len(resp.ApiKeys))
		for _, k := range resp.ApiKeys {
			v[k.ApiKey] = k.MaxVersion
		}
		p.mu.Lock()
		p.versions[b] = v
		p.mu.Unlock()
	}
	if max, ok := v[key]; ok {
		return max, nil
	}
	return -1, nil
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
		p.forgetVersions(b)
	}
}

func (p *Poller) forgetVersions(b *sarama.Broker) {
	p.mu.Lock()
	delete(p.versions, b)
	p.mu.Unlock()
}
