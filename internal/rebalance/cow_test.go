package rebalance

import (
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/cluster"
)

// deepCopy copies every slice of st, so that later writes to what st
// shares would show as a difference.
func deepCopy(st GroupStats) GroupStats {
	c := st
	c.Durations.UpperBounds = slices.Clone(st.Durations.UpperBounds)
	c.Durations.CumulativeCounts = slices.Clone(st.Durations.CumulativeCounts)
	c.Members = nil
	for _, m := range st.Members {
		m.Assignment = cloneAssignment(m.Assignment)
		m.TargetAssignment = cloneAssignment(m.TargetAssignment)
		c.Members = append(c.Members, m)
	}
	c.History = nil
	for _, e := range st.History {
		c.History = append(c.History, e.clone())
	}
	return c
}

func cloneAssignment(a cluster.Assignment) cluster.Assignment {
	if a == nil {
		return nil
	}
	out := cluster.Assignment{}
	for t, ps := range a {
		out[t] = slices.Clone(ps)
	}
	return out
}

// walk reads everything st holds, for the race detector to see.
func walk(st GroupStats) (n int) {
	for _, m := range st.Members {
		n += len(m.MemberID)
		for _, ps := range m.Assignment {
			for _, p := range ps {
				n += int(p)
			}
		}
	}
	for _, e := range st.History {
		n += int(e.Rebalances) + len(e.Joined) + len(e.Left) + len(e.Rejoined)
		for _, r := range e.Joined {
			n += len(r.MemberID)
		}
	}
	for i, c := range st.Durations.CumulativeCounts {
		n += int(c) + int(st.Durations.UpperBounds[i])
	}
	return n
}

// TestStatsShareUnchangedGroups pins the copy-on-write contract: a group
// that did not change hands out the same slices as before, a group that
// changed gets new ones, and what a reader already holds never changes,
// even while the tracker goes on (run with -race).
func TestStatsShareUnchangedGroups(t *testing.T) {
	// Each call builds a new value, as every describe poll decodes one.
	steady := func() *cluster.Group {
		return classic("Stable", cm("a", 4, 0), cm("b", 4, 1), cm("c", -1, 2))
	}
	busy := func(state string, ms ...cluster.Member) *cluster.Group { return classic(state, ms...) }
	tr := NewTracker(Options{HistorySize: testHistory})
	now := t0
	observe := func(groups map[string]*cluster.Group) *cluster.GroupsObservation {
		now = now.Add(2 * time.Second)
		for name, g := range groups {
			g.Name = name
		}
		obs := &cluster.GroupsObservation{Time: now, Groups: groups}
		tr.Observe(obs)
		return obs
	}
	// Both groups go through one timed rebalance, so both have history
	// and a histogram with a count.
	observe(map[string]*cluster.Group{"steady": classic("Stable", cm("a", 4, 0, 2), cm("b", 4, 1)), "busy": busy("Stable", cm("a", -1, 0, 1))})
	observe(map[string]*cluster.Group{"steady": classic("PreparingRebalance", cm("a", -1), cm("b", -1), cm("c", -1)), "busy": busy("PreparingRebalance", cm("a", -1), cm("b", -1))})
	observe(map[string]*cluster.Group{"steady": steady(), "busy": busy("Stable", cm("a", -1, 0), cm("b", -1, 1))})

	before := tr.Stats()
	held := map[string]GroupStats{}
	for name, st := range before {
		if len(st.History) != 1 || st.Durations.Count != 1 {
			t.Fatalf("%s: history %d, histogram count %d after one timed rebalance", name, len(st.History), st.Durations.Count)
		}
		held[name] = deepCopy(st)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
				for _, st := range before {
					walk(st)
				}
			}
		}
	})

	// steady is described identically (by new values) while busy goes
	// through another rebalance, and a third one between polls.
	observe(map[string]*cluster.Group{"steady": steady(), "busy": busy("PreparingRebalance", cm("a", -1), cm("b", -1), cm("d", -1))})
	observe(map[string]*cluster.Group{"steady": steady(), "busy": busy("Stable", cm("a", -1, 0), cm("d", -1, 1))})
	last := observe(map[string]*cluster.Group{"steady": steady(), "busy": busy("Stable", cm("a", -1, 0, 1))})
	after := tr.Stats()
	close(done)
	wg.Wait()

	for name, want := range held {
		if !reflect.DeepEqual(before[name], want) {
			t.Errorf("%s: statistics a reader held changed:\nnow  %+v\nwas  %+v", name, before[name], want)
		}
	}

	s0, s1 := before["steady"], after["steady"]
	if &s1.History[0] != &s0.History[0] || len(s1.History) != len(s0.History) {
		t.Errorf("unchanged group: History rebuilt (%p -> %p)", &s0.History[0], &s1.History[0])
	}
	if &s1.Durations.CumulativeCounts[0] != &s0.Durations.CumulativeCounts[0] || &s1.Durations.UpperBounds[0] != &s0.Durations.UpperBounds[0] {
		t.Errorf("unchanged group: histogram slices rebuilt")
	}
	if &s1.Members[0] != &last.Groups["steady"].Members[0] {
		t.Errorf("unchanged group: Members is not the latest observation's own slice")
	}
	if !s1.ObservedAt.Equal(now) || s1.Rebalances != s0.Rebalances {
		t.Errorf("unchanged group: observed at %v (want %v), rebalances %d -> %d", s1.ObservedAt, now, s0.Rebalances, s1.Rebalances)
	}

	b0, b1 := before["busy"], after["busy"]
	if len(b1.History) != 3 || &b1.History[0] == &b0.History[0] || b1.History[0].Ended != b0.History[0].Ended {
		t.Errorf("changed group: history %+v, want the old event then two new ones in a new slice", b1.History)
	}
	if b1.Durations.Count != 2 || &b1.Durations.CumulativeCounts[0] == &b0.Durations.CumulativeCounts[0] {
		t.Errorf("changed group: histogram count %d, counts shared with the old value: %v",
			b1.Durations.Count, &b1.Durations.CumulativeCounts[0] == &b0.Durations.CumulativeCounts[0])
	}
	if &b1.Durations.UpperBounds[0] != &s1.Durations.UpperBounds[0] {
		t.Errorf("bucket bounds are not shared between groups")
	}
}

