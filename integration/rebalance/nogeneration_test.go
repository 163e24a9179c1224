package rebalance_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/store"
)

// TestClassicWithoutGeneration covers classic groups whose members do not
// send a generation: sarama with the eager range balancer (subscription
// metadata v1), and kcat (librdkafka) members with a sarama range member
// beside them. No source can read their generation, so the tracker counts
// rebalances from states and membership changes.
//
// The assertion, after every settled step, is
//
//	changes made <= rebalances counted <= generations handed out
//
// both since the baseline. The upper bound is the ground truth: the
// coordinator moves a classic group one generation per rebalance, and every
// sarama member learns each generation it takes part in from SyncGroup
// (session.GenerationID() in Setup) even though it does not send it; the
// sarama members are in every generation, so the change in their
// generation counts every rebalance. Counting more would be over-counting.
// The lower bound is what the poller could see: the test changes the
// membership only while the group is settled and waits after each change
// for a poll of the settled result, so the tracker observed every member
// set, and its rules count a changed member set between settled
// observations at least once. In these scenarios each change is one
// generation, so in practice both bounds are met with equality; the test
// logs when they are not.
func TestClassicWithoutGeneration(t *testing.T) {
	t.Run("sarama-range", func(t *testing.T) {
		t.Parallel()
		const topic, group = "clicks", "nogen-sarama-range"
		e := newEnv(t, topic)
		tr := newTruth()
		r := newRoster(t)
		start := func(id string) member {
			return r.add(startSarama(t, e, saramaSpec{group: group, topic: topic, clientID: "range-" + id,
				version: sarama.V3_0_0_0, strategy: sarama.NewBalanceStrategyRange(), truth: tr}))
		}
		runWithoutGeneration(t, e, group, r, tr, start, start)
	})
	t.Run("kcat", func(t *testing.T) {
		t.Parallel()
		requireKcat(t)
		const topic, group = "views", "nogen-kcat"
		e := newEnv(t, topic)
		tr := newTruth()
		r := newRoster(t)
		// The sarama member is there for the ground truth: kcat cannot
		// tell its generation. Both speak the "range" protocol.
		observer := func(id string) member {
			return r.add(startSarama(t, e, saramaSpec{group: group, topic: topic, clientID: "observer-" + id,
				version: sarama.V3_0_0_0, strategy: sarama.NewBalanceStrategyRange(), truth: tr}))
		}
		kcat := func(id string) member {
			return r.add(startKcat(t, e, group, topic, "kcat-"+id))
		}
		runWithoutGeneration(t, e, group, r, tr, observer, kcat)
	})
}

// runWithoutGeneration starts the group with first, then has members
// started with next join, leave cleanly, and die without leaving; then
// everyone leaves and the group starts over from Empty.
func runWithoutGeneration(t *testing.T, e *env, group string, r *roster, tr *truth, first, next func(id string) member) {
	first("a")
	s, snap := e.settle(group, e.classicProbe(group, r.members(), tr))
	checkSendsNoGeneration(t, e, group, snap)
	base := baselineOf(t, snap, group, s)
	changes := 0
	step := func(name string) {
		t.Helper()
		s, snap := e.settle(group, e.classicProbe(group, r.members(), tr))
		checkBounded(t, name, group, s, snap, base, uint64(changes), tr, true)
		checkSendsNoGeneration(t, e, group, snap)
	}

	next("b")
	changes++
	step("member joins")

	c := next("c")
	changes++
	step("another member joins")

	e.leave(c)
	r.drop(c)
	changes++
	step("member leaves cleanly")

	d := next("d")
	changes++
	step("member joins before dying")

	dID := e.crash(d)
	r.drop(d)
	changes++
	step("member dies without leaving")
	e.checkSilent(d, dID)

	// Everyone leaves, one at a time, the members that can tell their
	// generation last; the last one leaves the group Empty, and members
	// join it again.
	leaving := r.members()
	slices.SortStableFunc(leaving, func(a, b member) int {
		_, aOpaque := a.(opaque)
		_, bOpaque := b.(opaque)
		switch {
		case aOpaque && !bOpaque:
			return -1
		case bOpaque && !aOpaque:
			return 1
		}
		return 0
	})
	for _, m := range leaving {
		e.leave(m)
		r.drop(m)
		changes++
		step("member leaves cleanly")
	}
	first("e")
	changes++
	step("member joins the empty group")
	next("f")
	changes++
	step("another member joins")
}

// checkSendsNoGeneration confirms, independently of the exporter, that the
// members' subscription metadata carries no generation, and that the
// exporter decoded none.
func checkSendsNoGeneration(t *testing.T, e *env, group string, snap *store.Snapshot) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	desc, err := e.adm.DescribeGroups(ctx, group)
	if err != nil {
		t.Fatalf("describe %s: %v", group, err)
	}
	for _, m := range desc[group].Members {
		meta, ok := m.Join.AsConsumer()
		if !ok {
			t.Fatalf("member %s of %s: subscription metadata does not decode", m.ClientID, group)
		}
		if meta.Version >= 2 && meta.Generation >= 0 {
			t.Fatalf("member %s of %s sends generation %d (metadata v%d): not a group without generation",
				m.ClientID, group, meta.Generation, meta.Version)
		}
	}
	for _, m := range stats(t, snap, group).Members {
		if m.Generation != -1 {
			t.Errorf("exporter decoded generation %d for member %s of %s", m.Generation, m.ClientID, group)
		}
	}
}
