package rebalance

import (
	"math"
	"slices"
	"sort"
	"time"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/cluster"
)

// generation is one reading of a group's generation.
type generation struct {
	value  int32
	source string
	// scale is the quantity the value measures (GenerationScale); readings
	// of different sources on one scale can be compared.
	scale string
	known bool
	// hint: the value rests on what members claim (KIP-792 metadata), so
	// a delta is only believed as far as the members' own claims agree.
	hint bool
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
	gen         generation                        // the sources' reading, as read
}

// stretch is a rebalance seen in progress.
type stretch struct {
	since     time.Time // first observation that saw it
	inherited bool      // already running at the group's first observation
	event     Event
}

// baseline is what a generation delta is measured from.
type baseline struct {
	// gen is the latest reading; unknown until a source answered.
	gen generation
	// floor is the generation the tracker has accounted for, in gen's
	// numbering: the reading that started the baseline plus every
	// rebalance counted since. It never goes down except when the group
	// is taken as recreated, and it is what the tracker exports.
	floor int64
	// counted is what the fallback counted since the latest reading.
	counted uint64
	// claims holds each member's claimed generation at the latest reading
	// (by member ID; members that claim none are left out; nil when none
	// does).
	claims map[string]int32
}

// groupTracker is the tracker's memory of one group.
type groupTracker struct {
	// stats is the group's published statistics. Stats hands out copies
	// of the struct, so its scalar fields may change; its slices are
	// shared with those copies and are replaced, never modified.
	stats GroupStats
	seen  bool // an informative observation has been folded in

	prev view // latest informative observation
	// prevGroup is the group prev was built from: a later observation
	// describing the group identically changes nothing but the time.
	prevGroup *cluster.Group
	exported  generation // generation published for prev
	// lastOwners is who owned each partition at the latest settled
	// observation that had it owned.
	lastOwners map[cluster.TopicPartition]string

	base baseline
	open *stretch

	// missed counts the observations in a row the group was absent from.
	missed int
}

func newGroupTracker(name string, empty DurationHistogram) *groupTracker {
	return &groupTracker{stats: GroupStats{Group: name, Durations: empty}}
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
	// Observations are never modified once published, so the members are
	// the observation's own; no copy.
	gt.stats.Members = g.Members
	if !informative(g.State) {
		return nil
	}
	read := t.read(g)
	// The common case at scale: the group is described as it was last
	// time, with the same reading, and no rebalance is open. Folding it in
	// would count nothing and publish the same values; skip the work.
	if gt.seen && gt.open == nil && read == gt.prev.gen && sameGroup(gt.prevGroup, g) {
		gt.prevGroup = g
		return nil
	}
	cur := newView(g, read)
	if !gt.seen {
		gt.first(g, cur, now)
		return nil
	}

	joined, left, rejoined := diffMembers(gt.prev.members, cur.members)
	gt.stats.MemberJoins += uint64(len(joined))
	gt.stats.MemberLeaves += uint64(len(left))

	count, detection := gt.countRebalances(g, cur, t)
	if count > 0 {
		gt.stats.Rebalances += count
		gt.stats.LastRebalance = now
	}

	exported := gt.base.exported(cur.gen)
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
				gt.stats.Durations = gt.stats.Durations.with(e.Duration)
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

	gt.prev, gt.prevGroup, gt.exported = cur, g, exported
	gt.publish(g)
	return events
}

// first takes the group's first informative observation as the baseline.
func (gt *groupTracker) first(g *cluster.Group, cur view, now time.Time) {
	gt.seen = true
	gt.base.restart(g, cur.gen)
	gt.prev, gt.prevGroup, gt.exported = cur, g, gt.base.exported(cur.gen)
	gt.lastOwners = cur.owners
	if cur.rebalancing {
		gt.open = &stretch{since: now, inherited: true, event: Event{
			Group:            gt.stats.Group,
			GenerationFrom:   gt.exported.valueOr(),
			GenerationTo:     -1,
			GenerationSource: gt.exported.source,
			InProgress:       true,
		}}
	}
	gt.publish(g)
}

// fallback is what describe output alone shows since the previous
// informative observation: one rebalance when a stretch of rebalancing
// observations starts, or when two settled ones differ in member set or
// partition assignment.
func (gt *groupTracker) fallback(cur view) (uint64, string) {
	switch {
	case cur.rebalancing:
		if gt.open == nil {
			return 1, DetectState
		}
	case gt.open == nil:
		// Both this and the previous observation are settled.
		if !sameKeys(gt.prev.members, cur.members) {
			return 1, DetectMembership
		} else if !sameOwners(gt.prev.owners, cur.owners) {
			return 1, DetectAssignment
		}
	}
	return 0, ""
}

