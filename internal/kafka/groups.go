package kafka

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/IBM/sarama"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/cluster"
)

// describeBatch bounds how many groups go into one DescribeGroups or
// ConsumerGroupDescribe request, keeping responses to a sane size on
// coordinators that own thousands of groups.
const describeBatch = 200

// maxMemberMetadata bounds what is decoded of one classic member: its
// subscription metadata (KIP-792 generation) and its assignment are each
// skipped above this size, and counted in member_metadata_skipped_total;
// the member itself is still exported, without generation or assignment.
// A real consumer's subscription and assignment are a few kilobytes even
// with thousands of partitions; 1 MiB is far above that and bounds the
// decoding work and the memory a hostile member can make the exporter
// keep. A whole DescribeGroups response above sarama.MaxResponseSize
// (100 MiB) cannot be read at all: see describeClassic.
const maxMemberMetadata = 1 << 20

// tooLargeRetry is how often a group whose description was too large to
// read is asked again (alone); in between it is not asked at all, so the
// broker is not made to send a response above 100 MiB at every poll.
const tooLargeRetry = time.Minute

// PollGroups lists every consumer group on every broker (each broker lists
// the groups it coordinates, so the coordinator needs no FindCoordinator)
// and describes them in batches, one request per coordinator and batch.
//
// Brokers are asked concurrently, each in its own round (see rounds): a
// broker that has not answered when ctx ends keeps its last answer, and the
// groups it coordinates keep the time they were last observed, while every
// other group is fresh. A broker that fails, or a group whose description
// fails, keeps its groups from the previous observation. Groups not
// observed for KRE_STALE_AFTER are dropped rather than served forever. The
// error says what failed; only when no broker is reachable is the
// observation nil.
//
// A group that was observed before and that its coordinator, answering,
// no longer describes has been deleted or has moved: that broker is asked
// which broker coordinates it now (see vanishedOn). A group it still
// coordinates is gone; any other answer means it may be moving, and the new
// coordinator may still be loading it, so it keeps its previous state, and
// its observation time, until a broker describes it or it goes stale. A
// group that moves thus keeps its series and its rebalance history.
//
// A group that its coordinator, answering, no longer lists (moved or
// deleted), that answers NOT_COORDINATOR or
// COORDINATOR_NOT_AVAILABLE, or whose coordinator is no longer among the
// known brokers, may have moved to a broker the cached metadata does not
// know: the poll then refreshes the metadata (one Metadata request for a
// single topic, which names every broker) and asks the brokers new to it
// in the same poll.
func (p *Poller) PollGroups(ctx context.Context) (*cluster.GroupsObservation, error) {
	c, err := p.client(loopGroups)
	if err != nil {
		return nil, err
	}
	brokers, connErr := p.brokers(c, p.groupRounds.busy)
	if len(brokers) == 0 {
		return nil, errors.Join(connErr, &StageError{Stage: StageConnect, Broker: -1, Err: fmt.Errorf("no broker reachable")})
	}
	start := time.Now()
	prev := p.lastGroups.Load()
	before := coordinatedBy(prev)
	groupsOn := func(b *sarama.Broker) (brokerGroups, error) { return p.groupsOn(b, before[b.ID()]) }
	answers := p.groupRounds.round(ctx, brokers, groupsOn)
	errs := []error{}
	// Brokers known to the metadata: those connected and those that
	// failed to connect (their groups are carried forward below).
	known := failedBrokers(connErr)
	for _, b := range brokers {
		known[b.ID()] = true
	}
	if ctx.Err() == nil && maybeMoved(prev, known, brokers, answers, start) {
		extra, err := p.newBrokers(c, known)
		errs = append(errs, err)
		if len(extra) > 0 {
			p.log.Info().Int("brokers", len(extra)).Msg("groups moved to brokers the cached metadata did not know; asking them in this poll")
			maps.Copy(answers, p.groupRounds.more(ctx, extra, groupsOn))
			brokers = append(brokers, extra...)
			slices.SortFunc(brokers, func(a, b *sarama.Broker) int { return cmp.Compare(a.ID(), b.ID()) })
		}
	}
	// A broker is up when it answered within this poll: one that keeps
	// its connections open and answers nothing (hung) is down too.
	answered := make(map[int32]bool, len(brokers))
	for _, b := range brokers {
		a := answers[b.ID()]
		answered[b.ID()] = a.fresh(start) && a.err == nil
	}
	p.reportReachable(answered, connErr)

	groups := map[string]*cluster.Group{}
	carry := failedBrokers(connErr)
	var carryGroups []string
	errs = append(errs, connErr)
	for _, b := range brokers {
		a := answers[b.ID()]
		fresh := a.fresh(start)
		if !fresh {
			errs = append(errs, a.busy(StageDescribeGroups, b.ID(), start))
		}
		if a.none || a.err != nil {
			if fresh {
				errs = append(errs, a.err)
			}
			carry[b.ID()] = true
			continue
		}
		for _, g := range a.val.groups {
			groups[g.Name] = g
		}
		carryGroups = append(carryGroups, a.val.failed...)
		carryGroups = append(carryGroups, a.val.moving...)
		if fresh {
			errs = append(errs, a.val.errs...)
		}
	}
	if prev != nil {
		for name, g := range prev.Groups {
			if _, ok := groups[name]; !ok && (carry[g.Coordinator] || slices.Contains(carryGroups, name)) {
				groups[name] = g
			}
		}
	}
	now := time.Now()
	for name, g := range groups {
		if now.Sub(g.ObservedAt) > p.cfg.StaleAfter {
			delete(groups, name)
		}
	}
	obs := &cluster.GroupsObservation{Time: now, Groups: groups}
	p.lastGroups.Store(obs)
	return obs, errors.Join(errs...)
}

