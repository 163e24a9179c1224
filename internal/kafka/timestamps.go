package kafka

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/IBM/sarama"
	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sync/errgroup"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/cluster"
)

// timestampFetchBytes is how much one timestamp read asks for: enough for
// the batch holding the record at the offset, small enough that exact lag
// on thousands of partitions stays cheap.
const timestampFetchBytes = 64 << 10

// readRecheck is how long a topic's Read permission, as the broker last
// stated it (or as a refused Fetch showed), is trusted before it is asked
// again.
const readRecheck = time.Hour

// errNotStarted marks a read left for the next poll: the reads' share of
// the poll interval was over before it could start.
var errNotStarted = errors.New("not started: out of time")

// timestampCache keeps record timestamps between offsets polls, and what
// deciding which records to read needs. A record's timestamp never changes
// while its log exists, and a group that does not commit asks for the same
// offset at every poll, so most lookups are hits. Only the offsets loop
// uses it, and one poll asks for each record once, so there are no
// concurrent identical lookups to share.
type timestampCache struct {
	lru *lru.Cache[cluster.Record, time.Time]
	// horizon is the first log end offset seen of each partition since
	// its log was last replaced. The lag history (internal/lagtime) starts
	// there, so a record below it cannot be dated by interpolation: those
	// are the records read when not in exact mode. One map entry per
	// partition, about 60 bytes.
	horizon map[cluster.TopicPartition]int64
	// readable is whether the exporter may Fetch from each topic, and
	// since when that is known.
	readable map[string]permission
}

type permission struct {
	read bool
	at   time.Time
}

func newTimestampCache(size int) *timestampCache {
	c, err := lru.New[cluster.Record, time.Time](size)
	if err != nil {
		// Only a size below 1 fails; config validation forbids it.
		panic(fmt.Sprintf("timestamp cache of size %d: %v", size, err))
	}
	return &timestampCache{lru: c, horizon: map[cluster.TopicPartition]int64{}, readable: map[string]permission{}}
}

// forgetReplaced drops the cached timestamps and the horizon of every
// partition whose log was replaced since prev: it went away, or its log
// end went backwards (the topic was deleted and created again).
func (c *timestampCache) forgetReplaced(prev, cur *cluster.OffsetsObservation) {
	if prev == nil {
		return
	}
	replaced := map[cluster.TopicPartition]bool{}
	for name, t := range prev.Topics {
		for id, was := range t.Partitions {
			now, ok := cur.Topics[name].Partition(id)
			if !ok || (now.Newest >= 0 && was.Newest > now.Newest) {
				tp := cluster.TopicPartition{Topic: name, Partition: id}
				replaced[tp] = true
				delete(c.horizon, tp)
			}
		}
	}
	for name := range c.readable {
		if _, ok := cur.Topics[name]; !ok {
			delete(c.readable, name)
		}
	}
	if len(replaced) == 0 {
		return
	}
	for _, k := range c.lru.Keys() {
		if replaced[cluster.TopicPartition{Topic: k.Topic, Partition: k.Partition}] {
			c.lru.Remove(k)
		}
	}
}

// observe records the horizon of every partition seen with a known log
// end for the first time.
func (c *timestampCache) observe(obs *cluster.OffsetsObservation) {
	for name, t := range obs.Topics {
		for id, p := range t.Partitions {
			tp := cluster.TopicPartition{Topic: name, Partition: id}
			if _, ok := c.horizon[tp]; !ok && p.Newest >= 0 {
				c.horizon[tp] = p.Newest
			}
		}
	}
}

// lookup is one record whose timestamp is wanted and not cached.
type lookup struct {
	r        cluster.Record
	predates bool  // below the horizon: nothing else dates it
	rank     int   // 0 for the partition's oldest wanted record, 1 for the next...
	behind   int64 // records between it and the log end
}

