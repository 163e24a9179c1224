package rebalance

import (
	"math"
	"sync"
	"testing"
	"time"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/cluster"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// testHistory is the history size of tests that read events back; the
// tracker has no default of its own.
const testHistory = 20

const topic = "orders"

func parts(ps ...int32) cluster.Assignment {
	if len(ps) == 0 {
		return nil
	}
	return cluster.Assignment{topic: ps}
}

// cm is a classic member carrying KIP-792 generation gen (-1: none).
func cm(id string, gen int32, ps ...int32) cluster.Member {
	return cluster.Member{MemberID: id, ClientID: "client-" + id, ClientHost: "/10.0.0." + id, Generation: gen, MemberEpoch: -1, Assignment: parts(ps...)}
}

// static makes m a static member with the given group.instance.id.
func static(m cluster.Member, instance string) cluster.Member {
	m.InstanceID = instance
	return m
}

func classic(state string, ms ...cluster.Member) *cluster.Group {
	return &cluster.Group{Type: cluster.GroupTypeClassic, ProtocolType: "consumer", State: state, Coordinator: 1, Members: ms}
}

// km is a KIP-848 member owning owned and targeted at target.
func km(id string, epoch int32, owned, target []int32) cluster.Member {
	return cluster.Member{MemberID: id, ClientID: "client-" + id, ClientHost: "/10.0.1." + id, Generation: -1, MemberEpoch: epoch,
		Assignment: parts(owned...), TargetAssignment: parts(target...)}
}

// settled848 is a KIP-848 member whose assignment reached its target.
func settled848(id string, epoch int32, ps ...int32) cluster.Member {
	return km(id, epoch, ps, ps)
}

func kip848(state string, groupEpoch, assignmentEpoch int32, ms ...cluster.Member) *cluster.Group {
	return &cluster.Group{Type: cluster.GroupTypeConsumer, ProtocolType: "consumer", State: state, Coordinator: 1,
		GroupEpoch: groupEpoch, AssignmentEpoch: assignmentEpoch, Members: ms}
}

func ps(p ...int32) []int32 { return p }

func gen(v int32) *int32 { return &v }

// step is one poll of group "g" in a sequence.
type step struct {
	after       time.Duration  // since the previous step; 0 means 2s
	group       *cluster.Group // nil: the group is absent from this poll
	rebalances  uint64         // expected cumulative count after this step
	rebalancing bool
	gen         *int32 // expected generation; -1 means unknown; nil: not checked
}

type trackerCase struct {
	name  string
	steps []step
	// Expected after the last step.
	joins, leaves, moves uint64
	durations            []time.Duration // observed into the histogram, in order
	source               string          // expected GenerationSource when the generation is known
}

const groupName = "g"

func runSteps(t *testing.T, tr *Tracker, steps []step) (GroupStats, time.Time) {
	t.Helper()
	now := t0
	var last GroupStats
	for i, s := range steps {
		if s.after == 0 {
			s.after = 2 * time.Second
		}
		if i > 0 {
			now = now.Add(s.after)
		}
		obs := &cluster.GroupsObservation{Time: now, Groups: map[string]*cluster.Group{}}
		if s.group != nil {
			s.group.Name = groupName
			obs.Groups[groupName] = s.group
		}
		tr.Observe(obs)
		st, ok := tr.Stats()[groupName]
		if s.group == nil {
			if ok {
				t.Fatalf("step %d: absent group still in Stats", i)
			}
			continue
		}
		if !ok {
			t.Fatalf("step %d: group missing from Stats", i)
		}
		if st.Rebalances != s.rebalances {
			t.Errorf("step %d (%s): Rebalances = %d, want %d", i, s.group.State, st.Rebalances, s.rebalances)
		}
		if st.Rebalancing != s.rebalancing {
			t.Errorf("step %d (%s): Rebalancing = %v, want %v", i, s.group.State, st.Rebalancing, s.rebalancing)
		}
		if st.Rebalancing && (st.RebalanceStarted.IsZero() || st.RebalanceStarted.After(now)) {
			t.Errorf("step %d: RebalanceStarted = %v with observation at %v", i, st.RebalanceStarted, now)
		}
		if !st.Rebalancing && !st.RebalanceStarted.IsZero() {
			t.Errorf("step %d: RebalanceStarted = %v while not rebalancing", i, st.RebalanceStarted)
		}
		if s.gen != nil {
			switch {
			case *s.gen < 0 && st.GenerationKnown:
				t.Errorf("step %d: generation %d (%s) known, want unknown", i, st.Generation, st.GenerationSource)
			case *s.gen >= 0 && (!st.GenerationKnown || st.Generation != *s.gen):
				t.Errorf("step %d: generation %d known=%v, want %d", i, st.Generation, st.GenerationKnown, *s.gen)
			}
		}
		if st.GenerationKnown == (st.GenerationSource == "") {
			t.Errorf("step %d: GenerationKnown=%v with source %q", i, st.GenerationKnown, st.GenerationSource)
		}
		last = st
	}
	return last, now
}

func TestTrackerSequences(t *testing.T) {
	cases := []trackerCase{
		{
			name: "first observation of a settled 848 group counts nothing",
			steps: []step{
				{group: kip848("Stable", 7, 7, settled848("a", 7, 0, 1)), gen: gen(7)},
				{group: kip848("Stable", 7, 7, settled848("a", 7, 0, 1)), gen: gen(7)},
			},
			source: SourceKIP848Epoch,
		},
		{
			name: "rebalance already running at first observation is neither counted nor timed",
			steps: []step{
				{group: classic("PreparingRebalance", cm("a", -1), cm("b", -1)), rebalancing: true},
				{group: classic("CompletingRebalance", cm("a", -1), cm("b", -1)), rebalancing: true},
				{group: classic("Stable", cm("a", -1, 0), cm("b", -1, 1)), gen: gen(-1)},
			},
		},
		{
			name: "848 epoch bump by one",
			steps: []step{
				{group: kip848("Stable", 5, 5, settled848("a", 5, 0, 1)), gen: gen(5)},
				{group: kip848("Stable", 6, 6, settled848("a", 6, 0), settled848("b", 6, 1)), rebalances: 1, gen: gen(6)},
			},
			joins: 1, moves: 1, source: SourceKIP848Epoch,
		},
		{
			name: "848 epoch bump by three between polls counts three",
			steps: []step{
				{group: kip848("Stable", 5, 5, settled848("a", 5, 0, 1)), gen: gen(5)},
				{group: kip848("Stable", 8, 8, settled848("a", 8, 0, 1)), rebalances: 3, gen: gen(8)},
			},
			source: SourceKIP848Epoch,
		},
		{
			name: "848 reconciling is one timed rebalance",
			steps: []step{
				{group: kip848("Stable", 5, 5, settled848("a", 5, 0, 1, 2, 3))},
				{group: kip848("Reconciling", 6, 6, km("a", 5, ps(0, 1, 2, 3), ps(0, 1)), km("b", 6, nil, ps(2, 3))), rebalances: 1, rebalancing: true, gen: gen(6)},
				{group: kip848("Reconciling", 6, 6, km("a", 6, ps(0, 1), ps(0, 1)), km("b", 6, nil, ps(2, 3))), rebalances: 1, rebalancing: true},
				{after: 3 * time.Second, group: kip848("Stable", 6, 6, settled848("a", 6, 0, 1), settled848("b", 6, 2, 3)), rebalances: 1, gen: gen(6)},
			},
			joins: 1, moves: 2, durations: []time.Duration{5 * time.Second}, source: SourceKIP848Epoch,
		},
		{
			name: "848 epoch bump during reconciliation adds to the same timed rebalance",
			steps: []step{
				{group: kip848("Stable", 5, 5, settled848("a", 5, 0, 1))},
				{group: kip848("Assigning", 6, 5, settled848("a", 5, 0, 1), km("b", 0, nil, nil)), rebalances: 1, rebalancing: true, gen: gen(6)},
				{group: kip848("Reconciling", 7, 7, km("a", 7, ps(0, 1), ps(0)), km("b", 7, nil, ps(1)), km("c", 7, nil, nil)), rebalances: 2, rebalancing: true},
				{group: kip848("Stable", 7, 7, settled848("a", 7, 0), settled848("b", 7, 1), settled848("c", 7)), rebalances: 2},
			},
			joins: 2, moves: 1, durations: []time.Duration{4 * time.Second}, source: SourceKIP848Epoch,
		},
		{
			name: "848 Stable state with members short of their target is rebalancing",
			steps: []step{
				{group: kip848("Stable", 5, 5, settled848("a", 5, 0, 1))},
				{group: kip848("Stable", 6, 6, km("a", 6, ps(0, 1), ps(0)), km("b", 6, nil, ps(1))), rebalances: 1, rebalancing: true},
				{group: kip848("Stable", 6, 6, settled848("a", 6, 0), settled848("b", 6, 1)), rebalances: 1},
			},
			joins: 1, moves: 1, durations: []time.Duration{2 * time.Second}, source: SourceKIP848Epoch,
		},
		{
			name: "848 assignment epoch lagging the group epoch is rebalancing",
			steps: []step{
				{group: kip848("Stable", 5, 5, settled848("a", 5, 0, 1))},
				{group: kip848("Stable", 6, 5, settled848("a", 5, 0, 1)), rebalances: 1, rebalancing: true},
				{group: kip848("Stable", 6, 6, settled848("a", 6, 0, 1)), rebalances: 1},
			},
			durations: []time.Duration{2 * time.Second}, source: SourceKIP848Epoch,
		},
		{
			name: "848 last member leaving bumps the epoch once",
			steps: []step{
				{group: kip848("Stable", 5, 5, settled848("a", 5, 0, 1))},
				{group: kip848("Empty", 6, 6), rebalances: 1, gen: gen(6)},
				{group: kip848("Empty", 6, 6), rebalances: 1, gen: gen(6)},
			},
			leaves: 1, source: SourceKIP848Epoch,
		},
		{
			name: "kip792 member joins between polls",
			steps: []step{
				{group: classic("Stable", cm("a", 4, 0, 1), cm("b", 4, 2, 3)), gen: gen(5)},
				{group: classic("Stable", cm("a", 5, 0), cm("b", 5, 2, 3), cm("c", -1, 1)), rebalances: 1, gen: gen(6)},
			},
			joins: 1, moves: 1, source: SourceKIP792Metadata,
		},
		{
			name: "kip792 member leaves between polls",
			steps: []step{
				{group: classic("Stable", cm("a", 4, 0), cm("b", 4, 1), cm("c", 4, 2)), gen: gen(5)},
				{group: classic("Stable", cm("a", 5, 0, 2), cm("b", 5, 1)), rebalances: 1, gen: gen(6)},
			},
			leaves: 1, moves: 1, source: SourceKIP792Metadata,
		},
		{
			name: "kip792 several generations between polls",
			steps: []step{
				{group: classic("Stable", cm("a", 4, 0, 1)), gen: gen(5)},
				{group: classic("Stable", cm("a", 7, 0, 1)), rebalances: 3, gen: gen(8)},
			},
			source: SourceKIP792Metadata,
		},
		{
			name: "kip792 member death seen rebalancing is counted once and timed",
			steps: []step{
				{group: classic("Stable", cm("a", 4, 0), cm("b", 4, 1)), gen: gen(5)},
				{group: classic("PreparingRebalance", cm("a", -1), cm("b", -1)), rebalances: 1, rebalancing: true, gen: gen(5)},
				{group: classic("PreparingRebalance", cm("a", -1)), rebalances: 1, rebalancing: true, gen: gen(5)},
				{group: classic("CompletingRebalance", cm("a", -1)), rebalances: 1, rebalancing: true, gen: gen(5)},
				{group: classic("Stable", cm("a", 5, 0, 1)), rebalances: 1, gen: gen(6)},
			},
			leaves: 1, moves: 1, durations: []time.Duration{6 * time.Second}, source: SourceKIP792Metadata,
		},
		{
			name: "kip792 all members new gives no generation, later delta does not double count",
			steps: []step{
				{group: classic("Stable", cm("a", 4, 0, 1)), gen: gen(5)},
				// a was replaced: nobody survived, so nothing tells the generation.
				{group: classic("Stable", cm("x", -1, 0), cm("y", -1, 1)), rebalances: 1, gen: gen(-1)},
				// Another rebalance (z joined) completes between polls: x and y
				// survived from generation 6, so 7 is known; 5 -> 7 is two, one of
				// which was already counted.
				{group: classic("Stable", cm("x", 6, 0), cm("y", 6, 1), cm("z", -1)), rebalances: 2, gen: gen(7)},
			},
			joins: 3, leaves: 1, moves: 2, source: SourceKIP792Metadata,
		},
		{
			name: "generation source appearing mid-life is authoritative without double counting",
			steps: []step{
				{group: classic("Stable", cm("x", -1, 0), cm("y", -1, 1)), gen: gen(-1)},
				{group: classic("PreparingRebalance", cm("x", -1), cm("y", -1)), rebalances: 1, rebalancing: true, gen: gen(-1)},
				{group: classic("Stable", cm("x", 5, 0), cm("y", 5, 1), cm("z", -1)), rebalances: 1, gen: gen(6)},
				{group: classic("Stable", cm("x", 6, 0), cm("y", 6, 1), cm("z", 6)), rebalances: 2, gen: gen(7)},
			},
			joins: 1, durations: []time.Duration{2 * time.Second}, source: SourceKIP792Metadata,
		},
		{
			name: "classic without generation: rebalancing stretch over several polls is one",
			steps: []step{
				{group: classic("Stable", cm("a", -1, 0), cm("b", -1, 1))},
				{group: classic("PreparingRebalance", cm("a", -1), cm("b", -1)), rebalances: 1, rebalancing: true},
				{group: classic("PreparingRebalance", cm("a", -1), cm("b", -1)), rebalances: 1, rebalancing: true},
				{group: classic("PreparingRebalance", cm("a", -1), cm("b", -1)), rebalances: 1, rebalancing: true},
				{group: classic("CompletingRebalance", cm("a", -1), cm("b", -1)), rebalances: 1, rebalancing: true},
				{group: classic("Stable", cm("a", -1, 1), cm("b", -1, 0)), rebalances: 1, gen: gen(-1)},
			},
			moves: 2, durations: []time.Duration{8 * time.Second},
		},
		{
			name: "classic without generation: membership change between settled polls is one",
			steps: []step{
				{group: classic("Stable", cm("a", -1, 0, 1))},
				{group: classic("Stable", cm("a", -1, 0), cm("b", -1, 1)), rebalances: 1},
				{group: classic("Stable", cm("a", -1, 0), cm("b", -1, 1)), rebalances: 1},
			},
			joins: 1, moves: 1,
		},
		{
			name: "classic without generation: assignment change alone is one",
			steps: []step{
				{group: classic("Stable", cm("a", -1, 0), cm("b", -1, 1))},
				{group: classic("Stable", cm("a", -1, 1), cm("b", -1, 0)), rebalances: 1},
			},
			moves: 2,
		},
		{
			name: "classic without generation: stretch ending with changed membership is one, not two",
			steps: []step{
				{group: classic("Stable", cm("a", -1, 0), cm("b", -1, 1))},
				{group: classic("PreparingRebalance", cm("a", -1), cm("b", -1)), rebalances: 1, rebalancing: true},
				{group: classic("Stable", cm("a", -1, 0, 1), cm("c", -1, 2)), rebalances: 1},
			},
			joins: 1, leaves: 1, moves: 1, durations: []time.Duration{2 * time.Second},
		},
		{
			name: "classic without generation: no change counts nothing",
			steps: []step{
				{group: classic("Stable", cm("a", -1, 0), cm("b", -1, 1))},
				{group: classic("Stable", cm("b", -1, 1), cm("a", -1, 0))},
				{group: classic("Stable", cm("a", -1, 0), cm("b", -1, 1))},
			},
		},
		{
			name: "classic group going Empty and back counts both generation bumps",
			steps: []step{
				{group: classic("Stable", cm("a", -1, 0, 1))},
				{group: classic("Empty"), rebalances: 1},
				{group: classic("Empty"), rebalances: 1},
				{group: classic("Stable", cm("b", -1, 0, 1)), rebalances: 2},
			},
			// b took over both of a's partitions.
			joins: 1, leaves: 1, moves: 2,
		},
		{
			name: "static member restarting under a new member ID is a rejoin, not a rebalance",
			steps: []step{
				{group: classic("Stable", static(cm("a1", -1, 0), "i-a"), cm("b", -1, 1))},
				{group: classic("Stable", static(cm("a2", -1, 0), "i-a"), cm("b", -1, 1))},
			},
		},
		{
			name: "Unknown and Dead observations are skipped",
			steps: []step{
				{group: classic("Stable", cm("a", 4, 0), cm("b", 4, 1)), gen: gen(5)},
				{group: classic("Unknown")},
				{group: classic("Dead")},
				{group: classic("Stable", cm("a", 4, 0), cm("b", 4, 1)), gen: gen(5)},
			},
			source: SourceKIP792Metadata,
		},
		{
			name: "group missing from one poll keeps its counters",
			steps: []step{
				{group: kip848("Stable", 5, 5, settled848("a", 5, 0))},
				{group: kip848("Stable", 6, 6, settled848("a", 6, 0)), rebalances: 1},
				{group: nil},
				{group: kip848("Stable", 8, 8, settled848("b", 8, 0)), rebalances: 3, gen: gen(8)},
			},
			source: SourceKIP848Epoch,
			joins:  1, leaves: 1, moves: 1,
		},
		{
			name: "group disappearing for MissingPolls polls starts fresh",
			steps: []step{
				{group: kip848("Stable", 5, 5, settled848("a", 5, 0))},
				{group: kip848("Stable", 6, 6, settled848("a", 6, 0)), rebalances: 1},
				{group: nil},
				{group: nil},
				{group: nil},
				{group: kip848("Stable", 9, 9, settled848("b", 9, 0)), rebalances: 0, gen: gen(9)},
				{group: kip848("Stable", 10, 10, settled848("b", 10, 0)), rebalances: 1, gen: gen(10)},
			},
			source: SourceKIP848Epoch,
		},
		{
			name: "848 epoch going backwards resets the baseline without counting",
			steps: []step{
				{group: kip848("Stable", 9, 9, settled848("a", 9, 0))},
				{group: kip848("Stable", 2, 2, settled848("a", 2, 0)), rebalances: 0, gen: gen(2)},
				{group: kip848("Stable", 3, 3, settled848("a", 3, 0)), rebalances: 1, gen: gen(3)},
			},
			source: SourceKIP848Epoch,
		},
		{
			// Issue 12: in kfake storms a cooperative-sticky franz-go group
			// was counted 24 against 23 generations. franz-go keeps the
			// generation it held when it rejoins under a new member ID after
			// being removed, so a generation whose only non-fresh member is
			// such a rejoiner reads low: below what the fallback has already
			// counted. Taken as a new baseline, it made the next delta count
			// again what the fallback had counted.
			name: "kip792 stale reading below what the fallback counted does not recount",
			steps: []step{
				{group: classic("Stable", cm("a", 4, 0), cm("b", 4, 1)), gen: gen(5)},
				// b froze, a crashed, c and d joined.
				{group: classic("PreparingRebalance", cm("a", -1), cm("b", -1), cm("c", -1), cm("d", -1)), rebalances: 1, rebalancing: true, gen: gen(5)},
				// Generation 6 has no survivor: nobody carries a generation.
				{group: classic("Stable", cm("c", -1, 0), cm("d", -1, 1)), rebalances: 1, gen: gen(-1)},
				// b, removed from generation 6, rejoins as b2.
				{group: classic("PreparingRebalance", cm("c", -1), cm("d", -1), cm("b2", -1)), rebalances: 2, rebalancing: true, gen: gen(-1)},
				// Generation 7: c and d gone, e new; b2 still carries 5, the
				// generation it held when it was removed, so max+1 says 6.
				{group: classic("Stable", cm("b2", 5, 0), cm("e", -1, 1)), rebalances: 2, gen: gen(7)},
				// Generation 8 (f joined): b2 and e survived 7.
				{group: classic("Stable", cm("b2", 7, 0), cm("e", 7, 1), cm("f", -1)), rebalances: 3, gen: gen(8)},
			},
			joins: 5, leaves: 4, moves: 4, durations: []time.Duration{2 * time.Second, 2 * time.Second}, source: SourceKIP792Metadata,
		},
		{
			name: "kip792 generation going backwards resets the baseline without counting",
			steps: []step{
				{group: classic("Stable", cm("a", 9, 0)), gen: gen(10)},
				{group: classic("Stable", cm("a", 1, 0)), rebalances: 0, gen: gen(2)},
				{group: classic("Stable", cm("a", 3, 0)), rebalances: 2, gen: gen(4)},
			},
			source: SourceKIP792Metadata,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, _ := runSteps(t, NewTracker(Options{HistorySize: testHistory}), tc.steps)
			if st.MemberJoins != tc.joins || st.MemberLeaves != tc.leaves {
				t.Errorf("joins/leaves = %d/%d, want %d/%d", st.MemberJoins, st.MemberLeaves, tc.joins, tc.leaves)
			}
			if st.PartitionOwnerChanges != tc.moves {
				t.Errorf("PartitionOwnerChanges = %d, want %d", st.PartitionOwnerChanges, tc.moves)
			}
			var timed []time.Duration
			for _, e := range st.History {
				if e.DurationKnown {
					timed = append(timed, e.Duration)
				}
			}
			if len(timed) != len(tc.durations) || st.Durations.Count != uint64(len(tc.durations)) {
				t.Fatalf("timed events %v, histogram count %d, want %v", timed, st.Durations.Count, tc.durations)
			}
			var sum float64
			for i, d := range tc.durations {
				if timed[i] != d {
					t.Errorf("duration %d = %v, want %v", i, timed[i], d)
				}
				sum += d.Seconds()
			}
			if math.Abs(st.Durations.Sum-sum) > 1e-9 {
				t.Errorf("histogram sum = %v, want %v", st.Durations.Sum, sum)
			}
			if st.GenerationKnown && st.GenerationSource != tc.source {
				t.Errorf("GenerationSource = %q, want %q", st.GenerationSource, tc.source)
			}
			var inHistory uint64
			for _, e := range st.History {
				inHistory += e.Rebalances
			}
			if inHistory != st.Rebalances {
				t.Errorf("history accounts for %d rebalances, counter says %d", inHistory, st.Rebalances)
			}
		})
	}
}

