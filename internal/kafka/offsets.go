package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"
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
// It then reads the timestamps of records at committed offsets that lag
// in seconds needs (see recordTimes).
func (p *Poller) PollOffsets(ctx context.Context) (*cluster.OffsetsObservation, error) {
	c, err := p.client(loopOffsets)
	if err != nil {
		return nil, err
	}
	groups := p.lastGroups.Load()
	// A refresh gets a third of the poll interval at most (as each stage
	// below); when it is late, the poll goes on with the metadata of the
	// previous one, if there was one.
	var lateErr error
	started, err := p.meta.refresh(c, p.cfg.PollInterval/3)
	if started {
		p.count(apiMetadata)
	}
	if late := (errMetadataLate{}); errors.As(err, &late) && p.lastOffsets.Load() != nil {
		lateErr, err = &StageError{Stage: StageMetadata, Broker: -1, Err: err}, nil
	}
	if err != nil && metadataArrived(err) {
		// A broker answered, with errors for some topics or partitions
		// (a leaderless partition is one): sarama kept what it could, and
		// topics below says per partition what is missing.
		lateErr, err = &StageError{Stage: StageMetadata, Broker: -1, Err: err}, nil
	}
	if err != nil {
		return nil, &StageError{Stage: StageMetadata, Broker: -1, Err: err}
	}
	brokers, connErr := p.brokers(c, func(id int32) bool { return p.commitRounds.busy(id) || p.logRounds.busy(id) })
	topics, leaders, metaErr := p.topics(c)
	if topics == nil {
		return nil, errors.Join(connErr, metaErr)
	}
	connErr = errors.Join(lateErr, connErr, metaErr)
	// Each stage's rounds get a third of the poll interval, so a broker
	// hung in one stage leaves time for the others.
	stage := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, p.cfg.PollInterval/3) }
	sctx, cancel := stage()
	committed, committedAt, commitErr := p.committed(sctx, brokers, groups, topics)
	cancel()
	sctx, cancel = stage()
	logErr := p.logOffsets(sctx, brokers, topics, leaders)
	cancel()
	obs := &cluster.OffsetsObservation{Time: time.Now(), Brokers: len(c.Brokers()), BrokerList: brokerList(c), Topics: topics, Committed: committed, CommittedAt: committedAt}
	var timesErr error
	obs.RecordTimes, timesErr = p.recordTimes(ctx, c, p.lastOffsets.Load(), obs)
	p.lastOffsets.Store(obs)
	return obs, errors.Join(connErr, commitErr, logErr, timesErr)
}

// metadataArrived reports whether a failed metadata refresh still got an
// answer: sarama stores the partitions of topics answered with
// LEADER_NOT_AVAILABLE (and of the topics that were fine) and fails the
// refresh; it fails it without an answer when no broker answered, when the
// client is closed, and on authentication errors.
func metadataArrived(err error) bool {
	return !errors.Is(err, sarama.ErrOutOfBrokers) && !errors.Is(err, sarama.ErrClosedClient) &&
		!errors.Is(err, sarama.ErrSASLAuthenticationFailed) && !errors.As(err, new(errMetadataLate)) &&
		errors.Is(err, sarama.ErrLeaderNotAvailable)
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
	var leaderErrs []error
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
			// Replicas and in-sync replicas are in the metadata just
			// refreshed, so reading them sends nothing. With a replica
			// offline sarama says ErrReplicaNotAvailable and still lists
			// them; on any other error the lists stay empty (unknown).
			replicas, _ := c.Replicas(name, id)
			isr, _ := c.InSyncReplicas(name, id)
			leader, err := c.Leader(name, id)
			if err != nil {
				// No leader (an election, or every replica down): this
				// partition's offsets are unknown; the rest of the poll
				// goes on.
				t.Partitions[id] = cluster.Partition{Leader: -1, Newest: -1, Oldest: -1, Replicas: replicas, ISR: isr}
				leaderErrs = append(leaderErrs, fmt.Errorf("leader of %s/%d: %w", name, id, err))
				continue
			}
			t.Partitions[id] = cluster.Partition{Leader: leader.ID(), Newest: -1, Oldest: -1, Replicas: replicas, ISR: isr}
			leaders[leader.ID()] = append(leaders[leader.ID()], cluster.TopicPartition{Topic: name, Partition: id})
		}
		topics[name] = t
	}
	if len(leaderErrs) > 0 {
		return topics, leaders, &StageError{Stage: StageMetadata, Broker: -1, Err: errors.Join(leaderErrs...)}
	}
	return topics, leaders, nil
}

// brokerList returns the brokers of the client's metadata, sorted by ID.
func brokerList(c sarama.Client) []cluster.Broker {
	var out []cluster.Broker
	for _, b := range c.Brokers() {
		out = append(out, cluster.Broker{ID: b.ID(), Addr: b.Addr(), Rack: b.Rack()})
	}
	slices.SortFunc(out, func(a, b cluster.Broker) int { return int(a.ID) - int(b.ID) }) // IDs are not negative
	return out
}

