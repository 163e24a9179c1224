package rebalance_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/rebalance"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/testkit"
)

// TestRebalanceHeldOpen holds a rebalance open and watches the exporter's
// in-progress signals rise and fall. The group is eager (sarama, range):
// a new member makes everyone rejoin, and a member whose ConsumeClaim does
// not return cannot rejoin, although its heartbeats keep it in the group.
// The coordinator keeps the group in PreparingRebalance until the
// rebalance timeout drops that member.
func TestRebalanceHeldOpen(t *testing.T) {
	t.Parallel()
	const topic, group = "invoices", "held-open"
	// Members waiting in JoinGroup must outlive the hold: kfake expires
	// them at their session timeout even while they wait.
	const hold, session = 3 * time.Second, 6 * time.Second
	e := newEnv(t, topic)
	tr := newTruth()
	r := newRoster(t)
	start := func(id string, stuck *gate) member {
		return r.add(startSarama(t, e, saramaSpec{group: group, topic: topic, clientID: "held-" + id,
			version: sarama.V3_0_0_0, strategy: sarama.NewBalanceStrategyRange(), truth: tr,
			rebalanceTimeout: hold, sessionTimeout: session, stuckClaims: stuck}))
	}

	// a settles alone first: a stuck member that joins together with it
	// can get a generation of its own, block in its claims and never
	// rejoin, and the group then never settles (seen once on a loaded
	// machine: "members disagree on the generation (2, held-stuck has 1)").
	start("a", nil)
	e.settle(group, e.classicProbe(group, r.members(), tr))
	stuck := start("stuck", newGate())
	s, snap := e.settle(group, e.classicProbe(group, r.members(), tr))
	base := baselineOf(t, snap, group, s)
	before := stats(t, snap, group)

	start("b", nil)
	r.drop(stuck)
	triggered := time.Now()

	// Two observations of the same rebalance, the second later in it.
	var first rebalance.GroupStats
	testkit.Eventually(t, 10*time.Second, 25*time.Millisecond, "the held rebalance seen in progress", func() error {
		snap := e.exp.Store.Current()
		st, ok := snap.Rebalance[group]
		if !ok || !st.Rebalancing || st.RebalanceInProgress() <= 0 {
			return fmt.Errorf("not seen rebalancing for a while yet (rebalancing %v, in progress %s)", st.Rebalancing, st.RebalanceInProgress())
		}
		m := scrape(t, snap, group)
		if m["kafka_consumergroup_rebalancing"] != 1 || m["kafka_consumergroup_rebalance_in_progress_seconds"] != st.RebalanceInProgress().Seconds() {
			t.Errorf("rebalance in progress for %s but exported rebalancing %v, in progress %vs", st.RebalanceInProgress(),
				m["kafka_consumergroup_rebalancing"], m["kafka_consumergroup_rebalance_in_progress_seconds"])
		}
		first = st
		return nil
	})
	var later rebalance.GroupStats
	testkit.Eventually(t, 10*time.Second, 25*time.Millisecond, "the held rebalance seen a second later in it", func() error {
		st := e.exp.Store.Current().Rebalance[group]
		if !st.Rebalancing || st.RebalanceInProgress() < first.RebalanceInProgress()+time.Second {
			return fmt.Errorf("in progress %s (rebalancing %v), first seen at %s", st.RebalanceInProgress(), st.Rebalancing, first.RebalanceInProgress())
		}
		later = st
		return nil
	})
	if !later.RebalanceStarted.Equal(first.RebalanceStarted) {
		t.Errorf("the rebalance's start moved from %s to %s while it was held open", first.RebalanceStarted, later.RebalanceStarted)
	}
	t.Logf("rebalance seen in progress for %s, then %s", first.RebalanceInProgress(), later.RebalanceInProgress())

	s, snap = e.settle(group, e.classicProbe(group, r.members(), tr))
	held := time.Since(triggered)
	st := stats(t, snap, group)
	m := scrape(t, snap, group)
	checkSettledGauges(t, "after the held rebalance", st.Rebalancing, m)
	if got := st.Durations.Count - before.Durations.Count; got != 1 {
		t.Fatalf("duration histogram got %d observations for one held rebalance", got)
	}
	if m["kafka_consumergroup_rebalance_duration_seconds_count"] != float64(st.Durations.Count) {
		t.Errorf("exported histogram count %v, statistics say %d", m["kafka_consumergroup_rebalance_duration_seconds_count"], st.Durations.Count)
	}
	observed := time.Duration((st.Durations.Sum - before.Durations.Sum) * float64(time.Second))
	// The coordinator held the group for the rebalance timeout after the
	// last rejoin; the poller saw it start and end within a poll or two.
	if observed < hold-time.Second || observed > held {
		t.Errorf("observed rebalance duration %s; the group was held %s and settled %s after the trigger", observed, hold, held)
	}
	t.Logf("observed rebalance duration %s (held %s, settled %s after the trigger)", observed, hold, held)
	// One rebalance: the join and the eviction of the stuck member
	// completed in the same generation.
	if counted, moved := st.Rebalances-base.count, uint64(s.gen-base.gen); counted != 1 || moved != 1 {
		t.Errorf("counted %d rebalances, clients moved %d generations; want 1 and 1", counted, moved)
	}
}