func TestEventsOfATimedRebalance(t *testing.T) {
	tr := NewTracker(Options{HistorySize: testHistory})
	observe := func(at time.Duration, g *cluster.Group) []Event {
		g.Name = groupName
		return tr.Observe(&cluster.GroupsObservation{Time: t0.Add(at), Groups: map[string]*cluster.Group{groupName: g}})
	}
	if ev := observe(0, classic("Stable", cm("a", 4, 0), cm("b", 4, 1))); len(ev) != 0 {
		t.Fatalf("first observation produced events %+v", ev)
	}
	started := observe(2*time.Second, classic("PreparingRebalance", cm("a", -1), cm("b", -1), cm("c", -1)))
	if len(started) != 1 || !started[0].InProgress || !started[0].Started.Equal(t0.Add(2*time.Second)) ||
		started[0].Rebalances != 1 || started[0].Detection != DetectState || started[0].GenerationFrom != 5 {
		t.Fatalf("start events = %+v", started)
	}
	if ev := observe(4*time.Second, classic("CompletingRebalance", cm("a", -1), cm("b", -1), cm("c", -1))); len(ev) != 0 {
		t.Fatalf("mid-rebalance events %+v", ev)
	}
	ended := observe(7*time.Second, classic("Stable", cm("a", 5, 0), cm("b", 5), cm("c", -1, 1)))
	if len(ended) != 1 {
		t.Fatalf("end events = %+v", ended)
	}
	e := ended[0]
	if e.InProgress || !e.DurationKnown || e.Duration != 5*time.Second || !e.Ended.Equal(t0.Add(7*time.Second)) {
		t.Errorf("end event timing = %+v", e)
	}
	if e.Rebalances != 1 || e.GenerationFrom != 5 || e.GenerationTo != 6 || e.GenerationSource != SourceKIP792Metadata {
		t.Errorf("end event generations = %+v", e)
	}
	if e.JoinedCount != 1 || len(e.Joined) != 1 || e.Joined[0] != (MemberRef{MemberID: "c", ClientID: "client-c", ClientHost: "/10.0.0.c"}) {
		t.Errorf("end event joined = %+v", e.Joined)
	}
	if e.PartitionsMoved != 1 {
		t.Errorf("PartitionsMoved = %d, want 1 (partition 1: b -> c)", e.PartitionsMoved)
	}
	st := tr.Stats()[groupName]
	if !st.LastRebalance.Equal(t0.Add(7 * time.Second)) {
		t.Errorf("LastRebalance = %v", st.LastRebalance)
	}
	if len(st.History) != 1 || st.History[0].Duration != e.Duration {
		t.Errorf("History = %+v", st.History)
	}
}

