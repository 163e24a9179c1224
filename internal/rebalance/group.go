package rebalance

import (
	"sort"
	"time"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/cluster"
)

// generation is one reading of a group's generation.
type generation struct {
	value  int32
	source string
	known  bool
}

// valueOr returns the generation, or -1 when unknown, as Event wants it.
func (g generation) valueOr() int32 {
	if !g.known {
		return -1
	}
	return g.value
}

// view is the part of one group observation the tracker compares.
type view struct {
	rebalancing bool
	members     map[string]MemberRef              // by identity
	owners      map[cluster.TopicPartition]string // partition -> owner identity
	gen         generation
}

// stretch is a rebalance seen in progress.
type stretch struct {
	since     time.Time // first observation that saw it
	inherited bool      // already running at the group's first observation
	event     Event
}

// groupTracker is the tracker's memory of one group.
type groupTracker struct {
	stats GroupStats
	seen  bool // an informative observation has been folded in

	prev     view       // latest informative observation
	exported generation // generation published for prev
	// lastOwners is who owned each partition at the latest settled
	// observation that had it owned.
	lastOwners map[cluster.TopicPartition]string

	// base is the latest generation any source gave, with the number of
	// rebalances the fallback counted since, which a later delta must not
	// count again.
	base             generation
	countedSinceBase uint64

	open *stretch

	// missed counts the observations in a row the group was absent from.
	missed int
}

func newGroupTracker(name string, bounds []float64) *groupTracker {
	return &groupTracker{stats: GroupStats{Group: name, Durations: newHistogram(bounds)}}
}

// informative reports whether a state comes with a trustworthy member list.
func informative(state string) bool {
	switch state {
	case "Stable", "Empty", "PreparingRebalance", "CompletingRebalance", "Assigning", "Reconciling":
		return true
	}
	return false
}

func (gt *groupTracker) observe(g *cluster.Group, now time.Time, t *Tracker) []Event {
	gt.stats.ObservedAt = now
	gt.stats.Type = g.Type
	gt.stats.State = g.State
	gt.stats.Members = copyMembers(g.Members)
	if !informative(g.State) {
		return nil
	}
	cur := newView(g, t.read(g))
	if !gt.seen {
		gt.first(g, cur, now)
		return nil
	}

	joined, left, rejoined := diffMembers(gt.prev.members, cur.members)
	gt.stats.MemberJoins += uint64(len(joined))
	gt.stats.MemberLeaves += uint64(len(left))
	gt.stats.MemberRejoins += uint64(len(rejoined))

	count, detection := gt.countRebalances(g, cur, t)
	if count > 0 {
		gt.stats.Rebalances += count
		gt.stats.LastRebalance = now
	}

	exported := cur.gen
	if !exported.known && cur.rebalancing && gt.exported.known {
		exported = gt.exported
	}

	var events []Event
	if cur.rebalancing {
		if gt.open == nil {
			gt.open = &stretch{since: now, event: Event{
				Group:            gt.stats.Group,
				Started:          now,
				GenerationFrom:   gt.exported.valueOr(),
				GenerationTo:     -1,
				GenerationSource: gt.exported.source,
				InProgress:       true,
			}}
			gt.open.event.add(count, detection, joined, left, rejoined, 0)
			events = append(events, gt.open.event.clone())
		} else {
			gt.open.event.add(count, detection, joined, left, rejoined, 0)
		}
	} else {
		moved := gt.settleOwners(cur)
		gt.stats.PartitionOwnerChanges += moved
		switch {
		case gt.open != nil:
			s := gt.open
			gt.open = nil
			s.event.add(count, detection, joined, left, rejoined, moved)
			e := s.event
			e.InProgress = false
			e.Ended = now
			e.GenerationTo = exported.valueOr()
			if exported.known {
				e.GenerationSource = exported.source
			}
			if e.Detection == "" {
				e.Detection = DetectState
			}
			if !s.inherited {
				e.Duration = now.Sub(s.since)
				e.DurationKnown = true
				gt.stats.Durations.observe(e.Duration)
				gt.stats.LastRebalance = now
			}
			if !s.inherited || e.Rebalances > 0 {
				gt.record(e, t.historySize)
				events = append(events, e.clone())
			}
		case count > 0:
			e := Event{
				Group:            gt.stats.Group,
				GenerationFrom:   gt.exported.valueOr(),
				GenerationTo:     exported.valueOr(),
				GenerationSource: gt.exported.source,
				Ended:            now,
			}
			if exported.known {
				e.GenerationSource = exported.source
			}
			e.add(count, detection, joined, left, rejoined, moved)
			gt.record(e, t.historySize)
			events = append(events, e.clone())
		}
	}

	gt.prev, gt.exported = cur, exported
	gt.publish(g)
	return events
}