// maybeMoved reports whether some group may have moved to a broker not in
// brokers (see PollGroups).
func maybeMoved(prev *cluster.GroupsObservation, known map[int32]bool, brokers []*sarama.Broker, answers map[int32]answer[brokerGroups], start time.Time) bool {
	for _, b := range brokers {
		a := answers[b.ID()]
		if !a.fresh(start) || a.err != nil {
			continue
		}
		if a.val.vanished > 0 {
			return true
		}
		for _, err := range a.val.errs {
			if errors.Is(err, sarama.ErrNotCoordinatorForConsumer) || errors.Is(err, sarama.ErrConsumerCoordinatorNotAvailable) {
				return true
			}
		}
	}
	if prev == nil {
		return false
	}
	for _, g := range prev.Groups {
		if !known[g.Coordinator] {
			return true
		}
	}
	return false
}

// newBrokers refreshes the groups client's metadata and returns the
// brokers it names that are not known, connected. The refresh asks for a
// single topic the client knows (every Metadata answer names all brokers),
// so it costs little even on clusters with many partitions. It waits for
// the refresh a third of the groups poll interval at most (see
// metadataRefresh: a hung broker cannot hold the poll for the request
// timeout); a late refresh finds the new brokers for the next poll.
func (p *Poller) newBrokers(c sarama.Client, known map[int32]bool) ([]*sarama.Broker, error) {
	var topics []string
	if ts, err := c.Topics(); err == nil && len(ts) > 0 {
		topics = ts[:1]
	}
	var errs []error
	started, err := p.meta.refresh(c, p.cfg.GroupPollInterval/3, topics...)
	if started {
		p.count(apiMetadata)
	}
	if errors.Is(err, sarama.ErrUnknownTopicOrPartition) || errors.Is(err, sarama.ErrLeaderNotAvailable) {
		// The one topic asked for was deleted, or has a partition without
		// a leader, since the cache was filled: the answer still names
		// every broker, which is all this refresh is for.
		err = nil
	}
	if err != nil {
		errs = append(errs, &StageError{Stage: StageMetadata, Broker: -1, Err: err})
	}
	all, connErr := p.brokers(c, func(id int32) bool { return known[id] || p.groupRounds.busy(id) })
	var out []*sarama.Broker
	for _, b := range all {
		if !known[b.ID()] {
			out = append(out, b)
		}
	}
	errs = append(errs, connErr)
	return out, errors.Join(errs...)
}

