package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/IBM/sarama"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/cluster"
)

// offsetFetchBatch bounds how many groups share one OffsetFetch v8+ request.
const offsetFetchBatch = 100

// PollOffsets reads cluster metadata, the committed offsets of every group
// of the latest groups poll (from its coordinator there), then the log start and end offsets of every exported
// partition. Committed offsets are read first: the log end can only grow
// in between, so the computed lag is never negative.
//
// Without metadata the observation is nil. When some brokers fail, the
// result is partial and the error says which: partitions they lead keep
// unknown (-1) offsets, so no lag is computed from them, and groups they
// coordinate keep their previous committed offsets.
//
// With exact lag in seconds on, it then reads the timestamp of the record
// at every committed offset that is behind (see recordTimes).
func (p *Poller) PollOffsets(ctx context.Context) (*cluster.OffsetsObservation, error) {
	c, err := p.clientFor()
	if err != nil {
		return nil, err
	}
	groups := p.lastGroups.Load()
	p.count(apiMetadata)
	if err := c.RefreshMetadata(); err != nil {
		return nil, &StageError{Stage: StageMetadata, Broker: -1, Err: err}
	}
	brokers, connErr := p.brokers(c)
	topics, leaders, err := p.topics(c)
	if err != nil {
		return nil, errors.Join(connErr, err)
	}
	committed, commitErr := p.committed(ctx, brokers, groups, topics)
	logErr := p.logOffsets(ctx, brokers, topics, leaders)
	obs := &cluster.OffsetsObservation{Time: time.Now(), Brokers: len(c.Brokers()), Topics: topics, Committed: committed}
	var timesErr error
	if p.times != nil {
		obs.RecordTimes, timesErr = p.recordTimes(ctx, c, p.lastOffsets.Load(), obs)
	}
	p.lastOffsets.Store(obs)
	return obs, errors.Join(connErr, commitErr, logErr, timesErr)
}

// topics returns the exported topics with their partitions, and the
// partitions grouped by leader for ListOffsets.
func (p *Poller) topics(c sarama.Client) (map[string]*cluster.Topic, map[int32][]cluster.TopicPartition, error) {
	names, err := c.Topics()
	if err != nil {
		return nil, nil, &StageError{Stage: StageMetadata, Broker: -1, Err: err}
	}
	topics := map[string]*cluster.Topic{}
	leaders := map[int32][]cluster.TopicPartition{}
	for _, name := range names {
		if !p.filters.Topic(name) {
			continue
		}
		parts, err := c.Partitions(name)
		if err != nil {
			return nil, nil, &StageError{Stage: StageMetadata, Broker: -1, Err: fmt.Errorf("topic %q: %w", name, err)}
		}
		t := &cluster.Topic{Name: name, Partitions: make(map[int32]cluster.Partition, len(parts))}
		for _, id := range parts {
			leader, err := c.Leader(name, id)
			if err != nil {
				return nil, nil, &StageError{Stage: StageMetadata, Broker: -1, Err: fmt.Errorf("leader of %s/%d: %w", name, id, err)}
			}
			t.Partitions[id] = cluster.Partition{Leader: leader.ID(), Newest: -1, Oldest: -1}
			leaders[leader.ID()] = append(leaders[leader.ID()], cluster.TopicPartition{Topic: name, Partition: id})
		}
		topics[name] = t
	}
	return topics, leaders, nil
}

// committed fetches the committed offsets of every group from its
// coordinator: many groups per request on brokers with OffsetFetch v8+,
// one request per group before that.
func (p *Poller) committed(ctx context.Context, brokers []*sarama.Broker, groups *cluster.GroupsObservation, topics map[string]*cluster.Topic) (map[string]map[string]map[int32]int64, error) {
	byCoordinator := map[int32][]string{}
	if groups != nil {
		for name, g := range groups.Groups {
			byCoordinator[g.Coordinator] = append(byCoordinator[g.Coordinator], name)
		}
	}
	var mu sync.Mutex
	out := map[string]map[string]map[int32]int64{}
	keep := func(group string, blocks map[string]map[int32]*sarama.OffsetFetchResponseBlock) {
		offs := map[string]map[int32]int64{}
		for topic, parts := range blocks {
			t, ok := topics[topic]
			if !ok {
				continue // deleted or filtered topic: no series
			}
			for id, blk := range parts {
				if blk == nil || blk.Err != sarama.ErrNoError || blk.Offset < 0 {
					continue
				}
				if _, ok := t.Partitions[id]; !ok {
					continue
				}
				if offs[topic] == nil {
					offs[topic] = map[int32]int64{}
				}
				offs[topic][id] = blk.Offset
			}
		}
		if len(offs) > 0 {
			mu.Lock()
			out[group] = offs
			mu.Unlock()
		}
	}
	var targets []*sarama.Broker
	for _, b := range brokers {
		if len(byCoordinator[b.ID()]) > 0 {
			targets = append(targets, b)
		}
	}
	var errs []error
	for id := range byCoordinator {
		if !hasBroker(brokers, id) {
			errs = append(errs, &StageError{Stage: StageOffsetFetch, Broker: id, Err: errors.New("coordinator not reachable")})
		}
	}
	errs = append(errs, forEachBroker(ctx, targets, func(b *sarama.Broker) error {
		names := byCoordinator[b.ID()]
		slices.Sort(names)
		return p.fetchCommitted(b, names, keep)
	}))
	err := errors.Join(errs...)
	if prev := p.lastOffsets.Load(); err != nil && prev != nil {
		failed := failedBrokers(err)
		for id, names := range byCoordinator {
			if !failed[id] {
				continue
			}
			for _, n := range names {
				if _, fresh := out[n]; !fresh && prev.Committed[n] != nil {
					out[n] = prev.Committed[n]
				}
			}
		}
	}
	return out, err
}