// first takes the group's first informative observation as the baseline.
func (gt *groupTracker) first(g *cluster.Group, cur view, now time.Time) {
	gt.seen = true
	gt.prev, gt.exported, gt.base = cur, cur.gen, cur.gen
	gt.lastOwners = cur.owners
	if cur.rebalancing {
		gt.open = &stretch{since: now, inherited: true, event: Event{
			Group:            gt.stats.Group,
			GenerationFrom:   cur.gen.valueOr(),
			GenerationTo:     -1,
			GenerationSource: cur.gen.source,
			InProgress:       true,
		}}
	}
	gt.publish(g)
}

// countRebalances decides how many rebalances happened since the previous
// informative observation, and moves the generation baseline.
func (gt *groupTracker) countRebalances(g *cluster.Group, cur view, t *Tracker) (uint64, string) {
	var count uint64
	var detection string
	switch {
	case cur.gen.known && gt.base.known && cur.gen.source == gt.base.source && cur.gen.value < gt.base.value:
		t.log.Info().Str("consumergroup", gt.stats.Group).Str("source", cur.gen.source).
			Int32("from", gt.base.value).Int32("to", cur.gen.value).
			Msg("generation went backwards, group was recreated: resetting its baseline")
	case cur.gen.known && gt.base.known && cur.gen.source == gt.base.source:
		delta := uint64(int64(cur.gen.value) - int64(gt.base.value))
		if delta > gt.countedSinceBase {
			count = delta - gt.countedSinceBase
		}
		detection = DetectGeneration
		if g.Type == cluster.GroupTypeConsumer {
			detection = DetectEpoch
		}
	case cur.rebalancing:
		if gt.open == nil {
			count, detection = 1, DetectState
		}
	case gt.open == nil:
		// Both this and the previous observation are settled.
		if !sameKeys(gt.prev.members, cur.members) {
			count, detection = 1, DetectMembership
		} else if !sameOwners(gt.prev.owners, cur.owners) {
			count, detection = 1, DetectAssignment
		}
	}
	if cur.gen.known {
		gt.base, gt.countedSinceBase = cur.gen, 0
	} else {
		gt.countedSinceBase += count
	}
	return count, detection
}

// settleOwners counts partitions whose owner differs from the one
// remembered, and remembers the current owners.
func (gt *groupTracker) settleOwners(cur view) uint64 {
	var moved uint64
	next := make(map[cluster.TopicPartition]string, len(cur.owners))
	for tp, owner := range cur.owners {
		if before, ok := gt.lastOwners[tp]; ok && before != owner {
			moved++
		}
		next[tp] = owner
	}
	// An Empty group keeps its last owners so that whoever comes next is
	// seen taking the partitions over; a settled group with members that
	// leaves a partition unowned no longer consumes it.
	if len(cur.members) == 0 {
		for tp, owner := range gt.lastOwners {
			if _, ok := next[tp]; !ok {
				next[tp] = owner
			}
		}
	}
	gt.lastOwners = next
	return moved
}

func (gt *groupTracker) record(e Event, size int) {
	if size <= 0 {
		return
	}
	h := gt.stats.History
	if len(h) >= size {
		copy(h, h[1:])
		h[len(h)-1] = e
		return
	}
	gt.stats.History = append(h, e)
}

func (gt *groupTracker) publish(g *cluster.Group) {
	s := &gt.stats
	s.Generation, s.GenerationKnown, s.GenerationSource = 0, false, ""
	if gt.exported.known {
		s.Generation, s.GenerationKnown, s.GenerationSource = gt.exported.value, true, gt.exported.source
	}
	s.AssignmentEpoch, s.AssignmentEpochKnown = 0, false
	if g.Type == cluster.GroupTypeConsumer {
		s.AssignmentEpoch, s.AssignmentEpochKnown = g.AssignmentEpoch, true
	}
	s.Rebalancing = gt.open != nil
	s.RebalanceStarted = time.Time{}
	if gt.open != nil {
		s.RebalanceStarted = gt.open.since
	}
}

