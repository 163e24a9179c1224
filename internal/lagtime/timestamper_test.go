package lagtime

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// memTimestamper answers from a map; gate, when set, holds every call until
// the test closes or feeds it.
type memTimestamper struct {
	mu      sync.Mutex
	times   map[recordKey]time.Time
	fail    map[recordKey]error
	calls   map[recordKey]int
	active  int
	maxSeen int
	gate    chan struct{}
}

func newMem() *memTimestamper {
	return &memTimestamper{times: map[recordKey]time.Time{}, fail: map[recordKey]error{}, calls: map[recordKey]int{}}
}

func (m *memTimestamper) Timestamp(ctx context.Context, topic string, partition int32, offset int64) (time.Time, error) {
	k := recordKey{topic, partition, offset}
	m.mu.Lock()
	m.calls[k]++
	m.active++
	m.maxSeen = max(m.maxSeen, m.active)
	gate := m.gate
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		m.active--
		m.mu.Unlock()
	}()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.fail[k]; err != nil {
		return time.Time{}, err
	}
	t, ok := m.times[k]
	if !ok {
		return time.Time{}, fmt.Errorf("no record at %s/%d@%d", topic, partition, offset)
	}
	return t, nil
}

func (m *memTimestamper) count(k recordKey) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.calls[k]
}