func TestInProgressDurationFollowsObservationClock(t *testing.T) {
	tr := NewTracker(Options{})
	g := func(state string) map[string]*cluster.Group {
		return map[string]*cluster.Group{groupName: classic(state, cm("a", -1))}
	}
	tr.Observe(&cluster.GroupsObservation{Time: t0, Groups: g("Stable")})
	tr.Observe(&cluster.GroupsObservation{Time: t0.Add(2 * time.Second), Groups: g("PreparingRebalance")})
	tr.Observe(&cluster.GroupsObservation{Time: t0.Add(9 * time.Second), Groups: g("PreparingRebalance")})
	st := tr.Stats()[groupName]
	if got := st.RebalanceInProgress(); got != 7*time.Second {
		t.Errorf("RebalanceInProgress = %v, want 7s", got)
	}
	// An observation from the past is ignored rather than rewinding the clock.
	if ev := tr.Observe(&cluster.GroupsObservation{Time: t0.Add(time.Second), Groups: g("Stable")}); ev != nil {
		t.Errorf("stale observation produced events %+v", ev)
	}
	st = tr.Stats()[groupName]
	if !st.Rebalancing || !st.ObservedAt.Equal(t0.Add(9*time.Second)) {
		t.Errorf("stale observation was applied: rebalancing=%v observed at %v", st.Rebalancing, st.ObservedAt)
	}
}