// failedBrokers returns the brokers named in a poll error.
func failedBrokers(err error) map[int32]bool {
	out := map[int32]bool{}
	for _, se := range StageErrors(err) {
		if se.Broker >= 0 {
			out[se.Broker] = true
		}
	}
	return out
}

// brokerGroups is one broker's answer: the groups it described, the
// groups whose description failed (they keep their previous state) and
// why.
type brokerGroups struct {
	groups []*cluster.Group
	failed []string
	errs   []error
	// tooLarge are the groups whose description is above the response
	// size limit, with when they were last asked.
	tooLarge map[string]time.Time
	// moving are groups the broker coordinated at the previous
	// observation, no longer describes and does not coordinate now (see
	// vanishedOn): they keep their previous state. vanished counts those
	// and the groups found gone.
	moving   []string
	vanished int
}

func (bg *brokerGroups) add(a brokerGroups) {
	bg.groups = append(bg.groups, a.groups...)
	bg.failed = append(bg.failed, a.failed...)
	bg.errs = append(bg.errs, a.errs...)
	bg.moving = append(bg.moving, a.moving...)
	bg.vanished += a.vanished
	for n, at := range a.tooLarge {
		if bg.tooLarge == nil {
			bg.tooLarge = map[string]time.Time{}
		}
		bg.tooLarge[n] = at
	}
}

// groupsOn lists and describes the groups one broker coordinates; before
// are the groups it coordinated at the previous observation. Its error is
// a failure of the broker as a whole; a failure of single groups is in the
// answer.
func (p *Poller) groupsOn(b *sarama.Broker, before []string) (brokerGroups, error) {
	var out brokerGroups
	if err := p.reopen(b); err != nil {
		return out, err
	}
	p.count(apiListGroups)
	lr, err := b.ListGroups(&sarama.ListGroupsRequest{Version: p.vers.listGroups})
	if err != nil {
		p.closeOnError(b, err)
		return out, &StageError{Stage: StageListGroups, Broker: b.ID(), Err: err}
	}
	if lr.Err != sarama.ErrNoError {
		p.denied(lr.Err)
		return out, &StageError{Stage: StageListGroups, Broker: b.ID(), Err: lr.Err}
	}
	var classic, consumer []string
	for name := range lr.Groups {
		if !p.filters.Group(name) {
			continue
		}
		switch lr.GroupsData[name].GroupType {
		case cluster.GroupTypeConsumer:
			consumer = append(consumer, name)
		case cluster.GroupTypeClassic, "":
			// Brokers before ListGroups v5 report no type: every group
			// there is classic.
			classic = append(classic, name)
		default:
			// Share and streams groups are not consumer groups.
		}
	}
	slices.Sort(classic)
	slices.Sort(consumer)

	// Groups known to be too large to describe are left out of the
	// batches (which would otherwise fail and be split at every poll) and
	// asked alone, once per tooLargeRetry.
	var known map[string]time.Time
	if last, ok := p.groupRounds.last(b.ID()); ok {
		known = last.tooLarge
	}
	var alone []string
	classic = slices.DeleteFunc(classic, func(n string) bool {
		if _, ok := known[n]; ok {
			alone = append(alone, n)
			return true
		}
		return false
	})
	for start := 0; start < len(classic); start += describeBatch {
		gs, err := p.describeClassic(b, classic[start:min(start+describeBatch, len(classic))])
		if err != nil {
			return out, err
		}
		out.add(gs)
	}
	for _, n := range alone {
		if at := known[n]; time.Since(at) < tooLargeRetry {
			out.add(brokerGroups{failed: []string{n}, tooLarge: map[string]time.Time{n: at},
				errs: []error{&StageError{Stage: StageDescribeGroups, Broker: b.ID(),
					Err: fmt.Errorf("group %q: description above the response size limit (%d MiB) at %s; asked again every %s",
						n, sarama.MaxResponseSize>>20, at.Format(time.TimeOnly), tooLargeRetry)}}})
			continue
		}
		gs, err := p.describeClassic(b, []string{n})
		if err != nil {
			return out, err
		}
		out.add(gs)
	}
	if len(consumer) > 0 {
		// KIP-848 groups exist only on brokers that have
		// ConsumerGroupDescribe, but the operator's version cap can still
		// forbid it; sarama cannot know that the request is the only way
		// to describe these groups, so the error says so.
		if p.vers.consumerGroupDescribe < 0 {
			return out, &StageError{Stage: StageDescribeConsumerGroups, Broker: b.ID(),
				Err: fmt.Errorf("KIP-848 groups need ConsumerGroupDescribe: KRE_KAFKA_VERSION must be at least 3.7.0")}
		}
		for start := 0; start < len(consumer); start += describeBatch {
			gs, err := p.describeConsumer(b, consumer[start:min(start+describeBatch, len(consumer))])
			if err != nil {
				return out, err
			}
			out.add(gs)
		}
	}
	p.vanishedOn(b, before, &out)
	return out, nil
}