// add folds one observation's findings into an event.
func (e *Event) add(count uint64, detection string, joined, left, rejoined []MemberRef, moved uint64) {
	if count > 0 {
		if e.Detection == "" {
			e.Detection = detection
		}
		e.Rebalances += count
	}
	e.Joined, e.JoinedCount = appendRefs(e.Joined, e.JoinedCount, joined)
	e.Left, e.LeftCount = appendRefs(e.Left, e.LeftCount, left)
	e.Rejoined, e.RejoinedCount = appendRefs(e.Rejoined, e.RejoinedCount, rejoined)
	e.PartitionsMoved += moved
}

func appendRefs(list []MemberRef, n int, more []MemberRef) ([]MemberRef, int) {
	room := max(0, MaxMemberRefs-len(list))
	return append(list, more[:min(room, len(more))]...), n + len(more)
}

func newView(g *cluster.Group, gen generation) view {
	v := view{
		rebalancing: rebalancing(g),
		members:     make(map[string]MemberRef, len(g.Members)),
		owners:      map[cluster.TopicPartition]string{},
		gen:         gen,
	}
	for i := range g.Members {
		m := &g.Members[i]
		id := identity(m)
		v.members[id] = MemberRef{MemberID: m.MemberID, InstanceID: m.InstanceID, ClientID: m.ClientID, ClientHost: m.ClientHost}
		for topic, parts := range m.Assignment {
			for _, p := range parts {
				v.owners[cluster.TopicPartition{Topic: topic, Partition: p}] = id
			}
		}
	}
	return v
}

func identity(m *cluster.Member) string {
	if m.InstanceID != "" {
		return "instance:" + m.InstanceID
	}
	return "member:" + m.MemberID
}

// rebalancing reports whether a group is between assignments. KIP-848
// groups can report Stable while members still converge on their target,
// and a new group epoch is not assigned yet while the assignment epoch
// lags; an Empty group has nothing to converge.
func rebalancing(g *cluster.Group) bool {
	if cluster.Rebalancing(g.State) {
		return true
	}
	if g.Type != cluster.GroupTypeConsumer || len(g.Members) == 0 {
		return false
	}
	if g.AssignmentEpoch < g.GroupEpoch {
		return true
	}
	for i := range g.Members {
		if !sameAssignment(g.Members[i].Assignment, g.Members[i].TargetAssignment) {
			return true
		}
	}
	return false
}

func sameAssignment(a, b cluster.Assignment) bool {
	sa, sb := partitionSet(a), partitionSet(b)
	if len(sa) != len(sb) {
		return false
	}
	for tp := range sa {
		if _, ok := sb[tp]; !ok {
			return false
		}
	}
	return true
}

func partitionSet(a cluster.Assignment) map[cluster.TopicPartition]struct{} {
	s := map[cluster.TopicPartition]struct{}{}
	for topic, parts := range a {
		for _, p := range parts {
			s[cluster.TopicPartition{Topic: topic, Partition: p}] = struct{}{}
		}
	}
	return s
}

// diffMembers lists members that joined, left, or rejoined under a new
// member ID, sorted by member ID.
func diffMembers(before, after map[string]MemberRef) (joined, left, rejoined []MemberRef) {
	for id, m := range after {
		old, ok := before[id]
		switch {
		case !ok:
			joined = append(joined, m)
		case old.MemberID != m.MemberID:
			rejoined = append(rejoined, m)
		}
	}
	for id, m := range before {
		if _, ok := after[id]; !ok {
			left = append(left, m)
		}
	}
	for _, l := range [][]MemberRef{joined, left, rejoined} {
		sort.Slice(l, func(i, j int) bool { return l[i].MemberID < l[j].MemberID })
	}
	return joined, left, rejoined
}

func sameKeys(a, b map[string]MemberRef) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if _, ok := b[k]; !ok {
			return false
		}
	}
	return true
}

func sameOwners(a, b map[cluster.TopicPartition]string) bool {
	if len(a) != len(b) {
		return false
	}
	for tp, owner := range a {
		if b[tp] != owner {
			return false
		}
	}
	return true
}