func TestHistoryIsBounded(t *testing.T) {
	tr := NewTracker(Options{HistorySize: 3})
	for i := int32(0); i < 10; i++ {
		g := kip848("Stable", 10+i, 10+i, settled848("a", 10+i, 0))
		tr.Observe(&cluster.GroupsObservation{Time: t0.Add(time.Duration(i) * time.Second), Groups: map[string]*cluster.Group{groupName: g}})
	}
	st := tr.Stats()[groupName]
	if st.Rebalances != 9 {
		t.Fatalf("Rebalances = %d, want 9", st.Rebalances)
	}
	if len(st.History) != 3 {
		t.Fatalf("len(History) = %d, want 3", len(st.History))
	}
	for i, want := range []int32{17, 18, 19} {
		if e := st.History[i]; e.GenerationTo != want || e.Detection != DetectEpoch || e.DurationKnown {
			t.Errorf("History[%d] = %+v, want epoch event to %d", i, e, want)
		}
	}

	// The size is taken as given: 0 keeps no history (the configuration,
	// not the tracker, has a default), and so does a negative size.
	for _, size := range []int{0, -1} {
		none := NewTracker(Options{HistorySize: size})
		none.Observe(&cluster.GroupsObservation{Time: t0, Groups: map[string]*cluster.Group{groupName: kip848("Stable", 1, 1)}})
		none.Observe(&cluster.GroupsObservation{Time: t0, Groups: map[string]*cluster.Group{groupName: kip848("Stable", 2, 2)}})
		if st := none.Stats()[groupName]; st.Rebalances != 1 || len(st.History) != 0 {
			t.Errorf("HistorySize %d: rebalances %d, history %+v", size, st.Rebalances, st.History)
		}
	}
}

