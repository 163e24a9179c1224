package lagtime

import (
	"container/list"
	"context"
	"errors"
	"sync"
	"time"
)

// RecordTimestamper reads the timestamp of the record at an offset; the
// poller implements it with a Kafka fetch. When no record sits exactly at
// offset (a transaction marker, a compacted or deleted record) it should
// answer with the first record after it, which is the record a consumer
// resuming from offset would read first. A zero time counts as an error.
type RecordTimestamper interface {
	Timestamp(ctx context.Context, topic string, partition int32, offset int64) (time.Time, error)
}

var errZeroTimestamp = errors.New("lagtime: timestamper returned a zero time")

// Defaults for CacheOptions fields left zero.
const (
	DefaultCacheConcurrency = 4
	DefaultCacheSize        = 10000
)

// CacheOptions configures a CachedTimestamper.
type CacheOptions struct {
	// Concurrency bounds the calls in flight to the wrapped timestamper,
	// across all callers. Suggested env var: KRE_LAG_EXACT_CONCURRENCY.
	Concurrency int
	// Size bounds the cached timestamps (least recently used go first),
	// about 100 bytes each. Suggested env var: KRE_LAG_EXACT_CACHE_SIZE.
	Size int
}

// CachedTimestamper wraps a RecordTimestamper with a cache, a bound on
// concurrent calls, and one shared call for concurrent identical requests.
// A record's timestamp never changes while its log exists, and a group that
// does not commit asks for the same offset at every poll, so most lookups
// are hits. Errors are not cached. The Estimator calls ForgetPartition when
// a partition's log is replaced or disappears.
type CachedTimestamper struct {
	inner RecordTimestamper
	slots chan struct{}
	size  int

	mu       sync.Mutex
	lru      *list.List // of *cacheEntry, most recently used first
	items    map[recordKey]*list.Element
	inflight map[recordKey]*flight
}

type recordKey struct {
	topic     string
	partition int32
	offset    int64
}

type cacheEntry struct {
	key recordKey
	t   time.Time
}

// flight is one call to the wrapped timestamper that several callers wait on.
type flight struct {
	done      chan struct{}
	t         time.Time
	err       error
	forgotten bool // ForgetPartition ran meanwhile: do not cache the answer
	waiters   int  // callers sharing the flight besides its leader
}

// NewCachedTimestamper wraps inner.
func NewCachedTimestamper(inner RecordTimestamper, opts CacheOptions) *CachedTimestamper {
	if opts.Concurrency <= 0 {
		opts.Concurrency = DefaultCacheConcurrency
	}
	if opts.Size <= 0 {
		opts.Size = DefaultCacheSize
	}
	return &CachedTimestamper{
		inner:    inner,
		slots:    make(chan struct{}, opts.Concurrency),
		size:     opts.Size,
		lru:      list.New(),
		items:    make(map[recordKey]*list.Element),
		inflight: make(map[recordKey]*flight),
	}
}

// Timestamp returns the cached timestamp or asks the wrapped timestamper,
// waiting for a free slot. It returns ctx's error when ctx ends first.
func (c *CachedTimestamper) Timestamp(ctx context.Context, topic string, partition int32, offset int64) (time.Time, error) {
	k := recordKey{topic, partition, offset}
	for {
		c.mu.Lock()
		if el, ok := c.items[k]; ok {
			c.lru.MoveToFront(el)
			t := el.Value.(*cacheEntry).t
			c.mu.Unlock()
			return t, nil
		}
		if f, ok := c.inflight[k]; ok {
			f.waiters++
			c.mu.Unlock()
			select {
			case <-f.done:
			case <-ctx.Done():
				return time.Time{}, ctx.Err()
			}
			if isContextErr(f.err) && ctx.Err() == nil {
				// The caller that led the flight gave up; our context is
				// still alive, so try again rather than inherit its end.
				continue
			}
			return f.t, f.err
		}
		f := &flight{done: make(chan struct{})}
		c.inflight[k] = f
		c.mu.Unlock()
		return c.lead(ctx, k, f)
	}
}

func (c *CachedTimestamper) lead(ctx context.Context, k recordKey, f *flight) (time.Time, error) {
	select {
	case c.slots <- struct{}{}:
		f.t, f.err = c.inner.Timestamp(ctx, k.topic, k.partition, k.offset)
		<-c.slots
		if f.err == nil && f.t.IsZero() {
			f.err = errZeroTimestamp
		}
	case <-ctx.Done():
		f.err = ctx.Err()
	}
	c.mu.Lock()
	delete(c.inflight, k)
	if f.err == nil && !f.forgotten {
		c.storeLocked(k, f.t)
	}
	c.mu.Unlock()
	close(f.done)
	return f.t, f.err
}

func (c *CachedTimestamper) storeLocked(k recordKey, t time.Time) {
	if el, ok := c.items[k]; ok {
		el.Value.(*cacheEntry).t = t
		c.lru.MoveToFront(el)
		return
	}
	c.items[k] = c.lru.PushFront(&cacheEntry{key: k, t: t})
	for c.lru.Len() > c.size {
		oldest := c.lru.Back()
		c.lru.Remove(oldest)
		delete(c.items, oldest.Value.(*cacheEntry).key)
	}
}

// ForgetPartition drops every cached timestamp of the partition, and keeps
// lookups already in flight for it from being cached.
func (c *CachedTimestamper) ForgetPartition(topic string, partition int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, el := range c.items {
		if k.topic == topic && k.partition == partition {
			c.lru.Remove(el)
			delete(c.items, k)
		}
	}
	for k, f := range c.inflight {
		if k.topic == topic && k.partition == partition {
			f.forgotten = true
		}
	}
}

// Len returns the number of cached timestamps.
func (c *CachedTimestamper) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}

func isContextErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
