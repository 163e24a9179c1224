package rebalance_test

import (
	"testing"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/rebalance"
)

// TestKIP848 drives a KIP-848 group (franz-go, server-side assignor)
// through joins, a clean leave and a crash. The ground truth is the group
// epoch from a ConsumerGroupDescribe the test issues itself, which every
// live client's member epoch must match, and the membership changes the
// test made: kfake bumps the group epoch once per join, leave and
// eviction, as Kafka does for a fixed subscription.
func TestKIP848(t *testing.T) {
	t.Parallel()
	const topic, group = "payments", "kip848"
	e := newEnv(t, topic)
	tr := newTruth()
	r := newRoster(t)
	start := func(id string) member {
		return r.add(startKgo(t, e, kgoSpec{group: group, topic: topic, clientID: "kip848-" + id, consumer848: true, truth: tr}))
	}
	probe := func() probe { return e.consumerProbe(group, r.members()) }

	start("a")
	s, snap := e.settle(group, probe())
	base := baselineOf(t, snap, group, s)
	baseStats := stats(t, snap, group)
	changes, joins, leaves := 0, 0, 0
	step := func(name string) {
		t.Helper()
		s, snap := e.settle(group, probe())
		checkExact(t, name, group, rebalance.SourceKIP848Epoch, s, snap, base, tr)
		if got := s.gen - base.gen; got != int32(changes) {
			t.Errorf("%s: group epoch moved %d for %d membership changes", name, got, changes)
		}
		st := stats(t, snap, group)
		m := scrape(t, snap, group)
		// KIP-848 member IDs are the clients' own and stay put, and every
		// change was seen settled, so joins and leaves are exact too.
		if got := st.MemberJoins - baseStats.MemberJoins; got != uint64(joins) {
			t.Errorf("%s: member joins counted %d, made %d", name, got, joins)
		}
		if got := st.MemberLeaves - baseStats.MemberLeaves; got != uint64(leaves) {
			t.Errorf("%s: member leaves counted %d, made %d", name, got, leaves)
		}
		if !st.AssignmentEpochKnown || st.AssignmentEpoch != s.assignmentEpoch || m["kafka_consumergroup_assignment_epoch"] != float64(s.assignmentEpoch) {
			t.Errorf("%s: assignment epoch %d (known %v, metric %v), want %d", name, st.AssignmentEpoch, st.AssignmentEpochKnown,
				m["kafka_consumergroup_assignment_epoch"], s.assignmentEpoch)
		}
	}
	step("baseline")

	start("b")
	changes, joins = changes+1, joins+1
	step("member joins")

	c := start("c")
	changes, joins = changes+1, joins+1
	step("another member joins")

	e.leave(c)
	r.drop(c)
	changes, leaves = changes+1, leaves+1
	step("member leaves cleanly")

	d := start("d")
	changes, joins = changes+1, joins+1
	step("member joins before dying")

	// Without heartbeats the coordinator fences d after the consumer
	// session timeout: one more epoch.
	dID := e.crash(d)
	r.drop(d)
	changes, leaves = changes+1, leaves+1
	step("member dies without leaving")
	e.checkSilent(d, dID)

	// The last members leave: one epoch each, and the group is Empty.
	for _, m := range r.members() {
		e.leave(m)
		r.drop(m)
		changes, leaves = changes+1, leaves+1
	}
	step("every member leaves")

	start("e")
	changes, joins = changes+1, joins+1
	step("member joins the empty group")
}