// brokerCommits is one coordinator's answer: the committed offsets of each
// group it answered for (every partition with a commit), the groups whose
// fetch failed (they keep their previous offsets) and why.
type brokerCommits struct {
	committed map[string]map[string]map[int32]int64
	failed    []string
	errs      []error
}

// committed fetches the committed offsets of every group from its
// coordinator, each coordinator in its own round (see rounds): many groups
// per request on brokers with OffsetFetch v8+, one request per group
// before that. A coordinator that fails or is still busy keeps its groups'
// previous offsets, with the time they were read; offsets not read for
// KRE_STALE_AFTER are dropped.
func (p *Poller) committed(ctx context.Context, brokers []*sarama.Broker, groups *cluster.GroupsObservation, topics map[string]*cluster.Topic) (map[string]map[string]map[int32]int64, map[string]time.Time, error) {
	byCoordinator := map[int32][]string{}
	if groups != nil {
		for name, g := range groups.Groups {
			byCoordinator[g.Coordinator] = append(byCoordinator[g.Coordinator], name)
		}
	}
	var targets []*sarama.Broker
	for _, b := range brokers {
		if len(byCoordinator[b.ID()]) > 0 {
			targets = append(targets, b)
		}
	}
	carry := map[int32]bool{}
	var errs []error
	for id := range byCoordinator {
		if !hasBroker(brokers, id) {
			carry[id] = true
			errs = append(errs, &StageError{Stage: StageOffsetFetch, Broker: id, Err: errors.New("coordinator not reachable")})
		}
	}
	start := time.Now()
	answers := p.commitRounds.round(ctx, targets, func(b *sarama.Broker) (brokerCommits, error) {
		names := slices.Sorted(slices.Values(byCoordinator[b.ID()]))
		return p.fetchCommitted(b, names)
	})
	out := map[string]map[string]map[int32]int64{}
	at := map[string]time.Time{}
	var carryGroups []string
	for _, b := range targets {
		a := answers[b.ID()]
		fresh := a.fresh(start)
		if !fresh {
			errs = append(errs, a.busy(StageOffsetFetch, b.ID(), start))
		}
		if a.none || a.err != nil {
			if fresh {
				errs = append(errs, a.err)
			}
			carry[b.ID()] = true
			continue
		}
		for g, offs := range a.val.committed {
			if kept := exported(offs, topics); len(kept) > 0 {
				out[g], at[g] = kept, a.at
			}
		}
		carryGroups = append(carryGroups, a.val.failed...)
		if fresh {
			errs = append(errs, a.val.errs...)
		}
	}
	if prev := p.lastOffsets.Load(); prev != nil {
		for id, names := range byCoordinator {
			for _, n := range names {
				if _, ok := out[n]; ok || prev.Committed[n] == nil || !(carry[id] || slices.Contains(carryGroups, n)) {
					continue
				}
				if kept := exported(prev.Committed[n], topics); len(kept) > 0 {
					out[n], at[n] = kept, prev.CommittedAt[n]
				}
			}
		}
	}
	for g, t := range at {
		if time.Since(t) > p.cfg.StaleAfter {
			delete(out, g)
			delete(at, g)
		}
	}
	return out, at, errors.Join(errs...)
}

// exported keeps the committed offsets of partitions the observation
// lists (a deleted or filtered topic has no series).
func exported(offs map[string]map[int32]int64, topics map[string]*cluster.Topic) map[string]map[int32]int64 {
	out := map[string]map[int32]int64{}
	for topic, parts := range offs {
		t, ok := topics[topic]
		if !ok {
			continue
		}
		for id, off := range parts {
			if _, ok := t.Partitions[id]; !ok {
				continue
			}
			if out[topic] == nil {
				out[topic] = map[int32]int64{}
			}
			out[topic][id] = off
		}
	}
	return out
}