func (m *memTimestamper) stats() (active, maxSeen int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.active, m.maxSeen
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestCachedTimestamperCachesAnswersNotErrors(t *testing.T) {
	mem := newMem()
	k := recordKey{topic, 0, 42}
	want := t0.Add(-time.Minute)
	mem.times[k] = want
	c := NewCachedTimestamper(mem, CacheOptions{})
	ctx := context.Background()
	for range 3 {
		got, err := c.Timestamp(ctx, topic, 0, 42)
		if err != nil || !got.Equal(want) {
			t.Fatalf("got %v, %v; want %v", got, err, want)
		}
	}
	if n := mem.count(k); n != 1 {
		t.Fatalf("inner called %d times for one offset, want 1", n)
	}
	bad := recordKey{topic, 0, 7}
	mem.fail[bad] = errors.New("broker unavailable")
	for range 2 {
		if _, err := c.Timestamp(ctx, topic, 0, 7); err == nil {
			t.Fatal("error swallowed")
		}
	}
	if n := mem.count(bad); n != 2 {
		t.Fatalf("failed lookup retried %d times, want 2 (errors must not be cached)", n)
	}
}

func TestCachedTimestamperBoundsConcurrency(t *testing.T) {
	mem := newMem()
	mem.gate = make(chan struct{})
	for o := range int64(10) {
		mem.times[recordKey{topic, 0, o}] = t0
	}
	c := NewCachedTimestamper(mem, CacheOptions{Concurrency: 2})
	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for o := range int64(10) {
		wg.Go(func() {
			_, err := c.Timestamp(context.Background(), topic, 0, o)
			errs <- err
		})
	}
	eventually(t, "two lookups in flight", func() bool { a, _ := mem.stats(); return a == 2 })
	close(mem.gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, maxSeen := mem.stats(); maxSeen != 2 {
		t.Fatalf("%d concurrent inner calls, bound 2", maxSeen)
	}
	if c.Len() != 10 {
		t.Fatalf("%d cached, want 10", c.Len())
	}
}

func TestCachedTimestamperSharesConcurrentIdenticalLookups(t *testing.T) {
	mem := newMem()
	mem.gate = make(chan struct{})
	k := recordKey{topic, 3, 100}
	mem.times[k] = t0
	c := NewCachedTimestamper(mem, CacheOptions{})
	var wg sync.WaitGroup
	for range 5 {
		wg.Go(func() {
			if got, err := c.Timestamp(context.Background(), topic, 3, 100); err != nil || !got.Equal(t0) {
				t.Errorf("got %v, %v", got, err)
			}
		})
	}
	eventually(t, "four callers joining the first", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		f := c.inflight[k]
		return f != nil && f.waiters == 4
	})
	close(mem.gate)
	wg.Wait()
	if n := mem.count(k); n != 1 {
		t.Fatalf("inner called %d times, want 1", n)
	}
}

func TestCachedTimestamperContext(t *testing.T) {
	mem := newMem()
	mem.gate = make(chan struct{})
	mem.times[recordKey{topic, 0, 1}] = t0
	mem.times[recordKey{topic, 0, 2}] = t0
	c := NewCachedTimestamper(mem, CacheOptions{Concurrency: 1})
	// Occupy the only slot.
	done := make(chan error, 1)
	go func() {
		_, err := c.Timestamp(context.Background(), topic, 0, 1)
		done <- err
	}()
	eventually(t, "slot taken", func() bool { a, _ := mem.stats(); return a == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := c.Timestamp(ctx, topic, 0, 2); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("waiting for a slot past the deadline: %v", err)
	}
	close(mem.gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if mem.count(recordKey{topic, 0, 2}) != 0 || c.Len() != 1 {
		t.Fatalf("abandoned lookup reached inner or the cache (%d cached)", c.Len())
	}
	if _, err := c.Timestamp(context.Background(), topic, 0, 2); err != nil {
		t.Fatalf("later lookup: %v", err)
	}
}

func TestCachedTimestamperEvictsAndForgets(t *testing.T) {
	mem := newMem()
	for o := range int64(3) {
		mem.times[recordKey{topic, 0, o}] = t0
		mem.times[recordKey{"other", 0, o}] = t0
	}
	c := NewCachedTimestamper(mem, CacheOptions{Size: 2})
	ctx := context.Background()
	for _, o := range []int64{0, 1, 0, 2} { // 1 is least recently used when 2 arrives
		if _, err := c.Timestamp(ctx, topic, 0, o); err != nil {
			t.Fatal(err)
		}
	}
	if c.Len() != 2 {
		t.Fatalf("%d cached, bound 2", c.Len())
	}
	c.Timestamp(ctx, topic, 0, 0)
	c.Timestamp(ctx, topic, 0, 1)
	if n0, n1 := mem.count(recordKey{topic, 0, 0}), mem.count(recordKey{topic, 0, 1}); n0 != 1 || n1 != 2 {
		t.Fatalf("inner calls: offset 0 %d (want 1, kept), offset 1 %d (want 2, evicted)", n0, n1)
	}
	c.Timestamp(ctx, "other", 0, 0)
	c.ForgetPartition(topic, 0)
	if c.Len() != 1 {
		t.Fatalf("%d cached after forgetting %s/0, want 1", c.Len(), topic)
	}
}

// A partition recreated under the same name must not be served timestamps
// of the old log's records.
func TestEstimatorForgetsTimestampsOfRecreatedPartition(t *testing.T) {
	mem := newMem()
	mem.times[recordKey{topic, 0, 10}] = t0
	c := NewCachedTimestamper(mem, CacheOptions{})
	e := New(Options{Timestamper: c})
	obs := poll(0, 100, map[string]int64{"g": 10})
	e.Observe(obs)
	e.ComputeExact(context.Background(), obs)
	if c.Len() != 1 {
		t.Fatalf("%d cached, want 1", c.Len())
	}
	e.Observe(poll(10*time.Second, 20, nil))
	if c.Len() != 0 {
		t.Fatalf("%d timestamps survived the partition's recreation", c.Len())
	}
}

func TestComputeExact(t *testing.T) {
	mem := newMem()
	now := 100 * time.Second
	mem.times[recordKey{topic, 0, 500}] = t0.Add(now - 42*time.Second)
	mem.times[recordKey{topic, 0, 600}] = t0.Add(now + time.Minute) // producer clock ahead
	mem.fail[recordKey{topic, 0, 900}] = errors.New("fetch failed")
	e := New(Options{Timestamper: NewCachedTimestamper(mem, CacheOptions{})})
	step(e, poll(0, 0, nil))
	commits := map[string]int64{"exact": 500, "exact2": 500, "future": 600, "fallback": 900, "up": 1000}
	obs := poll(now, 1000, commits)
	e.Observe(obs)
	r := e.ComputeExact(context.Background(), obs)

	if p := mustLag(t, r, "exact"); p.Method != MethodExact || !near(p.Seconds, 42, 1e-9) {
		t.Fatalf("exact: %+v, want 42 s exact", p)
	}
	if p := mustLag(t, r, "future"); p.Method != MethodExact || p.Seconds != 0 {
		t.Fatalf("future timestamp: %+v, want 0", p)
	}
	// Fallback: offset 901 interpolated on (0 @ 0 s, 1000 @ 100 s).
	if p := mustLag(t, r, "fallback"); p.Method != MethodInterpolated || !near(p.Seconds, 100-90.1, 1e-6) {
		t.Fatalf("fallback: %+v, want the 9.9 s estimate", p)
	}
	if p := mustLag(t, r, "up"); p.Method != MethodCaughtUp || p.Seconds != 0 {
		t.Fatalf("caught up: %+v", p)
	}
	if n := mem.count(recordKey{topic, 0, 500}); n != 1 {
		t.Fatalf("two groups at one offset cost %d lookups, want 1", n)
	}
	if n := mem.count(recordKey{topic, 0, 1000}); n != 0 {
		t.Fatalf("caught-up partition looked up %d times", n)
	}
}

func TestComputeExactWithoutTimestamperEstimates(t *testing.T) {
	e := New(Options{})
	step(e, poll(0, 0, nil))
	obs := poll(10*time.Second, 100, map[string]int64{"g": 49})
	e.Observe(obs)
	exact, plain := e.ComputeExact(context.Background(), obs), e.Compute(obs)
	if mustLag(t, exact, "g") != mustLag(t, plain, "g") {
		t.Fatalf("without a timestamper ComputeExact %+v differs from Compute %+v", exact.Groups, plain.Groups)
	}
	if r := e.ComputeExact(context.Background(), nil); len(r.Groups) != 0 {
		t.Fatalf("nil observation gave %+v", r.Groups)
	}
}