// maxCoordinatorLookups bounds the FindCoordinator requests one broker's
// answer makes in one poll. When more of its groups vanish at once (a
// broker gives up the leadership of a __consumer_offsets partition with
// thousands of groups), the groups beyond it are taken as moving, which
// they most likely are, and are looked up at the next polls if they have
// not turned up elsewhere by then.
const maxCoordinatorLookups = 50

// vanishedOn puts in out.moving, of the groups broker b coordinated at the
// previous observation (before), those that it neither described nor
// failed in out and that it no longer coordinates, and counts in
// out.vanished every group it neither described nor failed. b is asked with FindCoordinator, one
// read-only request per group: a group b still coordinates is gone
// (deleted, or expired once Empty) and is left out. Any other answer (b
// names another broker: the group's __consumer_offsets partition has a new
// leader, which may still be loading it; no broker: the partition has no
// leader; an error) means the group may be moving.
func (p *Poller) vanishedOn(b *sarama.Broker, before []string, out *brokerGroups) {
	seen := make(map[string]bool, len(out.groups)+len(out.failed))
	for _, g := range out.groups {
		seen[g.Name] = true
	}
	for _, n := range out.failed {
		seen[n] = true
	}
	var moving []string
	lookups, broken := 0, false
	for _, name := range before {
		if seen[name] || !p.filters.Group(name) {
			continue
		}
		out.vanished++
		if broken || lookups == maxCoordinatorLookups {
			moving = append(moving, name)
			continue
		}
		lookups++
		p.count(apiFindCoordinator)
		resp, err := b.FindCoordinator(&sarama.FindCoordinatorRequest{
			Version: p.vers.findCoordinator, CoordinatorKey: name, CoordinatorType: sarama.CoordinatorGroup})
		switch {
		case err != nil:
			// The connection is closed: the groups left are not asked.
			p.closeOnError(b, err)
			broken = true
			out.errs = append(out.errs, &StageError{Stage: StageFindCoordinator, Broker: b.ID(), Err: fmt.Errorf("group %q: %w", name, err)})
		case resp.Err == sarama.ErrNoError && resp.Coordinator != nil && resp.Coordinator.ID() == b.ID():
			continue // gone
		case resp.Err != sarama.ErrNoError && resp.Err != sarama.ErrConsumerCoordinatorNotAvailable:
			p.denied(resp.Err)
			out.errs = append(out.errs, &StageError{Stage: StageFindCoordinator, Broker: b.ID(), Err: fmt.Errorf("group %q: %w", name, resp.Err)})
		}
		moving = append(moving, name)
	}
	if len(moving) > 0 {
		p.log.Debug().Int32("broker", b.ID()).Strs("groups", moving).Msg("groups no longer on their coordinator and not known gone: kept while they move")
	}
	out.moving = moving
}

// coordinatedBy indexes the groups of obs by their coordinator.
func coordinatedBy(obs *cluster.GroupsObservation) map[int32][]string {
	out := map[int32][]string{}
	if obs == nil {
		return out
	}
	for name, g := range obs.Groups {
		out[g.Coordinator] = append(out[g.Coordinator], name)
	}
	for _, names := range out {
		slices.Sort(names)
	}
	return out
}