// fetchCommitted reads the committed offsets of the groups names from
// their coordinator b. A request that fails is the broker's error; a group
// that answers an error fails alone.
//
// OffsetFetch v8+ carries many groups per request. sarama lowers every
// request to the broker's highest version and refuses to encode a
// lowered request with several groups (before anything is sent), so that
// refusal, or a one-group answer below v8, says the broker does not batch:
// it then gets one request per group. Version 2 is the first that returns
// every committed offset of a group when no partitions are named.
func (p *Poller) fetchCommitted(b *sarama.Broker, names []string) (brokerCommits, error) {
	out := brokerCommits{committed: map[string]map[string]map[int32]int64{}}
	if p.vers.offsetFetch < 2 {
		return out, &StageError{Stage: StageOffsetFetch, Broker: b.ID(), Err: errors.New("OffsetFetch v2 or later is required: KRE_KAFKA_VERSION must be at least 0.10.2")}
	}
	if err := p.reopen(b); err != nil {
		return out, err
	}
	keep := func(group string, kerr sarama.KError, blocks map[string]map[int32]*sarama.OffsetFetchResponseBlock) {
		if kerr != sarama.ErrNoError {
			if kerr != sarama.ErrGroupIDNotFound {
				p.denied(kerr)
				out.failed = append(out.failed, group)
				out.errs = append(out.errs, &StageError{Stage: StageOffsetFetch, Broker: b.ID(), Err: fmt.Errorf("group %q: %w", group, kerr)})
			}
			return
		}
		offs := map[string]map[int32]int64{}
		for topic, parts := range blocks {
			for id, blk := range parts {
				if blk == nil || blk.Offset < 0 {
					continue
				}
				if blk.Err != sarama.ErrNoError {
					p.denied(blk.Err)
					continue
				}
				if offs[topic] == nil {
					offs[topic] = map[int32]int64{}
				}
				offs[topic][id] = blk.Offset
			}
		}
		if len(offs) > 0 {
			out.committed[group] = offs
		}
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
			return out, &StageError{Stage: StageOffsetFetch, Broker: b.ID(), Err: err}
		}
		if resp.Version < 2 {
			return out, &StageError{Stage: StageOffsetFetch, Broker: b.ID(), Err: fmt.Errorf("broker supports OffsetFetch up to v%d; v2 or later is required", resp.Version)}
		}
		if resp.Version < 8 {
			// Lowered: the broker answered for batch[0] alone.
			batching = false
			keep(batch[0], resp.Err, resp.Blocks)
			names = names[1:]
			continue
		}
		for _, g := range resp.Groups {
			keep(g.GroupId, g.Err, g.Blocks)
		}
		names = names[n:]
	}
	return out, nil
}

func hasBroker(brokers []*sarama.Broker, id int32) bool {
	for _, b := range brokers {
		if b.ID() == id {
			return true
		}
	}
	return false
}

// brokerLogOffsets is one leader's answer: the log end and log start of
// each partition it answered for (-1 where unknown), and the partitions'
// errors.
type brokerLogOffsets struct {
	newest, oldest map[cluster.TopicPartition]int64
	err            error
}

// logOffsets fills Newest and Oldest of every partition with two
// ListOffsets requests per leader (a request may not name a partition
// twice, so latest and earliest cannot share one), each leader in its own
// round (see rounds): a leader that fails keeps its partitions' offsets
// unknown; one still busy contributes its last answer.
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
	start := time.Now()
	answers := p.logRounds.round(ctx, targets, func(b *sarama.Broker) (brokerLogOffsets, error) {
		return p.logOffsetsOn(b, leaders[b.ID()])
	})
	for _, b := range targets {
		a := answers[b.ID()]
		fresh := a.fresh(start)
		if !fresh {
			errs = append(errs, a.busy(StageListOffsets, b.ID(), start))
		}
		if a.none || a.err != nil {
			if fresh {
				errs = append(errs, a.err)
			}
			continue
		}
		if fresh && a.val.err != nil {
			errs = append(errs, a.val.err)
		}
		for _, tp := range leaders[b.ID()] {
			part := topics[tp.Topic].Partitions[tp.Partition]
			if v, ok := a.val.newest[tp]; ok {
				part.Newest = v
			}
			if v, ok := a.val.oldest[tp]; ok {
				part.Oldest = v
			}
			topics[tp.Topic].Partitions[tp.Partition] = part
		}
	}
	return errors.Join(errs...)
}

// logOffsetsOn asks one leader for its partitions' log end and start.
func (p *Poller) logOffsetsOn(b *sarama.Broker, tps []cluster.TopicPartition) (brokerLogOffsets, error) {
	out := brokerLogOffsets{newest: map[cluster.TopicPartition]int64{}, oldest: map[cluster.TopicPartition]int64{}}
	if err := p.reopen(b); err != nil {
		return out, err
	}
	var perr []error
	for _, when := range []int64{sarama.OffsetNewest, sarama.OffsetOldest} {
		req := &sarama.OffsetRequest{Version: p.vers.listOffsets}
		for _, tp := range tps {
			req.AddBlock(tp.Topic, tp.Partition, when, 1)
		}
		p.count(apiListOffsets)
		resp, err := b.GetAvailableOffsets(req)
		if err != nil {
			p.closeOnError(b, err)
			return out, &StageError{Stage: StageListOffsets, Broker: b.ID(), Err: err}
		}
		// A partition that errs (a leader election in progress) keeps an
		// unknown offset; the others of this broker are still good.
		for _, tp := range tps {
			blk := resp.GetBlock(tp.Topic, tp.Partition)
			if blk == nil {
				perr = append(perr, fmt.Errorf("no answer for %s/%d", tp.Topic, tp.Partition))
				continue
			}
			if blk.Err != sarama.ErrNoError {
				p.denied(blk.Err)
				perr = append(perr, fmt.Errorf("%s/%d: %w", tp.Topic, tp.Partition, blk.Err))
				continue
			}
			off := blk.Offset
			if resp.Version == 0 && len(blk.Offsets) > 0 {
				off = blk.Offsets[0]
			}
			if when == sarama.OffsetNewest {
				out.newest[tp] = off
			} else {
				out.oldest[tp] = off
			}
		}
	}
	if len(perr) > 0 {
		out.err = &StageError{Stage: StageListOffsets, Broker: b.ID(), Err: errors.Join(perr...)}
	}
	return out, nil
}