// recordTimes returns the timestamps of the records at committed offsets
// of obs that are behind their log end and that lag in seconds needs: in
// exact mode (KRE_LAG_EXACT) all of them, otherwise those older than the
// partition's lag history (below its horizon). Cached ones cost nothing;
// the others are read with one Fetch each to the partition's leader, at
// most KRE_LAG_EXACT_CONCURRENCY at a time, at most
// KRE_LAG_TIMESTAMP_READS_PER_POLL per poll and none started after a third
// of the poll interval, in this order: the records
// older than the history first; then, partition by partition, the oldest
// wanted record of each, then the next oldest of each, and so on; among
// equals the furthest behind first. One read per partition then bounds
// every other group behind it (lagtime interpolates between timestamps),
// and the rest follow at the next polls.
//
// Nothing is read from records retention has deleted (below the log start
// offset), nor from a topic the exporter may not Read: Read is asked of
// the broker with the topic's authorized operations (Metadata v8, KIP-430,
// one request for the topics not known in the last readRecheck; brokers
// before 2.3 do not say, and a refused Fetch is remembered instead). An
// unreadable topic is logged, and in exact mode reported as a fetch stage
// error; its partitions keep the estimate. A failed lookup leaves the
// record out (its lag in seconds is estimated) and is reported as a fetch
// stage error.
func (p *Poller) recordTimes(ctx context.Context, c sarama.Client, prev, obs *cluster.OffsetsObservation) (map[cluster.Record]time.Time, error) {
	exact, budget := p.cfg.LagExact, p.cfg.LagTimestampReadsPerPoll
	if !exact && budget == 0 {
		return nil, nil
	}
	if p.times == nil {
		// Only the offsets loop gets here, so creating the cache on first
		// use needs no lock.
		p.times = newTimestampCache(p.cfg.LagExactCacheSize)
	}
	p.times.forgetReplaced(prev, obs)
	p.times.observe(obs)
	out := map[cluster.Record]time.Time{}
	wanted := p.wanted(obs, out)
	if len(wanted) == 0 {
		return out, nil
	}
	wanted, permErr := p.onlyReadable(c, obs.Time, wanted)
	order(wanted)
	if len(wanted) > budget {
		p.log.Debug().Int("wanted", len(wanted)).Int("budget", budget).
			Msg("record timestamp reads beyond KRE_LAG_TIMESTAMP_READS_PER_POLL wait for the next polls")
		wanted = wanted[:budget]
	}
	times := make([]time.Time, len(wanted))
	errs := make([]error, len(wanted))
	// The reads get a third of the poll interval, like each earlier stage
	// of the poll: those not started by then wait for the next poll.
	rctx, cancel := context.WithTimeout(ctx, p.cfg.PollInterval/3)
	defer cancel()
	var g errgroup.Group
	g.SetLimit(p.cfg.LagExactConcurrency)
	for i, w := range wanted {
		g.Go(func() error {
			if rctx.Err() != nil {
				errs[i] = errNotStarted
				return nil
			}
			leader := obs.Topics[w.r.Topic].Partitions[w.r.Partition].Leader
			times[i], errs[i] = p.timestamp(ctx, c, leader, w.r)
			return nil
		})
	}
	_ = g.Wait()
	failed, late := 0, 0
	var first error
	for i, w := range wanted {
		switch err := errs[i]; {
		case errors.Is(err, errNotStarted):
			late++
		case err == nil:
			p.times.lru.Add(w.r, times[i])
			out[w.r] = times[i]
		case errors.Is(err, sarama.ErrOffsetOutOfRange):
			// Deleted by retention since ListOffsets: there is no record.
		case errors.Is(err, sarama.ErrTopicAuthorizationFailed):
			p.denied(err)
			if was, ok := p.times.readable[w.r.Topic]; !ok || was.read {
				p.times.readable[w.r.Topic] = permission{read: false, at: obs.Time}
				permErr = errors.Join(permErr, p.unreadable(w.r.Topic))
			}
		default:
			failed++
			if first == nil {
				first = err
			}
		}
	}
	if late > 0 {
		p.log.Debug().Int("late", late).Int("read", len(wanted)-late).
			Msg("record timestamp reads not started within a third of the poll interval wait for the next poll")
	}
	var readErr error
	if failed > 0 {
		readErr = &StageError{Stage: StageFetch, Broker: -1,
			Err: fmt.Errorf("%d of %d record timestamp reads failed (their lag in seconds is estimated): %w", failed, len(wanted)-late, first)}
	}
	if !exact {
		permErr = nil // logged: without Read the estimate is the documented fallback
	}
	return out, errors.Join(readErr, permErr)
}

