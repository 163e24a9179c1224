package lagtimeit

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/collector"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/kafkatest"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/status"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/store"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/testkit"
)

// driver plays the exporter's offsets loop: every interval it runs one
// groups poll and one offsets poll on each exporter, in the test
// goroutine, and keeps every snapshot so a test can look back at what
// each poll saw.
type driver struct {
	t         *testing.T
	tick      *time.Ticker
	exporters []*kafkatest.Exporter
	snaps     [][]*store.Snapshot // per exporter, oldest first
	took      [][]time.Duration   // per exporter: each snapshot's offsets poll duration
}

func newDriver(t *testing.T, interval time.Duration, exporters ...*kafkatest.Exporter) *driver {
	d := &driver{t: t, tick: time.NewTicker(interval), exporters: exporters, snaps: make([][]*store.Snapshot, len(exporters)), took: make([][]time.Duration, len(exporters))}
	t.Cleanup(d.tick.Stop)
	return d
}

// poll waits for the next tick and polls every exporter once.
func (d *driver) poll() {
	d.t.Helper()
	<-d.tick.C
	for i, e := range d.exporters {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := e.Poller.GroupsPoll(ctx, e.Store)
		start := time.Now()
		err = errors.Join(err, e.Poller.OffsetsPoll(ctx, e.Store))
		took := time.Since(start)
		cancel()
		if err != nil {
			d.t.Fatalf("poll: %v", err)
		}
		d.snaps[i] = append(d.snaps[i], e.Store.Current())
		d.took[i] = append(d.took[i], took)
	}
}

// pollUntil polls until cond holds after a poll, failing after timeout.
// poll waits for the driver's tick, so there is no further interval.
func (d *driver) pollUntil(timeout time.Duration, what string, cond func() error) {
	d.t.Helper()
	testkit.Eventually(d.t, timeout, 0, what, func() error {
		d.poll()
		return cond()
	})
}

// pollFor keeps polling while a known stretch of wall-clock time passes.
func (d *driver) pollFor(dur time.Duration) {
	d.t.Helper()
	end := time.Now().Add(dur)
	for time.Now().Before(end) {
		d.poll()
	}
}

// latest is the newest snapshot of exporter i.
func (d *driver) latest(i int) *store.Snapshot {
	s := d.snaps[i]
	return s[len(s)-1]
}

// producer writes records at a steady rate, round robin over a topic's
// partitions, until stopped. Each record's timestamp is the wall clock
// when it is handed to the client. The delay from that timestamp to the
// broker's acknowledgement is kept per record: it bounds how much later
// than its timestamp the record was appended.
type producer struct {
	cl     *kgo.Client
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	err    error
	acked  int
	maxAck time.Duration
	ack    map[int32]map[int64]time.Duration // partition -> offset -> ack delay
}

func startProducer(t *testing.T, addrs []string, topic string, partitions int32, perSecond int) *producer {
	t.Helper()
	// No linger: a record goes out as soon as it is produced, so its
	// timestamp and its append time are as close as the wire allows.
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &producer{cl: cl, cancel: cancel, done: make(chan struct{}), ack: map[int32]map[int64]time.Duration{}}
	go func() {
		defer close(p.done)
		tick := time.NewTicker(time.Second / time.Duration(perSecond))
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			r := &kgo.Record{Topic: topic, Partition: int32(i) % partitions, Value: []byte(strconv.Itoa(i)), Timestamp: time.Now()}
			cl.Produce(context.Background(), r, p.acknowledged)
		}
	}()
	t.Cleanup(func() { p.stop(t) })
	return p
}

func (p *producer) acknowledged(r *kgo.Record, err error) {
	took := time.Since(r.Timestamp)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		if p.err == nil {
			p.err = err
		}
		return
	}
	p.acked++
	p.maxAck = max(p.maxAck, took)
	if p.ack[r.Partition] == nil {
		p.ack[r.Partition] = map[int64]time.Duration{}
	}
	p.ack[r.Partition][r.Offset] = took
}

// ackDelay is the timestamp-to-acknowledgement delay of one record.
func (p *producer) ackDelay(partition int32, offset int64) (time.Duration, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	d, ok := p.ack[partition][offset]
	return d, ok
}

// stop ends production, waits for every record to be acknowledged and
// fails the test if any was not. It may be called more than once.
func (p *producer) stop(t *testing.T) {
	t.Helper()
	if p.cancel == nil {
		return
	}
	p.cancel()
	p.cancel = nil
	<-p.done
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.cl.Flush(ctx); err != nil {
		t.Errorf("flush producer: %v", err)
	}
	p.cl.Close()
	if err := p.firstErr(); err != nil {
		t.Errorf("produce: %v", err)
	}
}

func (p *producer) firstErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

func (p *producer) stats() (acked int, maxAck time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.acked, p.maxAck
}

// consumer is a real kgo group member that runs handle on every fetch
// until stopped. Auto commit is off: handle decides what gets committed.
type consumer struct {
	cl     *kgo.Client
	cancel context.CancelFunc
	done   chan struct{}
}

