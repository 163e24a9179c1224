package rebalance_test

import (
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/rebalance"
)

// stormSecondsEnv lengthens the storm: KRE_STORM_SECONDS=60 go test -run
// Storm ./integration/rebalance/ -v. It is how long members keep
// restarting in each group; the default keeps the package's tests short.
const stormSecondsEnv = "KRE_STORM_SECONDS"

const (
	defaultStorm  = 8 * time.Second
	stormMembers  = 6
	stormInterval = 400 * time.Millisecond // one member restarts this often
	stormCrashing = 4                      // every 4th restart is a crash
)

func stormDuration(t *testing.T) time.Duration {
	t.Helper()
	v := os.Getenv(stormSecondsEnv)
	if v == "" {
		return defaultStorm
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive number of seconds", stormSecondsEnv, v)
	}
	return time.Duration(n) * time.Second
}

// stormSource is one way of knowing a group's generation.
type stormSource struct {
	name, topic string
	start       func(t *testing.T, e *env, group, id string, tr *truth) member
	probe       func(e *env, group string, live []member, tr *truth) probe
	// source is the generation source the exporter must use; "" for a
	// group whose members send no generation, where only an upper bound
	// holds.
	source string
}

var stormSources = []stormSource{
	{
		name: "kip848", topic: "storm848", source: rebalance.SourceKIP848Epoch,
		start: func(t *testing.T, e *env, group, id string, tr *truth) member {
			return startKgo(t, e, kgoSpec{group: group, topic: "storm848", clientID: id, consumer848: true, truth: tr})
		},
		probe: func(e *env, group string, live []member, _ *truth) probe { return e.consumerProbe(group, live) },
	},
	{
		name: "kip792-sarama-cooperative-sticky", topic: "storm792", source: rebalance.SourceKIP792Metadata,
		start: func(t *testing.T, e *env, group, id string, tr *truth) member {
			return startSarama(t, e, saramaSpec{group: group, topic: "storm792", clientID: id, version: sarama.V3_2_0_0,
				strategy: sarama.NewBalanceStrategyCooperativeSticky(), truth: tr})
		},
		probe: func(e *env, group string, live []member, tr *truth) probe { return e.classicProbe(group, live, tr) },
	},
	{
		name: "no-generation-sarama-range", topic: "stormrange",
		start: func(t *testing.T, e *env, group, id string, tr *truth) member {
			return startSarama(t, e, saramaSpec{group: group, topic: "stormrange", clientID: id, version: sarama.V3_0_0_0,
				strategy: sarama.NewBalanceStrategyRange(), truth: tr})
		},
		probe: func(e *env, group string, live []member, tr *truth) probe { return e.classicProbe(group, live, tr) },
	},
}

// TestRebalanceStorm restarts members of a six-member group, one every
// stormInterval, for the storm's duration, while the background poller
// keeps polling; then lets the group settle and compares the rebalances
// the exporter counted with the ground truth: the group epoch (KIP-848) or
// the generation the clients hold (classic), each since a settled baseline
// before the storm. It compares twice: right after the storm, and after
// one more member joined the calm group.
//
// KIP-848 must match exactly both times. KIP-792 must match exactly
// whenever the exporter knows the generation; right after a storm that
// replaced every member within one long rebalance no member carries one,
// the exporter must then export none and not over-count, and after the
// calm join (which has survivors) it must match exactly again. The source
// without generation may under-count (rebalances that began and ended
// between polls with the same member set are invisible to it) but never
// over-count.
func TestRebalanceStorm(t *testing.T) {
	d := stormDuration(t)
	for _, src := range stormSources {
		t.Run(src.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, src.topic)
			group := "storm-" + src.name
			tr := newTruth()
			r := newRoster(t)
			seq := 0
			start := func() member {
				seq++
				return r.add(src.start(t, e, group, fmt.Sprintf("%s-%d", src.name, seq), tr))
			}
			// One member first, the rest once it is settled: the baseline
			// group then has a member that survived a rebalance, which a
			// classic group needs for its generation to be known.
			slots := make([]member, stormMembers)
			slots[0] = start()
			e.settle(group, src.probe(e, group, r.members(), tr))
			for i := 1; i < stormMembers; i++ {
				slots[i] = start()
			}
			s, snap := e.settle(group, src.probe(e, group, r.members(), tr))
			base := baselineOf(t, snap, group, s)
			if src.source != "" {
				checkExact(t, "before the storm", group, src.source, s, snap, base, tr)
			}

			var stops sync.WaitGroup
			restarts, crashes := 0, 0
			tick := time.NewTicker(stormInterval)
			for end := time.Now().Add(d); time.Now().Before(end); {
				<-tick.C
				i := restarts % stormMembers
				old := slots[i]
				r.drop(old)
				crash := restarts%stormCrashing == stormCrashing-1
				if crash {
					crashes++
				}
				// Stopping can take a while (a leave waits for its
				// rebalance); the next restart does not wait for it.
				stops.Go(func() {
					if crash {
						old.crash()
					} else {
						old.leave()
					}
				})
				slots[i] = start()
				restarts++
			}
			tick.Stop()
			stops.Wait()

			s, snap = e.settle(group, src.probe(e, group, r.members(), tr))
			st := stats(t, snap, group)
			truthDelta := uint64(s.gen - base.gen)
			counted := st.Rebalances - base.count
			t.Logf("storm %s for %s: %d restarts (%d crashes); right after it: ground truth %d rebalances (generation %d -> %d), exporter counted %d, exported generation %d (%q, known %v); rebalances seen in progress and timed: %d",
				src.name, d, restarts, crashes, truthDelta, base.gen, s.gen, counted, st.Generation, st.GenerationSource, st.GenerationKnown,
				st.Durations.Count)
			switch {
			case counted > truthDelta:
				t.Errorf("over-count right after the storm: %d rebalances counted, the coordinator handed out %d generations", counted, truthDelta)
			case counted == 0:
				t.Errorf("no rebalance counted during a storm of %d restarts", restarts)
			case src.source == rebalance.SourceKIP848Epoch:
				checkExact(t, "right after the storm", group, src.source, s, snap, base, tr)
			case src.source != "" && st.GenerationKnown:
				checkExact(t, "right after the storm", group, src.source, s, snap, base, tr)
			case src.source != "":
				// Every member of the last generation joined it fresh, so
				// none carries a generation: the exporter must not guess,
				// and has counted what the fallback could see. The next
				// rebalance with a survivor brings the exact count back.
				t.Logf("right after the storm no member of %s survived the last rebalance: generation unknown until the next one", group)
			}

			// One calm change after the storm: the group's members now
			// carry the generation they survived, and the count must have
			// caught up with the ground truth.
			start()
			s, snap = e.settle(group, src.probe(e, group, r.members(), tr))
			st = stats(t, snap, group)
			truthDelta = uint64(s.gen - base.gen)
			counted = st.Rebalances - base.count
			t.Logf("storm %s, after one more join: ground truth %d rebalances (generation %d -> %d), exporter counted %d",
				src.name, truthDelta, base.gen, s.gen, counted)
			if src.source != "" {
				checkExact(t, "after the storm and one more join", group, src.source, s, snap, base, tr)
				return
			}
			if counted > truthDelta {
				t.Errorf("over-count: %d rebalances counted, the coordinator handed out %d generations", counted, truthDelta)
			}
		})
	}
}
