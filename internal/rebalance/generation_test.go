package rebalance

import (
	"math"
	"testing"
	"time"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/cluster"
)

// genRun feeds one group's observations two seconds apart and returns
// the statistics after each.
type genRun struct {
	t   *testing.T
	tr  *Tracker
	now time.Time
}

func newGenRun(t *testing.T, opts Options) *genRun {
	opts.HistorySize = testHistory
	return &genRun{t: t, tr: NewTracker(opts), now: t0}
}

func (r *genRun) observe(g *cluster.Group) GroupStats {
	r.t.Helper()
	r.now = r.now.Add(2 * time.Second)
	g.Name = groupName
	r.tr.Observe(&cluster.GroupsObservation{Time: r.now, Groups: map[string]*cluster.Group{groupName: g}})
	st, ok := r.tr.Stats()[groupName]
	if !ok {
		r.t.Fatalf("group missing from Stats")
	}
	return st
}

func (r *genRun) expect(step string, st GroupStats, rebalances uint64, generation int32) {
	r.t.Helper()
	if st.Rebalances != rebalances {
		r.t.Errorf("%s: rebalances = %d, want %d", step, st.Rebalances, rebalances)
	}
	if !st.GenerationKnown || st.Generation != generation {
		r.t.Errorf("%s: generation %d (known %v, %q), want %d", step, st.Generation, st.GenerationKnown, st.GenerationSource, generation)
	}
	var inHistory uint64
	for _, e := range st.History {
		inHistory += e.Rebalances
	}
	if inHistory != st.Rebalances {
		r.t.Errorf("%s: history accounts for %d rebalances, counter says %d", step, inHistory, st.Rebalances)
	}
}

// An exact source that lags behind what describe output already showed
// (say one still catching up on a log) reads below the floor; that
// reading counts nothing, and the next one counts only what is new.
func TestExactSourceReadingBelowFloorDoesNotRecount(t *testing.T) {
	exact := fixedSource{name: "exact", gens: map[string]int32{groupName: 10}}
	r := newGenRun(t, Options{Sources: []GenerationSource{exact}})
	r.expect("baseline", r.observe(classic("Stable", cm("a", -1, 0))), 0, 10)
	delete(exact.gens, groupName)
	r.observe(classic("PreparingRebalance", cm("a", -1), cm("b", -1)))
	if st := r.observe(classic("Stable", cm("a", -1, 0), cm("b", -1, 1))); st.Rebalances != 1 {
		t.Fatalf("fallback counted %d, want 1", st.Rebalances)
	}
	exact.gens[groupName] = 10 // lagging: generation 11 is already counted
	r.expect("lagging reading", r.observe(classic("Stable", cm("a", -1, 0), cm("b", -1, 1))), 1, 11)
	exact.gens[groupName] = 12
	r.expect("caught up", r.observe(classic("Stable", cm("a", -1, 0), cm("b", -1, 1))), 2, 12)
}

// Issue 11: a member that puts a forged generation in its KIP-792
// metadata must not move the counter by more than the other members'
// claims corroborate, nor make the exported generation its own.
func TestForgedMemberGenerationIsBounded(t *testing.T) {
	const forged = 2147483000
	r := newGenRun(t, Options{})
	r.expect("baseline", r.observe(classic("Stable", cm("a", 4, 0), cm("b", 4, 1))), 0, 5)
	// f joins carrying a forged generation: one real rebalance.
	r.expect("forger joins", r.observe(classic("Stable", cm("a", 5, 0), cm("b", 5, 1), cm("f", forged))), 1, 6)
	r.expect("nothing happens", r.observe(classic("Stable", cm("a", 5, 0), cm("b", 5, 1), cm("f", forged))), 1, 6)
	// c joins; the forger, which rejoined too, now claims even more.
	r.expect("c joins", r.observe(classic("Stable", cm("a", 6, 0), cm("b", 6, 1), cm("f", forged+500), cm("c", -1))), 2, 7)
	// A second forger joins, with the generation the group could never
	// reach.
	r.expect("second forger", r.observe(classic("Stable", cm("a", 7, 0), cm("b", 7, 1), cm("f", forged+500), cm("c", 7), cm("g", math.MaxInt32-1))), 3, 8)
	// Both forgers leave: the reading drops far below the last one, but
	// the members seen at both readings moved forward, so the group was
	// not recreated: one rebalance.
	st := r.observe(classic("Stable", cm("a", 8, 0), cm("b", 8, 1), cm("c", 8)))
	r.expect("forgers leave", st, 4, 9)
	for _, e := range st.History {
		if e.GenerationFrom > 9 || e.GenerationTo > 9 {
			t.Errorf("event carries a forged generation: %+v", e)
		}
	}
	// From here on the group counts as before.
	r.expect("several generations between polls", r.observe(classic("Stable", cm("a", 10, 0), cm("b", 10, 1), cm("c", 10))), 6, 11)
}

// A forger alone in a group whose members all arrived since the latest
// reading has nobody to be checked against; its claim is then believed
// as any uncorroborated reading is, which the package documentation
// states. This pins that limit rather than hiding it.
func TestForgedGenerationWithoutWitnessesIsBelieved(t *testing.T) {
	r := newGenRun(t, Options{})
	r.expect("baseline", r.observe(classic("Stable", cm("a", 4, 0))), 0, 5)
	st := r.observe(classic("Stable", cm("f", 99, 0)))
	r.expect("every member replaced", st, 95, 100)
}

// scaledSource is an exact source of classic generations, as the
// __consumer_offsets reader is: on KIP-792's scale.
type scaledSource struct{ fixedSource }

func (scaledSource) Scale() string { return ScaleClassicGeneration }

// When the exact source of classic generations and KIP-792 metadata take
// over from each other, the count carries on: a hint is checked against
// the claims recorded at the exact reading, and an exact reading that
// trails what the hint counted counts nothing.
func TestSourcesOnOneScaleCarryTheCountOn(t *testing.T) {
	exact := scaledSource{fixedSource{name: "log", gens: map[string]int32{groupName: 5}}}
	r := newGenRun(t, Options{Sources: []GenerationSource{exact, KIP792Metadata{}}})
	r.expect("baseline from the log", r.observe(classic("Stable", cm("a", 4, 0), cm("b", 4, 1))), 0, 5)
	// The log falls behind; members report generation 6 after a rebalance.
	delete(exact.gens, groupName)
	r.expect("KIP-792 takes over", r.observe(classic("Stable", cm("a", 5, 0), cm("b", 5, 1))), 1, 6)
	// The log is back, still at 6's predecessor: it trails, counts nothing.
	exact.gens[groupName] = 5
	r.expect("log trails", r.observe(classic("Stable", cm("a", 5, 0), cm("b", 5, 1))), 1, 6)
	exact.gens[groupName] = 8
	r.expect("log ahead", r.observe(classic("Stable", cm("a", 7, 0), cm("b", 7, 1))), 3, 8)
	// A forger joins while the log is behind: the survivors moved by one.
	delete(exact.gens, groupName)
	r.expect("forger under KIP-792", r.observe(classic("Stable", cm("a", 8, 0), cm("b", 8, 1), cm("f", 2147483000))), 4, 9)
	exact.gens[groupName] = 9
	r.expect("log agrees", r.observe(classic("Stable", cm("a", 8, 0), cm("b", 8, 1), cm("f", 2147483000))), 4, 9)
}