// describeClassic describes a batch of classic groups. A response too
// large to read (members with huge metadata) is asked again in halves, down
// to single groups; a group that still cannot be read, or that answers an
// error, is failed alone. A group too large alone is remembered (see
// groupsOn) and counted in member_metadata_skipped_total.
func (p *Poller) describeClassic(b *sarama.Broker, names []string) (brokerGroups, error) {
	var out brokerGroups
	p.count(apiDescribeGroups)
	resp, err := b.DescribeGroups(&sarama.DescribeGroupsRequest{Version: p.vers.describeGroups, Groups: names})
	var tooLarge sarama.PacketDecodingError
	if errors.As(err, &tooLarge) {
		// The connection is out of step after an unread response.
		_ = b.Close()
		if err := b.Open(p.sarama); err != nil && !errors.Is(err, sarama.ErrAlreadyConnected) {
			return out, &StageError{Stage: StageConnect, Broker: b.ID(), Err: err}
		}
		if len(names) == 1 {
			p.metrics.skip(skipResponse)
			out.tooLarge = map[string]time.Time{names[0]: time.Now()}
			out.failed = names
			out.errs = []error{&StageError{Stage: StageDescribeGroups, Broker: b.ID(), Err: fmt.Errorf("group %q: %w", names[0], err)}}
			return out, nil
		}
		half := len(names) / 2
		for _, part := range [][]string{names[:half], names[half:]} {
			gs, err := p.describeClassic(b, part)
			if err != nil {
				return out, err
			}
			out.add(gs)
		}
		return out, nil
	}
	if err != nil {
		p.closeOnError(b, err)
		return out, &StageError{Stage: StageDescribeGroups, Broker: b.ID(), Err: err}
	}
	now := time.Now()
	for _, d := range resp.Groups {
		if d.Err != sarama.ErrNoError {
			// Gone since ListGroups: not an error. Anything else (moved
			// to another coordinator, loading, denied) fails the group
			// alone; it keeps its previous state.
			if d.Err == sarama.ErrGroupIDNotFound {
				continue
			}
			p.denied(d.Err)
			out.failed = append(out.failed, d.GroupId)
			out.errs = append(out.errs, &StageError{Stage: StageDescribeGroups, Broker: b.ID(), Err: fmt.Errorf("group %q: %w", d.GroupId, d.Err)})
			continue
		}
		if d.State == "Dead" {
			continue
		}
		g := &cluster.Group{
			Name:         d.GroupId,
			Type:         cluster.GroupTypeClassic,
			ProtocolType: d.ProtocolType,
			State:        d.State,
			Assignor:     d.Protocol,
			Coordinator:  b.ID(),
			ObservedAt:   now,
		}
		for _, m := range d.Members {
			g.Members = append(g.Members, p.classicMember(b, d, m))
		}
		slices.SortFunc(g.Members, func(a, b cluster.Member) int { return strings.Compare(a.MemberID, b.MemberID) })
		out.groups = append(out.groups, g)
	}
	return out, nil
}

// classicMember decodes what a classic member told the coordinator. Only
// the "consumer" protocol type has a known layout; a member whose bytes do
// not decode is still exported, without generation or assignment.
func (p *Poller) classicMember(b *sarama.Broker, d *sarama.GroupDescription, m *sarama.GroupMemberDescription) cluster.Member {
	mem := cluster.Member{MemberID: m.MemberId, ClientID: m.ClientId, ClientHost: m.ClientHost, Generation: -1, MemberEpoch: -1}
	if m.GroupInstanceId != nil {
		mem.InstanceID = *m.GroupInstanceId
	}
	if d.ProtocolType != "consumer" {
		return mem
	}
	if len(m.MemberMetadata) > maxMemberMetadata {
		p.metrics.skip(skipMetadata)
		p.log.Debug().Str("consumergroup", d.GroupId).Str("member", m.MemberId).Int("bytes", len(m.MemberMetadata)).Msg("member metadata above the size bound: not decoded")
	} else if len(m.MemberMetadata) > 0 {
		md, err := safeDecode(m.GetMemberMetadata)
		if err != nil {
			p.metrics.stageError(StageDecodeMember)
			p.log.Debug().Err(err).Str("consumergroup", d.GroupId).Str("member", m.MemberId).Int32("broker", b.ID()).Msg("undecodable member metadata")
		} else if md.Version >= 2 {
			mem.Generation = md.GenerationID
		}
	}
	if len(m.MemberAssignment) > maxMemberMetadata {
		p.metrics.skip(skipAssignment)
		p.log.Debug().Str("consumergroup", d.GroupId).Str("member", m.MemberId).Int("bytes", len(m.MemberAssignment)).Msg("member assignment above the size bound: not decoded")
	} else if len(m.MemberAssignment) > 0 {
		as, err := safeDecode(m.GetMemberAssignment)
		if err != nil {
			p.metrics.stageError(StageDecodeMember)
			p.log.Debug().Err(err).Str("consumergroup", d.GroupId).Str("member", m.MemberId).Int32("broker", b.ID()).Msg("undecodable member assignment")
		} else {
			mem.Assignment = normalize(as.Topics)
		}
	}
	return mem
}

