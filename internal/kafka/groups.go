package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/cluster"
)

// describeBatch bounds how many groups go into one DescribeGroups or
// ConsumerGroupDescribe request, keeping responses to a sane size on
// coordinators that own thousands of groups.
const describeBatch = 200

// PollGroups lists every consumer group on every broker (each broker lists
// the groups it coordinates, so the coordinator needs no FindCoordinator)
// and describes them in batches, one request per coordinator and batch.
//
// When some brokers fail, the result is partial and the error says which:
// groups those brokers coordinated in the previous result are carried
// forward unchanged, so they neither vanish nor look rebalanced, while
// every other group is fresh. Only when no broker answers is the
// observation nil.
func (p *Poller) PollGroups(ctx context.Context) (*cluster.GroupsObservation, error) {
	c, err := p.clientFor()
	if err != nil {
		return nil, err
	}
	brokers, connErr := p.brokers(c)
	if len(brokers) == 0 {
		return nil, errors.Join(connErr, &StageError{Stage: StageConnect, Broker: -1, Err: fmt.Errorf("no broker reachable")})
	}
	var mu sync.Mutex
	groups := map[string]*cluster.Group{}
	failed := failedBrokers(connErr)
	err = forEachBroker(ctx, brokers, func(b *sarama.Broker) error {
		found, err := p.groupsOn(b)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			failed[b.ID()] = true
			return err
		}
		for _, g := range found {
			groups[g.Name] = g
		}
		return nil
	})
	if prev := p.lastGroups.Load(); prev != nil && len(failed) > 0 {
		for name, g := range prev.Groups {
			if _, fresh := groups[name]; !fresh && failed[g.Coordinator] {
				groups[name] = g
			}
		}
	}
	obs := &cluster.GroupsObservation{Time: time.Now(), Groups: groups}
	p.lastGroups.Store(obs)
	return obs, errors.Join(connErr, err)
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

// groupsOn lists and describes the groups one broker coordinates.
func (p *Poller) groupsOn(b *sarama.Broker) ([]*cluster.Group, error) {
	p.count(apiListGroups)
	lr, err := b.ListGroups(&sarama.ListGroupsRequest{Version: p.vers.listGroups})
	if err != nil {
		p.closeOnError(b, err)
		return nil, &StageError{Stage: StageListGroups, Broker: b.ID(), Err: err}
	}
	if lr.Err != sarama.ErrNoError {
		return nil, &StageError{Stage: StageListGroups, Broker: b.ID(), Err: lr.Err}
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

	var out []*cluster.Group
	for start := 0; start < len(classic); start += describeBatch {
		batch := classic[start:min(start+describeBatch, len(classic))]
		gs, err := p.describeClassic(b, batch)
		if err != nil {
			return nil, err
		}
		out = append(out, gs...)
	}
	if len(consumer) > 0 {
		// KIP-848 groups exist only on brokers that have
		// ConsumerGroupDescribe, but the operator's version cap can still
		// forbid it; sarama cannot know that the request is the only way
		// to describe these groups, so the error says so.
		if p.vers.consumerGroupDescribe < 0 {
			return nil, &StageError{Stage: StageDescribeConsumerGroups, Broker: b.ID(),
				Err: fmt.Errorf("KIP-848 groups need ConsumerGroupDescribe: KRE_KAFKA_VERSION must be at least 3.7.0")}
		}
		for start := 0; start < len(consumer); start += describeBatch {
			batch := consumer[start:min(start+describeBatch, len(consumer))]
			gs, err := p.describeConsumer(b, batch)
			if err != nil {
				return nil, err
			}
			out = append(out, gs...)
		}
	}
	return out, nil
}

func (p *Poller) describeClassic(b *sarama.Broker, names []string) ([]*cluster.Group, error) {
	p.count(apiDescribeGroups)
	resp, err := b.DescribeGroups(&sarama.DescribeGroupsRequest{Version: p.vers.describeGroups, Groups: names})
	if err != nil {
		p.closeOnError(b, err)
		return nil, &StageError{Stage: StageDescribeGroups, Broker: b.ID(), Err: err}
	}
	out := make([]*cluster.Group, 0, len(resp.Groups))
	for _, d := range resp.Groups {
		if d.Err != sarama.ErrNoError {
			// A group that moved to another coordinator or vanished since
			// ListGroups: fail the poll rather than publish a group set with
			// a hole, which would look like the group disappeared.
			if d.Err == sarama.ErrGroupIDNotFound {
				continue
			}
			return nil, &StageError{Stage: StageDescribeGroups, Broker: b.ID(), Err: fmt.Errorf("group %q: %w", d.GroupId, d.Err)}
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
		}
		for _, m := range d.Members {
			g.Members = append(g.Members, p.classicMember(b, d, m))
		}
		slices.SortFunc(g.Members, func(a, b cluster.Member) int { return strings.Compare(a.MemberID, b.MemberID) })
		out = append(out, g)
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
	if len(m.MemberMetadata) > 0 {
		md, err := safeDecode(m.GetMemberMetadata)
		if err != nil {
			p.metrics.stageError(StageDecodeMember)
			p.log.Debug().Err(err).Str("consumergroup", d.GroupId).Str("member", m.MemberId).Int32("broker", b.ID()).Msg("undecodable member metadata")
		} else if md.Version >= 2 {
			mem.Generation = md.GenerationID
		}
	}
	if len(m.MemberAssignment) > 0 {
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

func (p *Poller) describeConsumer(b *sarama.Broker, names []string) ([]*cluster.Group, error) {
	p.count(apiConsumerGroupDescribe)
	resp, err := b.ConsumerGroupDescribe(&sarama.ConsumerGroupDescribeRequest{Version: p.vers.consumerGroupDescribe, GroupIDs: names})
	if errors.Is(err, sarama.ErrUnsupportedVersion) {
		return nil, &StageError{Stage: StageDescribeConsumerGroups, Broker: b.ID(),
			Err: fmt.Errorf("the broker lists KIP-848 groups but does not support ConsumerGroupDescribe: %w", err)}
	}
	if err != nil {
		p.closeOnError(b, err)
		return nil, &StageError{Stage: StageDescribeConsumerGroups, Broker: b.ID(), Err: err}
	}
	out := make([]*cluster.Group, 0, len(resp.Groups))
	for _, d := range resp.Groups {
		if d.ErrorCode != sarama.ErrNoError {
			if d.ErrorCode == sarama.ErrGroupIDNotFound {
				continue
			}
			return nil, &StageError{Stage: StageDescribeConsumerGroups, Broker: b.ID(), Err: fmt.Errorf("group %q: %w", d.GroupID, d.ErrorCode)}
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
		out = append(out, g)
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