func TestDurationsLandInTheirBuckets(t *testing.T) {
	tr := NewTracker(Options{})
	now := t0
	observe := func(state string) {
		tr.Observe(&cluster.GroupsObservation{Time: now, Groups: map[string]*cluster.Group{groupName: classic(state, cm("a", -1, 0))}})
	}
	observe("Stable")
	lengths := []time.Duration{200 * time.Millisecond, 3 * time.Second, 45 * time.Second, 2000 * time.Second, 5 * time.Second}
	for _, d := range lengths {
		now = now.Add(time.Second)
		observe("PreparingRebalance")
		now = now.Add(d)
		observe("Stable")
	}
	h := tr.Stats()[groupName].Durations
	want := map[float64]uint64{0.25: 1, 0.5: 1, 1: 1, 2: 1, 5: 3, 10: 3, 15: 3, 30: 3, 60: 4, 120: 4, 300: 4, 600: 4, 1800: 4}
	if len(h.UpperBounds) != len(DurationBuckets) {
		t.Fatalf("UpperBounds = %v", h.UpperBounds)
	}
	for b, n := range h.BucketMap() {
		if want[b] != n {
			t.Errorf("bucket le=%v: %d, want %d", b, n, want[b])
		}
	}
	if h.Count != 5 || math.Abs(h.Sum-2053.2) > 1e-9 {
		t.Errorf("count %d sum %v, want 5 and 2053.2", h.Count, h.Sum)
	}
	if st := tr.Stats()[groupName]; st.Rebalances != 5 {
		t.Errorf("Rebalances = %d, want 5", st.Rebalances)
	}
}