// wanted returns the records whose timestamps this poll needs and does not
// have, after adding the cached ones to out.
func (p *Poller) wanted(obs *cluster.OffsetsObservation, out map[cluster.Record]time.Time) []lookup {
	var wanted []lookup
	seen := map[cluster.Record]bool{}
	for _, topics := range obs.Committed {
		for topic, parts := range topics {
			for id, off := range parts {
				lag, ok := cluster.Lag(obs.Topics[topic], id, off)
				r := cluster.Record{Topic: topic, Partition: id, Offset: off}
				if !ok || lag == 0 || seen[r] {
					continue
				}
				seen[r] = true
				if t, hit := p.times.lru.Get(r); hit {
					out[r] = t
					continue
				}
				part := obs.Topics[topic].Partitions[id]
				if part.Oldest >= 0 && off < part.Oldest {
					continue // deleted by retention: no record to read
				}
				h, known := p.times.horizon[cluster.TopicPartition{Topic: topic, Partition: id}]
				predates := known && off < h
				if predates || p.cfg.LagExact {
					wanted = append(wanted, lookup{r: r, predates: predates, behind: lag})
				}
			}
		}
	}
	return wanted
}

// order sorts lookups into the order they are read in (see recordTimes).
func order(ls []lookup) {
	slices.SortFunc(ls, func(a, b lookup) int {
		return cmp.Or(cmp.Compare(a.r.Topic, b.r.Topic), cmp.Compare(a.r.Partition, b.r.Partition), cmp.Compare(a.r.Offset, b.r.Offset))
	})
	for i := range ls {
		if i > 0 && ls[i].r.Topic == ls[i-1].r.Topic && ls[i].r.Partition == ls[i-1].r.Partition {
			ls[i].rank = ls[i-1].rank + 1
		}
	}
	slices.SortStableFunc(ls, func(a, b lookup) int {
		if a.predates != b.predates {
			if a.predates {
				return -1
			}
			return 1
		}
		return cmp.Or(cmp.Compare(a.rank, b.rank), cmp.Compare(b.behind, a.behind))
	})
}

// onlyReadable drops the lookups of topics the exporter may not Read,
// asking the broker about topics whose permission is not known since
// readRecheck. The error names unreadable topics newly found.
func (p *Poller) onlyReadable(c sarama.Client, now time.Time, ls []lookup) ([]lookup, error) {
	var ask []string
	for _, l := range ls {
		if perm, ok := p.times.readable[l.r.Topic]; (!ok || now.Sub(perm.at) >= readRecheck) && !slices.Contains(ask, l.r.Topic) {
			ask = append(ask, l.r.Topic)
		}
	}
	var errs []error
	if len(ask) > 0 {
		slices.Sort(ask)
		for topic, read := range p.topicReadable(c, ask) {
			if was, ok := p.times.readable[topic]; !read && (!ok || was.read) {
				errs = append(errs, p.unreadable(topic))
			}
			p.times.readable[topic] = permission{read: read, at: now}
		}
	}
	kept := ls[:0]
	for _, l := range ls {
		if perm, ok := p.times.readable[l.r.Topic]; !ok || perm.read {
			kept = append(kept, l)
		}
	}
	return kept, errors.Join(errs...)
}