// countRebalances decides how many rebalances happened since the previous
// informative observation, and moves the generation baseline.
func (gt *groupTracker) countRebalances(g *cluster.Group, cur view, t *Tracker) (uint64, string) {
	fb, fbDetection := gt.fallback(cur)
	b := &gt.base
	switch {
	case !cur.gen.known:
		b.counted += fb
		b.floor += int64(fb)
		return fb, fbDetection
	case !b.gen.known || !comparable(b.gen, cur.gen):
		// Values of different quantities are not compared: the reading
		// starts a new baseline and describe output alone counts.
		b.restart(g, cur.gen)
		return fb, fbDetection
	}

	reading := int64(cur.gen.value)
	if !cur.gen.hint && b.gen.source != cur.gen.source && reading < b.floor {
		// An exact source took over from a hint on the same scale and
		// says less than what is counted: it trails (the coordinator's
		// log is read a moment after describe output shows the new
		// generation), it does not mean the group was recreated. Nothing
		// is counted twice: the floor stays.
		b.gen, b.counted, b.claims = cur.gen, 0, claimsOf(g, cur.gen)
		return 0, ""
	}
	// What the reading says happened beyond what is accounted for already.
	trusted := reading - b.floor
	recreated := reading < int64(b.gen.value)
	if cur.gen.hint {
		// A member's claim is only evidence about itself. Members that
		// claimed a generation at the latest reading and still do (same
		// member ID, so they took part in every generation in between)
		// each moved by exactly the generations since; the least of
		// their moves bounds the delta, so one member's claim cannot
		// carry the count beyond what the others saw.
		if moved, ok := progression(b.claims, g); ok {
			trusted = min(trusted, moved-int64(b.counted))
			recreated = recreated && moved < 0
		}
	}
	if recreated {
		t.log.Info().Str("consumergroup", gt.stats.Group).Str("source", cur.gen.source).
			Int32("from", b.gen.value).Int32("to", cur.gen.value).
			Msg("generation went backwards, group was recreated: resetting its baseline")
		b.restart(g, cur.gen)
		return 0, ""
	}
	// A reading below the floor is stale (it trails rebalances the
	// fallback already counted): it counts nothing and the floor stays.
	count := uint64(max(trusted, 0))
	detection := DetectGeneration
	if g.Type == cluster.GroupTypeConsumer {
		detection = DetectEpoch
	}
	if cur.gen.hint && fb > count {
		// A hint that says less than describe output shows does not
		// overrule it.
		count, detection = fb, fbDetection
	}
	b.floor += int64(count)
	b.gen, b.counted, b.claims = cur.gen, 0, claimsOf(g, cur.gen)
	return count, detection
}

// comparable reports whether a reading can be compared with the
// baseline's: same source, or same scale (a hint taking over from an exact
// source is checked against the members' claims recorded at the exact
// reading, as between two hints).
func comparable(base, read generation) bool {
	return base.source == read.source || (base.scale != "" && base.scale == read.scale)
}

// restart makes gen, which may be unknown, the start of a new baseline.
func (b *baseline) restart(g *cluster.Group, gen generation) {
	*b = baseline{gen: gen, claims: claimsOf(g, gen)}
	if gen.known {
		b.floor = int64(gen.value)
	}
}

// exported is the generation to publish for a reading: the floor, so that
// exported generations move exactly as the rebalance counter does, or
// unknown when this observation has no reading.
func (b *baseline) exported(read generation) generation {
	if !read.known || !b.gen.known || b.gen.source != read.source {
		return generation{}
	}
	out := b.gen
	out.value = int32(min(b.floor, math.MaxInt32))
	return out
}

// claimsOf records each member's claimed generation at a reading, of any
// source: the generation its KIP-792 metadata carries, by member ID;
// members that carry none are left out. A later hint reading, of the same
// source or another on the same scale, is checked against them.
func claimsOf(g *cluster.Group, gen generation) map[string]int32 {
	n := 0
	for i := range g.Members {
		if g.Members[i].Generation >= 0 {
			n++
		}
	}
	if !gen.known || n == 0 {
		return nil
	}
	out := make(map[string]int32, n)
	for i := range g.Members {
		if m := &g.Members[i]; m.Generation >= 0 {
			out[m.MemberID] = m.Generation
		}
	}
	return out
}

// progression is the least move of a claimed generation among the members
// in before that still claim one in g; ok is false when there is none.
func progression(before map[string]int32, g *cluster.Group) (moved int64, ok bool) {
	for i := range g.Members {
		m := &g.Members[i]
		then, had := before[m.MemberID]
		if !had || m.Generation < 0 {
			continue
		}
		d := int64(m.Generation) - int64(then)
		if !ok || d < moved {
			moved = d
		}
		ok = true
	}
	return moved, ok
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

// record appends e to the history in a new slice: the published one may
// be held by readers.
func (gt *groupTracker) record(e Event, size int) {
	if size <= 0 {
		return
	}
	h := gt.stats.History
	h = h[max(0, len(h)-size+1):]
	next := make([]Event, len(h), len(h)+1)
	copy(next, h)
	gt.stats.History = append(next, e)
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

// sameGroup reports whether two descriptions of a group agree on
// everything the tracker and the built-in sources read, so that the
// second would fold in as a no-op. It allocates nothing.
func sameGroup(a, b *cluster.Group) bool {
	if a == b {
		return true
	}
	if a == nil || b == nil || a.Type != b.Type || a.State != b.State ||
		a.GroupEpoch != b.GroupEpoch || a.AssignmentEpoch != b.AssignmentEpoch || len(a.Members) != len(b.Members) {
		return false
	}
	for i := range a.Members {
		x, y := &a.Members[i], &b.Members[i]
		if x.MemberID != y.MemberID || x.InstanceID != y.InstanceID || x.ClientID != y.ClientID || x.ClientHost != y.ClientHost ||
			x.Generation != y.Generation || x.MemberEpoch != y.MemberEpoch ||
			!equalAssignment(x.Assignment, y.Assignment) || !equalAssignment(x.TargetAssignment, y.TargetAssignment) {
			return false
		}
	}
	return true
}

// equalAssignment reports whether a and b list the same partitions in the
// same order.
func equalAssignment(a, b cluster.Assignment) bool {
	if len(a) != len(b) {
		return false
	}
	for topic, ps := range a {
		qs, ok := b[topic]
		if !ok || !slices.Equal(ps, qs) {
			return false
		}
	}
	return true
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

// sameAssignment reports whether a and b hold the same set of partitions,
// whatever the order.
func sameAssignment(a, b cluster.Assignment) bool {
	if equalAssignment(a, b) {
		return true // the usual case, without building sets
	}
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