func TestSourcesArePrioritisedAndPluggable(t *testing.T) {
	exact := fixedSource{name: "consumer_offsets", gens: map[string]int32{groupName: 41}}
	tr := NewTracker(Options{Sources: append([]GenerationSource{exact}, DefaultSources()...)})
	observe := func(at time.Duration, g *cluster.Group) {
		g.Name = groupName
		tr.Observe(&cluster.GroupsObservation{Time: t0.Add(at), Groups: map[string]*cluster.Group{groupName: g}})
	}
	observe(0, classic("Stable", cm("a", 4, 0)))
	st := tr.Stats()[groupName]
	if st.Generation != 41 || st.GenerationSource != "consumer_offsets" {
		t.Fatalf("generation %d from %q, want 41 from the first source", st.Generation, st.GenerationSource)
	}
	// The exact source also answers mid-rebalance, unlike KIP-792 metadata.
	exact.gens[groupName] = 42
	observe(2*time.Second, classic("PreparingRebalance", cm("a", -1), cm("b", -1)))
	exact.gens[groupName] = 43
	observe(4*time.Second, classic("Stable", cm("a", 5, 0), cm("b", -1)))
	st = tr.Stats()[groupName]
	if st.Rebalances != 2 || st.Generation != 43 {
		t.Errorf("rebalances %d generation %d, want 2 and 43", st.Rebalances, st.Generation)
	}
	// When it stops answering the next source takes over; values of
	// different sources are not compared, so the switch counts nothing.
	delete(exact.gens, groupName)
	observe(6*time.Second, classic("Stable", cm("a", 5, 0), cm("b", -1)))
	st = tr.Stats()[groupName]
	if st.Rebalances != 2 || st.Generation != 6 || st.GenerationSource != SourceKIP792Metadata {
		t.Errorf("after switch: rebalances %d generation %d from %q", st.Rebalances, st.Generation, st.GenerationSource)
	}

	off := NewTracker(Options{Sources: []GenerationSource{}})
	off.Observe(&cluster.GroupsObservation{Time: t0, Groups: map[string]*cluster.Group{groupName: kip848("Stable", 3, 3)}})
	if st := off.Stats()[groupName]; st.GenerationKnown {
		t.Errorf("no sources, yet generation %d from %q", st.Generation, st.GenerationSource)
	}
}