// safeDecode guards against decoder panics on hostile or corrupt bytes:
// the daemon must not crash on what a broker sends.
func safeDecode[T any](decode func() (T, error)) (v T, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("decoder panic: %v", r)
		}
	}()
	return decode()
}

func (p *Poller) describeConsumer(b *sarama.Broker, names []string) (brokerGroups, error) {
	var out brokerGroups
	p.count(apiConsumerGroupDescribe)
	resp, err := b.ConsumerGroupDescribe(&sarama.ConsumerGroupDescribeRequest{Version: p.vers.consumerGroupDescribe, GroupIDs: names})
	if errors.Is(err, sarama.ErrUnsupportedVersion) {
		return out, &StageError{Stage: StageDescribeConsumerGroups, Broker: b.ID(),
			Err: fmt.Errorf("the broker lists KIP-848 groups but does not support ConsumerGroupDescribe: %w", err)}
	}
	if err != nil {
		p.closeOnError(b, err)
		return out, &StageError{Stage: StageDescribeConsumerGroups, Broker: b.ID(), Err: err}
	}
	now := time.Now()
	for _, d := range resp.Groups {
		if d.ErrorCode != sarama.ErrNoError {
			if d.ErrorCode == sarama.ErrGroupIDNotFound {
				continue
			}
			p.denied(d.ErrorCode)
			out.failed = append(out.failed, d.GroupID)
			out.errs = append(out.errs, &StageError{Stage: StageDescribeConsumerGroups, Broker: b.ID(), Err: fmt.Errorf("group %q: %w", d.GroupID, d.ErrorCode)})
			continue
		}
		if d.GroupState == "Dead" {
			continue
		}
		g := &cluster.Group{
			Name:            d.GroupID,
			Type:            cluster.GroupTypeConsumer,
			ProtocolType:    "consumer",
			State:           d.GroupState,
			Assignor:        d.AssignorName,
			Coordinator:     b.ID(),
			GroupEpoch:      d.GroupEpoch,
			AssignmentEpoch: d.AssignmentEpoch,
			ObservedAt:      now,
		}
		for _, m := range d.Members {
			mem := cluster.Member{
				MemberID:         m.MemberID,
				ClientID:         m.ClientID,
				ClientHost:       m.ClientHost,
				Generation:       -1,
				MemberEpoch:      m.MemberEpoch,
				Assignment:       fromKIP848(m.Assignment),
				TargetAssignment: fromKIP848(m.TargetAssignment),
			}
			if m.InstanceID != nil {
				mem.InstanceID = *m.InstanceID
			}
			g.Members = append(g.Members, mem)
		}
		slices.SortFunc(g.Members, func(a, b cluster.Member) int { return strings.Compare(a.MemberID, b.MemberID) })
		out.groups = append(out.groups, g)
	}
	return out, nil
}

func fromKIP848(a sarama.ConsumerGroupAssignment) cluster.Assignment {
	m := map[string][]int32{}
	for _, tp := range a.TopicPartitions {
		m[tp.TopicName] = append(m[tp.TopicName], tp.Partitions...)
	}
	return normalize(m)
}

func normalize(m map[string][]int32) cluster.Assignment {
	if len(m) == 0 {
		return nil
	}
	out := make(cluster.Assignment, len(m))
	for t, ps := range m {
		if len(ps) == 0 {
			continue
		}
		out[t] = slices.Sorted(slices.Values(ps))
	}
	return out
}