func startConsumer(t *testing.T, addrs []string, group, topic string,
	handle func(ctx context.Context, cl *kgo.Client, fs kgo.Fetches)) *consumer {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.DisableAutoCommit(), kgo.ClientID(group+"-member"),
		kgo.SessionTimeout(6*time.Second), kgo.HeartbeatInterval(500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &consumer{cl: cl, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			if ctx.Err() != nil {
				return
			}
			handle(ctx, cl, fs)
		}
	}()
	t.Cleanup(c.stop)
	return c
}

// stop ends the poll loop and closes the client, which leaves the group
// without committing anything more. It may be called more than once.
func (c *consumer) stop() {
	if c.cancel == nil {
		return
	}
	c.cancel()
	c.cancel = nil
	<-c.done
	c.cl.Close()
}

// commitEveryPoll keeps up: it commits everything a poll returned.
func commitEveryPoll(ctx context.Context, cl *kgo.Client, _ kgo.Fetches) {
	_ = cl.CommitUncommittedOffsets(ctx)
}

// committed returns the group's committed offsets in topic, as the broker
// reports them to an admin client.
func committed(adm *kadm.Client, group, topic string) (map[int32]int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rs, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return nil, err
	}
	if err := rs.Error(); err != nil {
		return nil, err
	}
	out := map[int32]int64{}
	rs.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic && o.At >= 0 {
			out[o.Partition] = o.At
		}
	})
	return out, nil
}

// atLeast is a condition: the group has committed at least min on each of
// the partitions.
func atLeast(adm *kadm.Client, group, topic string, partitions int32, min int64) func() error {
	return func() error {
		offs, err := committed(adm, group, topic)
		if err != nil {
			return err
		}
		for p := int32(0); p < partitions; p++ {
			if offs[p] < min {
				return fmt.Errorf("committed %v, want >= %d on %d partitions", offs, min, partitions)
			}
		}
		return nil
	}
}

// groupState is a condition: the coordinator reports the group in state.
func groupState(adm *kadm.Client, group, want string) func() error {
	return func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		gs, err := adm.DescribeGroups(ctx, group)
		if err != nil {
			return err
		}
		g := gs[group]
		if g.Err != nil {
			return g.Err
		}
		if g.State != want {
			return fmt.Errorf("group %s is %s with %d members, want %s", group, g.State, len(g.Members), want)
		}
		return nil
	}
}

// recordTimestamps reads, with a plain kgo consumer outside any group, the
// timestamp of the record at the given offset of each partition.
func recordTimestamps(t *testing.T, addrs []string, topic string, at map[int32]int64) map[int32]time.Time {
	t.Helper()
	offs := map[int32]kgo.Offset{}
	for p, o := range at {
		offs[p] = kgo.NewOffset().At(o)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offs}))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out := map[int32]time.Time{}
	for len(out) < len(at) {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("read records at %v of %s: got %d of %d: %v", at, topic, len(out), len(at), err)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			if _, done := out[r.Partition]; done {
				return
			}
			if r.Offset != at[r.Partition] {
				t.Fatalf("first record read from %s/%d is at offset %d, want %d", topic, r.Partition, r.Offset, at[r.Partition])
			}
			out[r.Partition] = r.Timestamp
		})
	}
	return out
}

// exposed gathers the exporter's metrics through a Prometheus registry.
func exposed(t *testing.T, e *kafkatest.Exporter) testkit.Series {
	t.Helper()
	return testkit.Collect(t, collector.New(e.Store, collector.Options{}))
}

// assertStatus checks the group's status in the store's snapshot and in
// the exposition, where exactly the want series must be 1 among all
// seven.
func assertStatus(t *testing.T, e *kafkatest.Exporter, group, want string) status.Result {
	t.Helper()
	r, ok := e.Store.Current().Status[group]
	if !ok {
		t.Fatalf("no status for group %s", group)
	}
	if r.Status != want {
		t.Fatalf("group %s status %s (%s), want %s", group, r.Status, r.Reason, want)
	}
	series := exposed(t, e)
	for _, st := range status.Statuses {
		key := testkit.Key("kafka_consumergroup_status", "consumergroup", group, "status", st)
		v, ok := series[key]
		if !ok {
			t.Fatalf("%s missing from the exposition", key)
		}
		if wantV := map[bool]float64{true: 1, false: 0}[st == want]; v != wantV {
			t.Fatalf("%s = %v, want %v", key, v, wantV)
		}
	}
	return r
}

// statusIs is a condition on the store's snapshot.
func statusIs(e *kafkatest.Exporter, group, want string) func() error {
	return func() error {
		r, ok := e.Store.Current().Status[group]
		if !ok {
			return errors.New("no status yet")
		}
		if r.Status != want {
			return fmt.Errorf("status %s (%s)", r.Status, r.Reason)
		}
		return nil
	}
}
