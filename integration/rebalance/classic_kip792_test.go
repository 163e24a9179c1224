package rebalance_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/rebalance"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/testkit"
)

// classicClient starts one member of a classic group whose subscription
// metadata carries its generation (KIP-792). stall, when set, makes the
// member stop taking part in rebalances while it keeps heartbeating; the
// returned channel is closed once it is stuck.
type classicClient struct {
	name  string
	start func(t *testing.T, e *env, group, topic, id string, tr *truth, stall *gate) (member, <-chan struct{})
}

var kip792Clients = []classicClient{
	{
		// Protocol 3.2 makes sarama send subscription metadata v2, with
		// the generation; cooperative-sticky keeps the session (and the
		// generation it reports) across rebalances.
		name: "sarama-cooperative-sticky",
		start: func(t *testing.T, e *env, group, topic, id string, tr *truth, stall *gate) (member, <-chan struct{}) {
			m := startSarama(t, e, saramaSpec{group: group, topic: topic, clientID: id, version: sarama.V3_2_0_0,
				strategy: sarama.NewBalanceStrategyCooperativeSticky(), truth: tr, stuckSetup: stall})
			return m, m.stalled
		},
	},
	{
		// franz-go's classic consumer sends its generation with every
		// balancer.
		name: "franz-go-classic",
		start: func(t *testing.T, e *env, group, topic, id string, tr *truth, stall *gate) (member, <-chan struct{}) {
			m := startKgo(t, e, kgoSpec{group: group, topic: topic, clientID: id, truth: tr, stall: stall})
			return m, m.stalled
		},
	},
}

// TestClassicKIP792 drives classic groups whose members send their
// generation through joins, clean leaves, a crash, a stall, and a round
// through Empty, and checks after each step that the exporter's generation
// is the clients' and that it counted exactly the generations the clients
// moved; where no member can carry a generation (Empty, or only fresh
// members), that it exports none and does not over-count.
func TestClassicKIP792(t *testing.T) {
	for _, client := range kip792Clients {
		t.Run(client.name, func(t *testing.T) {
			t.Parallel()
			const topic = "orders"
			e := newEnv(t, topic)
			group := "kip792-" + client.name
			tr := newTruth()
			r := newRoster(t)
			start := func(id string, stall *gate) (member, <-chan struct{}) {
				m, stalled := client.start(t, e, group, topic, fmt.Sprintf("%s-%s", client.name, id), tr, stall)
				r.add(m)
				return m, stalled
			}
			probe := func() probe { return e.classicProbe(group, r.members(), tr) }
			var (
				base    baseline
				counted uint64 // since the baseline, at the last step
				lastGen int32  // ground truth at the last step
			)
			step := func(name string) {
				t.Helper()
				s, snap := e.settle(group, probe())
				counted = checkExact(t, name, group, rebalance.SourceKIP792Metadata, s, snap, base, tr)
				lastGen = s.gen
			}
			// unknownStep is a step after which no member carries a
			// generation (the group is Empty, or all its members joined
			// it fresh): the exporter must not guess one, and counts what
			// it saw change, which is one rebalance more.
			unknownStep := func(name string) {
				t.Helper()
				s, snap := e.settle(group, probe())
				counted = checkBounded(t, name, group, s, snap, base, counted+1, tr, false)
				if st := stats(t, snap, group); st.GenerationKnown {
					t.Errorf("%s: generation %d exported although no member carries one", name, st.Generation)
				}
			}

			// A lone member that joined an empty group carries no
			// generation; once a second one joined, the first carries
			// the one it survived from and the generation is known.
			start("a", nil)
			e.settle(group, probe())
			start("b", nil)
			s, snap := e.settle(group, probe())
			base = baselineOf(t, snap, group, s)
			counted = checkExact(t, "baseline", group, rebalance.SourceKIP792Metadata, s, snap, base, tr)
			lastGen = s.gen

			c, _ := start("c", nil)
			step("member joins")

			e.leave(c)
			r.drop(c)
			step("member leaves cleanly")

			d, _ := start("d", nil)
			step("member joins before dying")
			dID := e.crash(d)
			r.drop(d)
			step("member dies without leaving")
			e.checkSilent(d, dID)

			// The stalling member joins and gets stuck: sarama's in Setup,
			// franz-go's after its first poll. From then on it keeps
			// heartbeating but does not rejoin, so the next rebalance
			// (sarama: the cooperative follow-up to its own join) waits
			// for it until the rebalance timeout drops it.
			stall := newGate()
			stuck, stalled := start("stuck", stall)
			select {
			case <-stalled:
			case <-time.After(20 * time.Second):
				t.Fatalf("the stalling member never got stuck")
			}
			stuckID, _ := stuck.current()
			start("f", nil)
			r.drop(stuck)
			// While the coordinator waits for the stuck member no member
			// metadata is trusted, and the exporter keeps the generation
			// the group last completed rather than dropping it.
			testkit.Eventually(t, 10*time.Second, 25*time.Millisecond, "the held rebalance seen in progress", func() error {
				snap := e.exp.Store.Current()
				st := snap.Rebalance[group]
				if !st.Rebalancing {
					return errors.New("the held rebalance has not been seen yet")
				}
				m := scrape(t, snap, group)
				if !st.GenerationKnown || st.Generation < lastGen || m["kafka_consumergroup_generation_id"] != float64(st.Generation) {
					t.Errorf("during the held rebalance: generation %d (known %v, metric %v), want the last completed one (at least %d)",
						st.Generation, st.GenerationKnown, m["kafka_consumergroup_generation_id"], lastGen)
				}
				if m["kafka_consumergroup_rebalancing"] != 1 {
					t.Errorf("during the held rebalance: kafka_consumergroup_rebalancing = %v", m["kafka_consumergroup_rebalancing"])
				}
				return nil
			})
			step("member stalls past its rebalance timeout")
			e.checkSilent(stuck, stuckID)

			// Everyone leaves, one at a time. The last one leaves the group
			// Empty, which the coordinator makes a new generation that no
			// client sees.
			for _, m := range r.members()[1:] {
				e.leave(m)
				r.drop(m)
				step("member leaves cleanly")
			}
			last := r.members()[0]
			e.leave(last)
			r.drop(last)
			unknownStep("last member leaves: group Empty")

			// A member joining an Empty group carries no generation, so
			// the generation is unknown until a second one joins.
			start("g", nil)
			unknownStep("member joins the empty group")
			start("h", nil)
			step("second member joins the empty group")
		})
	}
}
