package realkafka

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/realkafka"
)

// TestBrokerHungThenLeadersMove freezes one broker of the real cluster
// (SIGSTOP: it keeps its connections open and answers nothing, the worst
// kind of failure) until the controller fences it and its partition and
// group leaderships move to the other brokers, then lets it go on. Issue
// 11's rows "one broker hangs", "one broker of three unreachable" and
// "leader loss", on real Kafka:
//   - groups coordinated by the other brokers stay fresh throughout: their
//     observed_at is never older than a few group polls;
//   - up stays 1 and broker_up says which broker is gone;
//   - the frozen broker's groups come back, fresh, under their new
//     coordinator, and every partition of the topic has its lag again
//     under its new leader, without a restart;
//   - a partition of a single-replica topic that the frozen broker led has
//     no leader: it alone loses its leader and lag series, the topic's
//     other partitions and every group keep theirs ("one partition
//     without a leader");
//   - when the broker is back, broker_up is 1 again and the lag returns.
func TestBrokerHungThenLeadersMove(t *testing.T) {
	adm := admin(t)
	prefix := "bl-" + world.run
	topic := prefix + "-t"
	createTopic(t, adm, topic, 6)
	startProducer(t, topic, 50*time.Millisecond)
	groups := make([]string, 8)
	for i := range groups {
		groups[i] = fmt.Sprintf("%s-g%d", prefix, i)
		startMember(t, realkafka.KindFranz, groups[i]+"-m", groups[i], topic)
	}
	// A topic with one replica per partition: the frozen broker's
	// partition of it is left without a leader.
	single := prefix + "-rf1"
	if res, err := adm.CreateTopic(ctxT(t, time.Minute), 3, 1, nil, single); err != nil || res.Err != nil {
		t.Fatalf("create %s: %v %v", single, err, res.Err)
	}
	startProducer(t, single, 50*time.Millisecond)
	singleGroup := prefix + "-rf1-g"
	startMember(t, realkafka.KindFranz, singleGroup+"-m", singleGroup, single)
	e := startExporter(t, prefix+"-.*", "KRE_REQUEST_TIMEOUT=3s")
	lagOf := func(m metrics, topic string) map[string]bool {
		out := map[string]bool{}
		for _, s := range m.series("kafka_consumergroup_lag", map[string]string{"topic": topic}) {
			out[s.labels["partition"]] = true
		}
		return out
	}
	eventually(t, 2*time.Minute, "lag of every partition of "+single, func() error {
		if n := len(lagOf(mustScrape(t, e), single)); n != 3 {
			return fmt.Errorf("%d partitions with lag", n)
		}
		return nil
	})

	// Every group Stable with its member, and where each is coordinated.
	coordinator := map[string]int32{}
	eventually(t, 3*time.Minute, "every group observed Stable", func() error {
		for _, g := range groups {
			v, ok, err := e.group(g)
			if err != nil {
				return err
			}
			if !ok || v.State != "Stable" || len(v.Members) != 1 {
				return fmt.Errorf("%s: %v", g, v)
			}
			coordinator[g] = v.Coordinator
		}
		return nil
	})
	// Freeze the coordinator of the first group, unless it coordinates all.
	frozen := coordinator[groups[0]]
	var others, affected []string
	for _, g := range groups {
		if coordinator[g] == frozen {
			affected = append(affected, g)
		} else {
			others = append(others, g)
		}
	}
	if len(others) == 0 {
		t.Fatalf("broker %d coordinates every group %v: no unaffected group to compare", frozen, coordinator)
	}
	pid := nodePid(t, frozen)
	t.Logf("freezing broker %d (pid %d), coordinator of %v; others %v", frozen, pid, affected, others)
	cont := func() { _ = syscall.Kill(pid, syscall.SIGCONT) }
	t.Cleanup(cont)
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	frozenAt := time.Now()

	// While it is frozen: the other groups fresh, up 1, the broker down,
	// then the frozen broker's groups and partitions back elsewhere.
	const maxStale = 5 * time.Second
	var worst time.Duration
	var worstGroup string
	back := map[string]time.Duration{}
	brokerDown := time.Duration(0)
	deadline := frozenAt.Add(3 * time.Minute)
	var timeline []string
	for time.Now().Before(deadline) {
		now := time.Now()
		sampleWorst := time.Duration(0)
		for _, g := range others {
			v, ok, err := e.group(g)
			if err != nil || !ok {
				t.Fatalf("%s during the freeze: %v %v", g, ok, err)
			}
			stale := now.Sub(v.ObservedAt)
			sampleWorst = max(sampleWorst, stale)
			if stale > worst {
				worst, worstGroup = stale, g
			}
		}
		timeline = append(timeline, fmt.Sprintf("%s:%s", now.Sub(frozenAt).Round(100*time.Millisecond), sampleWorst.Round(100*time.Millisecond)))
		m, err := e.scrape()
		if err != nil {
			t.Fatalf("scrape during the freeze: %v", err)
		}
		if up, _ := m.value("kafka_rebalance_exporter_up", nil); up != 1 {
			t.Errorf("up = %v at %s into the freeze", up, now.Sub(frozenAt).Round(time.Millisecond))
		}
		if v, ok := m.value("kafka_rebalance_exporter_broker_up", map[string]string{"broker": strconv.Itoa(int(frozen))}); ok && v == 0 && brokerDown == 0 {
			brokerDown = now.Sub(frozenAt)
		}
		for _, g := range affected {
			if _, done := back[g]; done {
				continue
			}
			if v, ok, err := e.group(g); err == nil && ok && v.Coordinator != frozen && v.ObservedAt.After(frozenAt) &&
				now.Sub(v.ObservedAt) < maxStale {
				back[g] = now.Sub(frozenAt)
			}
		}
		lagging := len(m.series("kafka_consumergroup_lag", map[string]string{"topic": topic}))
		if brokerDown > 0 && len(back) == len(affected) && lagging == 6*len(groups) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("frozen broker %d: broker_up 0 after %s; its groups back under new coordinators after %v; unaffected groups at most %s stale (%s)",
		frozen, brokerDown.Round(time.Millisecond), back, worst.Round(time.Millisecond), worstGroup)
	if worst > maxStale {
		t.Logf("staleness of the unaffected groups over the freeze (time into it: worst staleness): %s", strings.Join(timeline, " "))
		t.Errorf("group %s, coordinated by a live broker, was %s stale while broker %d was frozen (want at most %s)",
			worstGroup, worst.Round(time.Millisecond), frozen, maxStale)
	}
	if brokerDown == 0 {
		t.Errorf("broker_up{broker=%q} never went to 0", strconv.Itoa(int(frozen)))
	}
	if len(back) != len(affected) {
		t.Errorf("groups of the frozen broker back under a live coordinator: %v of %v", back, affected)
	}
	m := mustScrape(t, e)
	if n := len(m.series("kafka_consumergroup_lag", map[string]string{"topic": topic})); n != 6*len(groups) {
		t.Errorf("%d lag series for %s with leaders moved, want %d", n, topic, 6*len(groups))
	}

	// The partition of the single-replica topic the frozen broker led has
	// no leader now: it alone lacks its leader and lag; the topic's other
	// partitions keep theirs.
	md, err := adm.Metadata(ctxT(t, 30*time.Second), single)
	if err != nil {
		t.Fatal(err)
	}
	var orphan string
	for _, p := range md.Topics[single].Partitions {
		if len(p.Replicas) == 1 && p.Replicas[0] == frozen {
			orphan = strconv.Itoa(int(p.Partition))
		}
	}
	if orphan == "" {
		t.Fatalf("no partition of %s is on broker %d: %+v", single, frozen, md.Topics[single].Partitions)
	}
	eventually(t, 2*time.Minute, "partition "+orphan+" of "+single+" alone without leader and lag", func() error {
		m, err := e.scrape()
		if err != nil {
			return err
		}
		lag := lagOf(m, single)
		if lag[orphan] || len(lag) != 2 {
			return fmt.Errorf("lag of partitions %v", lag)
		}
		if _, ok := m.value("kafka_topic_partition_leader", map[string]string{"topic": single, "partition": orphan}); ok {
			return fmt.Errorf("leaderless partition %s has a leader series", orphan)
		}
		if up, _ := m.value("kafka_rebalance_exporter_up", nil); up != 1 {
			return fmt.Errorf("up = %v", up)
		}
		return nil
	})

	cont()
	eventually(t, 2*time.Minute, "lag of every partition of "+single+" again", func() error {
		if n := len(lagOf(mustScrape(t, e), single)); n != 3 {
			return fmt.Errorf("%d partitions with lag", n)
		}
		return nil
	})
	eventually(t, 3*time.Minute, "the broker back", func() error {
		m, err := e.scrape()
		if err != nil {
			return err
		}
		if v, _ := m.value("kafka_rebalance_exporter_broker_up", map[string]string{"broker": strconv.Itoa(int(frozen))}); v != 1 {
			return fmt.Errorf("broker_up = %v", v)
		}
		return nil
	})
	// Leave the cluster whole for the tests after this one: every
	// partition of the topic fully in sync again.
	eventually(t, 3*time.Minute, "replicas in sync again", func() error {
		md, err := adm.Metadata(ctxT(t, 30*time.Second), topic, single)
		if err != nil {
			return err
		}
		for _, p := range append(md.Topics[topic].Partitions.Sorted(), md.Topics[single].Partitions.Sorted()...) {
			if len(p.ISR) != len(p.Replicas) {
				return fmt.Errorf("partition %d: ISR %v of %v", p.Partition, p.ISR, p.Replicas)
			}
		}
		return nil
	})

	// The controller moves the leaderships back to the returned broker at
	// its next preferred-leader check (leader.imbalance.check.interval
	// .seconds, 5 minutes), in the middle of whatever runs then; the test
	// makes that election now. The frozen broker's groups then move back
	// to it: the broker that coordinated them meanwhile answers without
	// them while their old coordinator is still loading them. Each must
	// stay in the exporter throughout (carried with its observation time,
	// as at any coordinator move), keep its rebalance count, and come back
	// fresh under the returned broker.
	moveBack(t, adm, e, frozen, append(append([]string{}, groups...), singleGroup), affected)
}

// moveBack makes a preferred leader election and follows the groups while
// the coordinators of affected move back to broker home.
func moveBack(t *testing.T, adm *kadm.Client, e *exporter, home int32, all, affected []string) {
	t.Helper()
	before := map[string]uint64{}
	for _, g := range all {
		v, ok, err := e.group(g)
		if err != nil || !ok {
			t.Fatalf("%s before the election: %v %v", g, ok, err)
		}
		before[g] = v.Rebalances
	}
	// A partition whose preferred leader is not yet back in its ISR (the
	// returned broker catches up on each __consumer_offsets partition in
	// turn) answers PREFERRED_LEADER_NOT_AVAILABLE: the election is asked
	// again at every sample until each partition has its preferred leader.
	moved, pending := 0, map[string]error{}
	elect := func() {
		res, err := adm.ElectLeaders(ctxT(t, time.Minute), kadm.ElectPreferredReplica, nil)
		if err != nil {
			t.Fatalf("preferred leader election: %v", err)
		}
		clear(pending)
		for topic, ps := range res {
			for p, r := range ps {
				switch {
				case r.Err == nil:
					moved++
				case !errors.Is(r.Err, kerr.ElectionNotNeeded):
					pending[fmt.Sprintf("%s-%d", topic, p)] = r.Err
				}
			}
		}
	}
	elect()
	electedAt := time.Now()
	var problems []string
	backAt := map[string]time.Duration{}
	for deadline := electedAt.Add(2 * time.Minute); time.Now().Before(deadline) && (len(backAt) < len(affected) || len(pending) > 0); time.Sleep(200 * time.Millisecond) {
		at := time.Since(electedAt).Round(100 * time.Millisecond)
		if len(pending) > 0 {
			elect()
		}
		for _, g := range all {
			v, ok, err := e.group(g)
			switch {
			case err != nil:
				t.Fatalf("%s after the election: %v", g, err)
			case !ok:
				problems = append(problems, fmt.Sprintf("%s absent at %s", g, at))
				continue
			case v.Rebalances < before[g]:
				problems = append(problems, fmt.Sprintf("%s rebalances %d -> %d at %s", g, before[g], v.Rebalances, at))
			}
			if slices.Contains(affected, g) && v.Coordinator == home && v.ObservedAt.After(electedAt) {
				if _, done := backAt[g]; !done {
					backAt[g] = time.Since(electedAt)
				}
			}
		}
	}
	t.Logf("preferred leader election: %d partitions got a new leader; groups back under broker %d after it: %v", moved, home, backAt)
	if len(pending) > 0 {
		t.Errorf("partitions without their preferred leader 2 min after the election: %v", pending)
	}
	if len(problems) > 0 {
		t.Errorf("while coordinators moved back to broker %d (want every group kept, counts never lower): %s",
			home, strings.Join(problems[:min(len(problems), 20)], "; "))
	}
	if len(backAt) < len(affected) {
		var views []string
		for _, g := range affected {
			if _, ok := backAt[g]; !ok {
				v, _, err := e.group(g)
				views = append(views, fmt.Sprintf("%s: coordinator %d, observed %s ago (%v)", g, v.Coordinator, time.Since(v.ObservedAt).Round(time.Millisecond), err))
			}
		}
		t.Errorf("groups fresh under broker %d again: %v of %v; not back: %s", home, backAt, affected, strings.Join(views, "; "))
	}
}

// nodePid is the process of the cluster node that is broker id.
func nodePid(t *testing.T, id int32) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(world.cluster.Dir, fmt.Sprintf("node-%d", id), "pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}