// topicReadable asks one broker which of topics the exporter may Read.
// A topic the broker says nothing about (before Metadata v8, or when the
// request fails) is left out: it is tried, and a refusal remembered.
func (p *Poller) topicReadable(c sarama.Client, topics []string) map[string]bool {
	req := sarama.NewMetadataRequest(p.cfg.Version, topics)
	if req.Version < 8 {
		return nil
	}
	req.IncludeTopicAuthorizedOperations = true
	req.AllowAutoTopicCreation = false
	b := c.LeastLoadedBroker()
	if b == nil {
		return nil
	}
	p.count(apiMetadata)
	resp, err := b.GetMetadata(req)
	if err != nil {
		p.closeOnError(b, err)
		p.log.Debug().Err(err).Msg("asking for Read permission on topics failed; trying the reads")
		return nil
	}
	if resp.Version < 8 {
		return nil
	}
	out := map[string]bool{}
	for _, t := range resp.Topics {
		if t.Err != sarama.ErrNoError || t.TopicAuthorizedOperations == math.MinInt32 {
			continue // not computed: unknown
		}
		out[t.Name] = t.TopicAuthorizedOperations&(1<<int32(sarama.AclOperationRead)) != 0
	}
	return out
}

// unreadable logs that topic cannot be read and returns it as a fetch
// stage error (reported in exact mode only).
func (p *Poller) unreadable(topic string) error {
	p.log.Warn().Str("topic", topic).Msg("no Read permission on the topic: lag in seconds of its records older than the " +
		"exporter's history is a lower bound (grant Read on the topic, or set KRE_LAG_TIMESTAMP_READS_PER_POLL=0 to stop asking)")
	return &StageError{Stage: StageFetch, Broker: -1, Err: fmt.Errorf("record timestamps of topic %q: no Read permission", topic)}
}

// timestamp returns the timestamp of the first record at or after r's
// offset, read with one Fetch from the partition's leader. That is the
// record a consumer resuming from the offset reads first (there may be no
// record exactly at it: a transaction marker, a compacted record). Fetch
// reads; it does not move any group's offsets.
func (p *Poller) timestamp(ctx context.Context, c sarama.Client, leader int32, r cluster.Record) (time.Time, error) {
	if err := ctx.Err(); err != nil {
		return time.Time{}, err
	}
	if p.vers.fetch < 0 {
		return time.Time{}, errors.New("record timestamps need KRE_KAFKA_VERSION 0.11.0 or later")
	}
	b, err := c.Broker(leader)
	if err != nil {
		return time.Time{}, fmt.Errorf("leader %d of %s/%d: %w", leader, r.Topic, r.Partition, err)
	}
	// Session epoch -1: a one-off fetch that opens no fetch session.
	req := &sarama.FetchRequest{Version: p.vers.fetch, MaxWaitTime: 0, MinBytes: 1, MaxBytes: timestampFetchBytes, SessionEpoch: -1}
	req.AddBlock(r.Topic, r.Partition, r.Offset, timestampFetchBytes, -1)
	p.count(apiFetch)
	resp, err := b.Fetch(req)
	if err != nil {
		p.closeOnError(b, err)
		return time.Time{}, err
	}
	blk := resp.GetBlock(r.Topic, r.Partition)
	if blk == nil {
		return time.Time{}, fmt.Errorf("no fetch answer for %s/%d", r.Topic, r.Partition)
	}
	if blk.Err != sarama.ErrNoError {
		return time.Time{}, blk.Err
	}
	t, ok := firstTimestamp(blk, r.Offset)
	if !ok {
		return time.Time{}, errors.New("no record at or after the offset in the first fetched bytes")
	}
	if t.IsZero() {
		return time.Time{}, errors.New("the record has no timestamp")
	}
	return t, nil
}

func firstTimestamp(blk *sarama.FetchResponseBlock, offset int64) (time.Time, bool) {
	for _, rs := range blk.RecordsSet {
		if rb := rs.RecordBatch; rb != nil && !rb.Control {
			for _, r := range rb.Records {
				if rb.FirstOffset+r.OffsetDelta < offset {
					continue
				}
				if rb.LogAppendTime {
					return rb.MaxTimestamp, true
				}
				return rb.FirstTimestamp.Add(r.TimestampDelta), true
			}
		}
		if ms := rs.MsgSet; ms != nil {
			for _, m := range ms.Messages {
				if m.Offset >= offset && m.Msg != nil {
					return m.Msg.Timestamp, true
				}
			}
		}
	}
	return time.Time{}, false
}