// fetchCommitted reads the committed offsets of the groups names from
// their coordinator b and hands each group's answer to keep.
//
// OffsetFetch v8+ carries many groups per request. sarama lowers every
// request to the broker's highest version and refuses to encode a
// lowered request with several groups (before anything is sent), so that
// refusal, or a one-group answer below v8, says the broker does not batch:
// it then gets one request per group. Version 2 is the first that returns
// every committed offset of a group when no partitions are named.
func (p *Poller) fetchCommitted(b *sarama.Broker, names []string, keep func(string, map[string]map[int32]*sarama.OffsetFetchResponseBlock)) error {
	if p.vers.offsetFetch < 2 {
		return &StageError{Stage: StageOffsetFetch, Broker: b.ID(), Err: errors.New("OffsetFetch v2 or later is required: KRE_KAFKA_VERSION must be at least 0.10.2")}
	}
	batching := p.vers.offsetFetch >= 8
	for len(names) > 0 {
		n := 1
		if batching {
			n = min(offsetFetchBatch, len(names))
		}
		batch := names[:n]
		req := &sarama.OffsetFetchRequest{Version: p.vers.offsetFetch, ConsumerGroup: batch[0]}
		if req.Version >= 8 {
			for _, g := range batch {
				req.Groups = append(req.Groups, sarama.OffsetFetchRequestGroup{GroupId: g})
			}
		}
		resp, err := b.FetchOffset(req)
		var unencodable sarama.PacketEncodingError
		if n > 1 && errors.As(err, &unencodable) {
			batching = false
			continue
		}
		p.count(apiOffsetFetch)
		if err != nil {
			p.closeOnError(b, err)
			return &StageError{Stage: StageOffsetFetch, Broker: b.ID(), Err: err}
		}
		if resp.Version < 2 {
			return &StageError{Stage: StageOffsetFetch, Broker: b.ID(), Err: fmt.Errorf("broker supports OffsetFetch up to v%d; v2 or later is required", resp.Version)}
		}
		if resp.Version < 8 {
			// Lowered: the broker answered for batch[0] alone.
			batching = false
			if resp.Err != sarama.ErrNoError && resp.Err != sarama.ErrGroupIDNotFound {
				return &StageError{Stage: StageOffsetFetch, Broker: b.ID(), Err: fmt.Errorf("group %q: %w", batch[0], resp.Err)}
			}
			keep(batch[0], resp.Blocks)
			names = names[1:]
			continue
		}
		for _, g := range resp.Groups {
			if g.Err != sarama.ErrNoError {
				if g.Err == sarama.ErrGroupIDNotFound {
					continue
				}
				return &StageError{Stage: StageOffsetFetch, Broker: b.ID(), Err: fmt.Errorf("group %q: %w", g.GroupId, g.Err)}
			}
			keep(g.GroupId, g.Blocks)
		}
		names = names[n:]
	}
	return nil
}

func hasBroker(brokers []*sarama.Broker, id int32) bool {
	for _, b := range brokers {
		if b.ID() == id {
			return true
		}
	}
	return false
}

// logOffsets fills Newest and Oldest of every partition with two
// ListOffsets requests per leader (a request may not name a partition
// twice, so latest and earliest cannot share one).
func (p *Poller) logOffsets(ctx context.Context, brokers []*sarama.Broker, topics map[string]*cluster.Topic, leaders map[int32][]cluster.TopicPartition) error {
	var targets []*sarama.Broker
	var errs []error
	for id := range leaders {
		if !hasBroker(brokers, id) {
			errs = append(errs, &StageError{Stage: StageListOffsets, Broker: id, Err: errors.New("partition leader not reachable")})
		}
	}
	for _, b := range brokers {
		if len(leaders[b.ID()]) > 0 {
			targets = append(targets, b)
		}
	}
	var mu sync.Mutex
	errs = append(errs, forEachBroker(ctx, targets, func(b *sarama.Broker) error {
		tps := leaders[b.ID()]
		for _, when := range []int64{sarama.OffsetNewest, sarama.OffsetOldest} {
			req := &sarama.OffsetRequest{Version: p.vers.listOffsets}
			for _, tp := range tps {
				req.AddBlock(tp.Topic, tp.Partition, when, 1)
			}
			p.count(apiListOffsets)
			resp, err := b.GetAvailableOffsets(req)
			if err != nil {
				p.closeOnError(b, err)
				return &StageError{Stage: StageListOffsets, Broker: b.ID(), Err: err}
			}
			// A partition that errs (a leader election in progress) keeps
			// an unknown offset; the others of this broker are still good.
			var perr []error
			mu.Lock()
			for _, tp := range tps {
				blk := resp.GetBlock(tp.Topic, tp.Partition)
				if blk == nil {
					perr = append(perr, fmt.Errorf("no answer for %s/%d", tp.Topic, tp.Partition))
					continue
				}
				if blk.Err != sarama.ErrNoError {
					perr = append(perr, fmt.Errorf("%s/%d: %w", tp.Topic, tp.Partition, blk.Err))
					continue
				}
				off := blk.Offset
				if resp.Version == 0 && len(blk.Offsets) > 0 {
					off = blk.Offsets[0]
				}
				part := topics[tp.Topic].Partitions[tp.Partition]
				if when == sarama.OffsetNewest {
					part.Newest = off
				} else {
					part.Oldest = off
				}
				topics[tp.Topic].Partitions[tp.Partition] = part
			}
			mu.Unlock()
			if len(perr) > 0 {
				return &StageError{Stage: StageListOffsets, Broker: b.ID(), Err: errors.Join(perr...)}
			}
		}
		return nil
	}))
	return errors.Join(errs...)
}
