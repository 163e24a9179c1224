package rebalance_test

import (
	"slices"
	"sync"
	"testing"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/store"
)

// roster is the members a test started for one group: the live ones,
// which a settled group must consist of, and every one, to stop at the end.
type roster struct {
	mu   sync.Mutex
	live []member
	all  []member
}

func newRoster(t *testing.T) *roster {
	r := &roster{}
	// Registered after the cluster and exporter, so members stop first.
	t.Cleanup(func() {
		r.mu.Lock()
		all := slices.Clone(r.all)
		r.mu.Unlock()
		var wg sync.WaitGroup
		for _, m := range all {
			wg.Add(1)
			go func() {
				defer wg.Done()
				m.leave()
			}()
		}
		wg.Wait()
	})
	return r
}

func (r *roster) add(m member) member {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.live = append(r.live, m)
	r.all = append(r.all, m)
	return m
}

// drop takes m out of the live members; it keeps running if it was not
// stopped (a stalled member the coordinator is expected to evict).
func (r *roster) drop(m member) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.live = slices.DeleteFunc(r.live, func(x member) bool { return x == m })
}

func (r *roster) members() []member {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.live)
}

// baseline is a settled point: the ground truth generation and the
// exported rebalance count there. Later steps compare deltas from it, so
// the rebalances of a group's formation, which the tracker cannot count
// before it has a first observation, are out of the comparison.
type baseline struct {
	gen   int32
	count uint64
}

func baselineOf(t *testing.T, snap *store.Snapshot, group string, s settled) baseline {
	t.Helper()
	return baseline{gen: s.gen, count: stats(t, snap, group).Rebalances}
}

// checkExact asserts what a group with an exact generation source must
// export once settled: the clients' generation, under the expected source,
// as the statistics and as kafka_consumergroup_generation_id; a rebalance
// count that moved by exactly the generations the clients moved since the
// baseline; and no rebalance in progress. The clients (tr) must have seen
// that generation, unless the group is empty.
func checkExact(t *testing.T, step, group, source string, s settled, snap *store.Snapshot, base baseline, tr *truth) (counted uint64) {
	t.Helper()
	st := stats(t, snap, group)
	m := scrape(t, snap, group)
	truthDelta := uint64(s.gen - base.gen)
	counted = st.Rebalances - base.count
	t.Logf("%s: ground truth generation %d (%+d since baseline), exported generation %d (%s, known %v), rebalances %+d",
		step, s.gen, truthDelta, st.Generation, st.GenerationSource, st.GenerationKnown, counted)
	if !s.empty && tr.highest() != s.gen {
		t.Errorf("%s: ground truth inconsistent: group at %d but clients saw up to %d", step, s.gen, tr.highest())
	}
	if !st.GenerationKnown || st.Generation != s.gen || st.GenerationSource != source {
		t.Errorf("%s: exported generation %d (known %v, source %q), want %d from %q",
			step, st.Generation, st.GenerationKnown, st.GenerationSource, s.gen, source)
	}
	if got, ok := m["kafka_consumergroup_generation_id"]; !ok || got != float64(s.gen) {
		t.Errorf("%s: kafka_consumergroup_generation_id = %v (present %v), want %d", step, got, ok, s.gen)
	}
	if counted != truthDelta {
		t.Errorf("%s: rebalances counted since baseline = %d, clients moved %d generations", step, counted, truthDelta)
	}
	if got := m["kafka_consumergroup_rebalances_total"]; got != float64(st.Rebalances) {
		t.Errorf("%s: kafka_consumergroup_rebalances_total = %v, statistics say %d", step, got, st.Rebalances)
	}
	checkSettledGauges(t, step, st.Rebalancing, m)
	return counted
}

func checkSettledGauges(t *testing.T, step string, rebalancing bool, m map[string]float64) {
	t.Helper()
	if rebalancing || m["kafka_consumergroup_rebalancing"] != 0 || m["kafka_consumergroup_rebalance_in_progress_seconds"] != 0 {
		t.Errorf("%s: settled group exported as rebalancing (%v, gauge %v, in progress %vs)", step, rebalancing,
			m["kafka_consumergroup_rebalancing"], m["kafka_consumergroup_rebalance_in_progress_seconds"])
	}
}

// checkBounded asserts what a group must export once settled when no
// source knows its generation (members that send none, or a KIP-792 group
// whose members all joined fresh or that is Empty): a rebalance count, since
// the baseline, of at least atLeast (the changes the poller was shown) and
// at most the generations the coordinator moved (more would be
// over-counting), and no rebalance in progress. noGeneration says the group
// never sends one, so none may be exported; otherwise an exported
// generation must be the right one.
func checkBounded(t *testing.T, step, group string, s settled, snap *store.Snapshot, base baseline, atLeast uint64, tr *truth, noGeneration bool) (counted uint64) {
	t.Helper()
	st := stats(t, snap, group)
	m := scrape(t, snap, group)
	truthDelta := uint64(s.gen - base.gen)
	counted = st.Rebalances - base.count
	t.Logf("%s: ground truth generation %d (%+d since baseline), exporter counted %+d (at least %d expected); exported generation %d (%q, known %v)",
		step, s.gen, truthDelta, counted, atLeast, st.Generation, st.GenerationSource, st.GenerationKnown)
	if !s.empty && tr.highest() != s.gen {
		t.Errorf("%s: ground truth inconsistent: group at %d but clients saw up to %d", step, s.gen, tr.highest())
	}
	if counted > truthDelta {
		t.Errorf("%s: over-count: %d rebalances counted, the coordinator handed out %d generations", step, counted, truthDelta)
	}
	if counted < atLeast {
		t.Errorf("%s: under-count: %d rebalances counted, want at least %d for the membership changes the poller saw", step, counted, atLeast)
	}
	if got := m["kafka_consumergroup_rebalances_total"]; got != float64(st.Rebalances) {
		t.Errorf("%s: kafka_consumergroup_rebalances_total = %v, statistics say %d", step, got, st.Rebalances)
	}
	v, present := m["kafka_consumergroup_generation_id"]
	switch {
	case noGeneration && (st.GenerationKnown || present):
		t.Errorf("%s: generation %d exported (source %q, metric %v) for a group whose members send none", step, st.Generation, st.GenerationSource, v)
	case st.GenerationKnown && (st.Generation != s.gen || v != float64(s.gen)):
		t.Errorf("%s: exported generation %d (metric %v), want %d", step, st.Generation, v, s.gen)
	case st.GenerationKnown != present:
		t.Errorf("%s: generation known %v but metric present %v", step, st.GenerationKnown, present)
	}
	checkSettledGauges(t, step, st.Rebalancing, m)
	return counted
}