// TestObserveOfUnchangedGroupsAllocatesNothing: a poll in which no group
// changed costs no allocation in Observe, however many groups there are.
func TestObserveOfUnchangedGroupsAllocatesNothing(t *testing.T) {
	const groups, runs = 200, 20
	polls := make([]*cluster.GroupsObservation, runs+3)
	for i := range polls {
		polls[i] = &cluster.GroupsObservation{Time: t0.Add(time.Duration(i) * 2 * time.Second), Groups: benchGroups(groups, 5)}
	}
	// A KIP-848 group among them takes the epoch source's path too.
	for _, obs := range polls {
		obs.Groups["kip848"] = kip848("Stable", 7, 7, settled848("a", 7, 0, 1), settled848("b", 7, 2))
	}
	tr := NewTracker(Options{HistorySize: testHistory})
	tr.Observe(polls[0])
	tr.Observe(polls[1])
	next := 2
	allocs := testing.AllocsPerRun(runs, func() {
		tr.Observe(polls[next])
		next++
	})
	if allocs != 0 {
		t.Errorf("Observe of %d unchanged groups: %v allocations, want 0", groups+1, allocs)
	}
	if st := tr.Stats(); len(st) != groups+1 || st["group-00000"].Generation != 42 || st["kip848"].Generation != 7 {
		t.Errorf("%d groups, generations %d and %d", len(st), st["group-00000"].Generation, st["kip848"].Generation)
	}
}

// TestRejoinIsReportedInTheEvent: a static member back under a new member
// ID during a rebalance is listed as rejoined, not as a join and a leave.
func TestRejoinIsReportedInTheEvent(t *testing.T) {
	tr := NewTracker(Options{HistorySize: testHistory})
	steps := []*cluster.Group{
		classic("Stable", static(cm("a1", -1, 0), "i-a"), cm("b", -1, 1)),
		classic("PreparingRebalance", static(cm("a2", -1), "i-a"), cm("b", -1), cm("c", -1)),
		classic("Stable", static(cm("a2", -1, 0), "i-a"), cm("b", -1, 1), cm("c", -1)),
	}
	var events []Event
	for i, g := range steps {
		g.Name = groupName
		events = append(events, tr.Observe(&cluster.GroupsObservation{Time: t0.Add(time.Duration(i) * time.Second), Groups: map[string]*cluster.Group{groupName: g}})...)
	}
	st := tr.Stats()[groupName]
	if st.MemberJoins != 1 || st.MemberLeaves != 0 || st.Rebalances != 1 || len(st.History) != 1 {
		t.Fatalf("joins %d leaves %d rebalances %d history %d, want 1/0/1/1", st.MemberJoins, st.MemberLeaves, st.Rebalances, len(st.History))
	}
	e := st.History[0]
	if e.RejoinedCount != 1 || len(e.Rejoined) != 1 || e.Rejoined[0].MemberID != "a2" || e.Rejoined[0].InstanceID != "i-a" ||
		e.JoinedCount != 1 || e.Joined[0].MemberID != "c" || e.LeftCount != 0 {
		t.Errorf("event = %+v", e)
	}
	if len(events) != 2 || events[1].RejoinedCount != 1 {
		t.Errorf("events returned = %+v", events)
	}
}