type fixedSource struct {
	name string
	gens map[string]int32
}

func (s fixedSource) Name() string { return s.name }

func (s fixedSource) Generation(g *cluster.Group) (int32, bool) {
	v, ok := s.gens[g.Name]
	return v, ok
}

func TestKIP792MetadataSource(t *testing.T) {
	var src KIP792Metadata
	cases := []struct {
		name string
		g    *cluster.Group
		want int32
		ok   bool
	}{
		{"survivors give max+1", classic("Stable", cm("a", 6), cm("b", 4), cm("c", -1)), 7, true},
		{"all members new", classic("Stable", cm("a", -1), cm("b", -1)), 0, false},
		{"no members", classic("Empty"), 0, false},
		{"not trusted while rebalancing", classic("CompletingRebalance", cm("a", 6)), 0, false},
		{"not for KIP-848 groups", kip848("Stable", 3, 3, cm("a", 6)), 0, false},
	}
	for _, c := range cases {
		got, ok := src.Generation(c.g)
		if got != c.want || ok != c.ok {
			t.Errorf("%s: got %d,%v want %d,%v", c.name, got, ok, c.want, c.ok)
		}
	}
}

func TestConcurrentObserveAndStats(t *testing.T) {
	tr := NewTracker(Options{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := int32(0); i < 200; i++ {
			g := kip848("Stable", i, i, settled848("a", i, i%4))
			tr.Observe(&cluster.GroupsObservation{Time: t0.Add(time.Duration(i) * time.Second), Groups: map[string]*cluster.Group{groupName: g}})
		}
	}()
	var last uint64
	for i := 0; i < 200; i++ {
		if st, ok := tr.Stats()[groupName]; ok {
			if st.Rebalances < last {
				t.Fatalf("Rebalances went from %d to %d", last, st.Rebalances)
			}
			last = st.Rebalances
		}
	}
	wg.Wait()
	if st := tr.Stats()[groupName]; st.Rebalances != 199 {
		t.Errorf("Rebalances = %d, want 199", st.Rebalances)
	}
}
