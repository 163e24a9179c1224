package kafka

import (
	"context"
	"errors"
	"fmt"
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

// timestampCache keeps record timestamps between offsets polls. A record's
// timestamp never changes while its log exists, and a group that does not
// commit asks for the same offset at every poll, so most lookups are hits.
// Only the offsets loop uses it, and one poll asks for each record once,
// so there are no concurrent identical lookups to share.
type timestampCache struct {
	lru *lru.Cache[cluster.Record, time.Time]
}

func newTimestampCache(size int) *timestampCache {
	c, err := lru.New[cluster.Record, time.Time](size)
	if err != nil {
		// Only a size below 1 fails; config validation forbids it.
		panic(fmt.Sprintf("timestamp cache of size %d: %v", size, err))
	}
	return &timestampCache{lru: c}
}

// forgetReplaced drops the cached timestamps of every partition whose log
// was replaced since prev: it went away, or its log end went backwards (the
// topic was deleted and created again).
func (c *timestampCache) forgetReplaced(prev, cur *cluster.OffsetsObservation) {
	if prev == nil {
		return
	}
	replaced := map[cluster.TopicPartition]bool{}
	for name, t := range prev.Topics {
		for id, was := range t.Partitions {
			now, ok := cur.Topics[name].Partition(id)
			if !ok || (now.Newest >= 0 && was.Newest > now.Newest) {
				replaced[cluster.TopicPartition{Topic: name, Partition: id}] = true
			}
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

// recordTimes reads the timestamp of the record at every committed offset
// of obs that is behind its log end, from the cache or with one Fetch to
// the partition's leader, at most KRE_LAG_EXACT_CONCURRENCY at a time. A
// failed lookup leaves the record out (lag in seconds falls back to the
// estimate for it) and is reported as a fetch stage error.
func (p *Poller) recordTimes(ctx context.Context, c sarama.Client, prev, obs *cluster.OffsetsObservation) (map[cluster.Record]time.Time, error) {
	p.times.forgetReplaced(prev, obs)
	out := map[cluster.Record]time.Time{}
	var missing []cluster.Record
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
				} else {
					missing = append(missing, r)
				}
			}
		}
	}
	if len(missing) == 0 {
		return out, nil
	}
	times := make([]time.Time, len(missing))
	errs := make([]error, len(missing))
	var g errgroup.Group
	g.SetLimit(p.cfg.LagExactConcurrency)
	for i, r := range missing {
		g.Go(func() error {
			leader := obs.Topics[r.Topic].Partitions[r.Partition].Leader
			times[i], errs[i] = p.timestamp(ctx, c, leader, r)
			return nil
		})
	}
	_ = g.Wait()
	failed := 0
	var first error
	for i, r := range missing {
		if errs[i] != nil {
			failed++
			if first == nil {
				first = errs[i]
			}
			continue
		}
		p.times.lru.Add(r, times[i])
		out[r] = times[i]
	}
	if failed > 0 {
		return out, &StageError{Stage: StageFetch, Broker: -1,
			Err: fmt.Errorf("%d of %d record timestamp reads failed (their lag in seconds is estimated): %w", failed, len(missing), first)}
	}
	return out, nil
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
