package kafka_test

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/cluster"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/kafka"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/kafkatest"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/store"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/testkit"
)

// hideFromListGroups makes every broker leave the groups out of its
// ListGroups answers (only their coordinator would list them), as a
// coordinator does that gave up the leadership of their __consumer_offsets
// partition. DescribeGroups and FindCoordinator still answer for them.
func hideFromListGroups(w *faultWorld, groups ...string) *kfake.FaultHandle {
	fs := make([]kfake.Fault, 0, len(groups))
	for _, g := range groups {
		fs = append(fs, kfake.Fault{Keys: []kmsg.Key{kmsg.ListGroups}, Group: g, Count: -1})
	}
	return w.c.Fault(fs...)
}

// joinAndLeave runs a real kgo member in group until the group is Stable
// with it, polls the exporter, then closes the member (it leaves the
// group), waits for the group to be Empty and polls again: the exporter's
// rebalance tracker has counted the member's coming and going.
func joinAndLeave(t *testing.T, w *faultWorld, e *kafkatest.Exporter, group string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(w.addrs...), kgo.ConsumerGroup(group), kgo.ConsumeTopics(faultTopic),
		kgo.DisableAutoCommit(), kgo.ClientID(group+"-member"),
		kgo.SessionTimeout(6*time.Second), kgo.HeartbeatInterval(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			cl.PollFetches(ctx)
		}
	}()
	stop := sync.OnceFunc(func() { cancel(); wg.Wait(); cl.Close() })
	t.Cleanup(stop)

	wctx, wcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer wcancel()
	if _, err := w.c.WaitGroupStable(wctx, group, 1); err != nil {
		t.Fatalf("group %s not stable with its member: %v", group, err)
	}
	e.Poll(t)
	stop()
	if _, err := w.c.WaitGroupInfo(wctx, group, func(g *kfake.GroupInfo) bool {
		return g != nil && g.State == "Empty" && len(g.Members) == 0
	}); err != nil {
		t.Fatalf("group %s not Empty after its member left: %v", group, err)
	}
	e.Poll(t)
}

// otherBroker is a broker of the three-broker world other than id.
func otherBroker(id int32) int32 { return (id + 1) % 3 }

// hostPort splits the listen address of broker id (kfake numbers its
// brokers from 0 in the order of ListenAddrs).
func hostPort(t *testing.T, w *faultWorld, id int32) (string, int32) {
	t.Helper()
	host, port, err := net.SplitHostPort(w.addrs[id])
	if err != nil {
		t.Fatal(err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	return host, int32(p)
}

// stageErrors returns the stage errors of err at stage.
func stageErrors(err error, stage string) []*kafka.StageError {
	var out []*kafka.StageError
	for _, se := range kafka.StageErrors(err) {
		if se.Stage == stage {
			out = append(out, se)
		}
	}
	return out
}

// checkCarried fails t unless group is in snap exactly as it was in before
// (the same *cluster.Group, so the same ObservedAt) and its rebalance
// statistics are those of before.
func checkCarried(t *testing.T, when string, snap, before *store.Snapshot, group string) {
	t.Helper()
	got, was := snap.Groups.Groups[group], before.Groups.Groups[group]
	if got == nil {
		t.Errorf("%s: group %s missing from the observation", when, group)
	} else if got != was || !got.ObservedAt.Equal(was.ObservedAt) {
		t.Errorf("%s: group %s not carried forward unchanged: observed %s, was %s", when, group, got.ObservedAt, was.ObservedAt)
	}
	stats, ok := snap.Rebalance[group]
	if !ok {
		t.Errorf("%s: the rebalance tracker lost group %s", when, group)
		return
	}
	wasStats := before.Rebalance[group]
	if stats.Rebalances != wasStats.Rebalances || len(stats.History) != len(wasStats.History) ||
		stats.MemberJoins != wasStats.MemberJoins || stats.MemberLeaves != wasStats.MemberLeaves {
		t.Errorf("%s: group %s rebalance stats changed: %d rebalances, %d events, %d joins, %d leaves; want %d, %d, %d, %d",
			when, group, stats.Rebalances, len(stats.History), stats.MemberJoins, stats.MemberLeaves,
			wasStats.Rebalances, len(wasStats.History), wasStats.MemberJoins, wasStats.MemberLeaves)
	}
}

// awaitFresh polls until every one of groups is in an observation made by
// that poll (its faults removed, each group is listed and described again).
func awaitFresh(t *testing.T, e *kafkatest.Exporter, groups ...string) {
	t.Helper()
	testkit.Eventually(t, 10*time.Second, 0, "the vanished groups fresh again", func() error {
		start := time.Now()
		_ = e.Poller.GroupsPoll(context.Background(), e.Store)
		for _, g := range groups {
			if got := e.Store.Current().Groups.Groups[g]; got == nil || got.ObservedAt.Before(start) {
				return fmt.Errorf("group %s not fresh: %+v", g, got)
			}
		}
		return nil
	})
}

// checkFresh fails t unless every group in groups is in snap, observed at
// or after start.
func checkFresh(t *testing.T, when string, snap *cluster.GroupsObservation, start time.Time, groups []string) {
	t.Helper()
	for _, g := range groups {
		got := snap.Groups[g]
		if got == nil {
			t.Errorf("%s: group %s missing", when, g)
			continue
		}
		if got.ObservedAt.Before(start) {
			t.Errorf("%s: group %s observed %s before the poll", when, g, start.Sub(got.ObservedAt))
		}
	}
}

// A group whose coordinator stops listing it while the coordinator it
// names is still loading it (a preferred leader election moved its
// __consumer_offsets partition between live brokers) stays in every
// observation, unchanged (its previous ObservedAt, not refreshed) and with
// its rebalance count, member counts and history, while every other group
// is fresh, with one FindCoordinator request per poll and no poll error;
// once a broker describes it again it is fresh with the counters kept.
// Both answers that mean "moving" are covered: another broker named, and
// COORDINATOR_NOT_AVAILABLE. Before, the group vanished from the
// observation and the tracker forgot it with its counters.
func TestVanishedGroupMovingIsKept(t *testing.T) {
	for _, answer := range []string{"another broker", "COORDINATOR_NOT_AVAILABLE"} {
		t.Run(strings.ReplaceAll(answer, " ", "_"), func(t *testing.T) {
			w := newFaultWorld(t, 12)
			victim := w.busiest()
			mine, others := w.on(victim)
			slices.Sort(mine)
			g := mine[0]
			others = append(others, mine[1:]...)
			e := kafkatest.NewExporter(t, kafkatest.Config(t, w.addrs, nil))
			e.Poll(t)
			joinAndLeave(t, w, e, g)
			before := e.Store.Current()
			if st := before.Rebalance[g]; st.Rebalances == 0 || len(st.History) == 0 || st.MemberJoins == 0 {
				t.Fatalf("group %s has no rebalance to keep: %+v", g, st)
			}

			hidden := hideFromListGroups(w, g)
			var moving atomic.Bool
			moving.Store(true)
			var fc *kfake.FaultHandle
			switch answer {
			case "another broker":
				to := otherBroker(victim)
				host, port := hostPort(t, w, to)
				var asked atomic.Int64
				w.c.ControlKey(kmsg.FindCoordinator.Int16(), func(req kmsg.Request) (kmsg.Response, error, bool) {
					w.c.KeepControl()
					r := req.(*kmsg.FindCoordinatorRequest)
					if !moving.Load() || r.CoordinatorKey != g && !slices.Contains(r.CoordinatorKeys, g) {
						return nil, nil, false
					}
					asked.Add(1)
					resp := r.ResponseKind().(*kmsg.FindCoordinatorResponse)
					resp.NodeID, resp.Host, resp.Port = to, host, port
					c := kmsg.NewFindCoordinatorResponseCoordinator()
					c.Key, c.NodeID, c.Host, c.Port = g, to, host, port
					resp.Coordinators = append(resp.Coordinators, c)
					return resp, nil, true
				})
				defer func() {
					if asked.Load() == 0 {
						t.Error("the FindCoordinator interception never answered")
					}
				}()
			default:
				fc = w.c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.FindCoordinator}, Group: g, Err: kerr.CoordinatorNotAvailable, Count: -1})
			}

			for poll := range 4 {
				when := fmt.Sprintf("poll %d while %s moves", poll, g)
				fcBefore := apiRequests(t, e, "FindCoordinator")
				start := time.Now()
				err := e.Poller.GroupsPoll(context.Background(), e.Store)
				if err != nil {
					t.Errorf("%s: poll error %v, want none", when, err)
				}
				if got := apiRequests(t, e, "FindCoordinator") - fcBefore; got != 1 {
					t.Errorf("%s: %v FindCoordinator requests, want 1", when, got)
				}
				snap := e.Store.Current()
				checkCarried(t, when, snap, before, g)
				checkFresh(t, when, snap.Groups, start, others)
				if n := len(snap.Groups.Groups); n != len(w.coordinator) {
					t.Errorf("%s: %d groups, want %d", when, n, len(w.coordinator))
				}
			}
			if hidden.Hits() == 0 {
				t.Fatal("the ListGroups fault never hid the group")
			}
			if fc != nil && fc.Hits() == 0 {
				t.Fatal("the FindCoordinator fault never answered")
			}
			if got := e.PollErrors(t, kafka.StageFindCoordinator); got != 0 {
				t.Errorf("poll_errors_total{stage=find_coordinator} = %v, want 0", got)
			}

			hidden.Remove()
			if fc != nil {
				fc.Remove()
			}
			moving.Store(false)
			awaitFresh(t, e, g)
			st, was := e.Store.Current().Rebalance[g], before.Rebalance[g]
			if st.Rebalances != was.Rebalances || len(st.History) != len(was.History) {
				t.Errorf("after the move: %d rebalances and %d events, want the %d and %d kept", st.Rebalances, len(st.History), was.Rebalances, len(was.History))
			}
		})
	}
}

// A group deleted once its members have left (kadm DeleteGroup, by the
// test) is absent from the very next poll's observation and from the
// rebalance statistics, after exactly one FindCoordinator request (its
// coordinator names itself: the group is gone, not moving), and is not
// asked about again at the following poll. The other groups stay fresh.
func TestVanishedGroupDeletedIsDropped(t *testing.T) {
	w := newFaultWorld(t, 12)
	victim := w.busiest()
	mine, others := w.on(victim)
	slices.Sort(mine)
	g := mine[0]
	others = append(others, mine[1:]...)
	e := kafkatest.NewExporter(t, kafkatest.Config(t, w.addrs, nil))
	e.Poll(t)
	joinAndLeave(t, w, e, g)
	if e.Store.Current().Groups.Groups[g] == nil {
		t.Fatalf("group %s not observed before its deletion", g)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := w.adm.DeleteGroup(ctx, g)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("delete group %s: %v", g, err)
	}

	fcBefore := apiRequests(t, e, "FindCoordinator")
	for poll := range 2 {
		when := fmt.Sprintf("poll %d after the deletion", poll)
		start := time.Now()
		if err := e.Poller.GroupsPoll(context.Background(), e.Store); err != nil {
			t.Errorf("%s: poll error %v", when, err)
		}
		snap := e.Store.Current()
		if got := snap.Groups.Groups[g]; got != nil {
			t.Errorf("%s: deleted group %s still observed: %+v", when, g, got)
		}
		if _, ok := snap.Rebalance[g]; ok {
			t.Errorf("%s: deleted group %s still in the rebalance statistics", when, g)
		}
		checkFresh(t, when, snap.Groups, start, others)
		if got := apiRequests(t, e, "FindCoordinator") - fcBefore; got != 1 {
			t.Errorf("%s: %v FindCoordinator requests since the deletion, want exactly 1", when, got)
		}
	}
}

// When more than 50 groups of one broker vanish at once (it gave up a
// __consumer_offsets partition holding them all), one poll sends at most 50
// FindCoordinator requests to that broker (maxCoordinatorLookups), and
// every one of its groups, asked or not, is kept unchanged; the other
// brokers' groups are fresh. Once the broker lists them again, all are
// fresh and the lookups stop.
func TestVanishedGroupsLookupsBounded(t *testing.T) {
	const bound = 50
	w := newFaultWorld(t, 12)
	victim := w.busiest()
	mine, _ := w.on(victim)
	for i := 0; len(mine) < bound+8; i++ {
		g := fmt.Sprintf("bulk-%03d", i)
		if w.c.CoordinatorFor(g) != victim {
			continue
		}
		w.commit(t, g, 5)
		w.coordinator[g] = victim
		mine = append(mine, g)
	}
	mine, others := w.on(victim)
	if len(mine) <= bound {
		t.Fatalf("broker %d coordinates %d groups, want more than %d", victim, len(mine), bound)
	}
	e := kafkatest.NewExporter(t, kafkatest.Config(t, w.addrs, nil))
	e.Poll(t)
	before := e.Store.Current()
	if n := len(before.Groups.Groups); n != len(w.coordinator) {
		t.Fatalf("%d groups observed, want %d", n, len(w.coordinator))
	}

	// One fault per group: a fault without a group would fail the whole
	// ListGroups request, and the broker would be down, not its groups
	// vanished.
	hidden := hideFromListGroups(w, mine...)
	fc := w.c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.FindCoordinator}, Nodes: []int32{victim}, Err: kerr.CoordinatorNotAvailable, Count: -1})
	for poll := range 3 {
		when := fmt.Sprintf("poll %d with %d groups vanished from broker %d", poll, len(mine), victim)
		fcBefore, hitsBefore := apiRequests(t, e, "FindCoordinator"), fc.Hits()
		start := time.Now()
		err := e.Poller.GroupsPoll(context.Background(), e.Store)
		if err != nil {
			t.Errorf("%s: poll error %v, want none (COORDINATOR_NOT_AVAILABLE is no error)", when, err)
		}
		if got := apiRequests(t, e, "FindCoordinator") - fcBefore; got != bound {
			t.Errorf("%s: %v FindCoordinator requests counted, want %d", when, got, bound)
		}
		if got := fc.Hits() - hitsBefore; got > bound || got == 0 {
			t.Errorf("%s: broker %d received %d FindCoordinator requests, want 1 to %d", when, victim, got, bound)
		}
		snap := e.Store.Current()
		for _, g := range mine {
			checkCarried(t, when, snap, before, g)
		}
		checkFresh(t, when, snap.Groups, start, others)
	}
	if hidden.Hits() == 0 {
		t.Fatal("the ListGroups fault never hid the groups")
	}

	hidden.Remove()
	fc.Remove()
	awaitFresh(t, e, mine...)
	fcBefore := apiRequests(t, e, "FindCoordinator")
	if err := e.Poller.GroupsPoll(context.Background(), e.Store); err != nil {
		t.Errorf("poll after recovery: %v", err)
	}
	if got := apiRequests(t, e, "FindCoordinator") - fcBefore; got != 0 {
		t.Errorf("%v FindCoordinator requests once every group is listed again, want 0", got)
	}
}

// A FindCoordinator that answers an error other than
// COORDINATOR_NOT_AVAILABLE (GROUP_AUTHORIZATION_FAILED) keeps the group
// as moving, unchanged, and is reported: the poll returns a StageError of
// stage find_coordinator naming the broker and the group, counted once per
// poll in poll_errors_total{stage="find_coordinator"}, and the denial in
// denied_total{resource="group"}.
func TestVanishedGroupFindCoordinatorErrorKeepsIt(t *testing.T) {
	w := newFaultWorld(t, 12)
	victim := w.busiest()
	mine, others := w.on(victim)
	slices.Sort(mine)
	g := mine[0]
	others = append(others, mine[1:]...)
	e := kafkatest.NewExporter(t, kafkatest.Config(t, w.addrs, nil))
	e.Poll(t)
	before := e.Store.Current()

	hidden := hideFromListGroups(w, g)
	fc := w.c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.FindCoordinator}, Group: g, Err: kerr.GroupAuthorizationFailed, Count: -1})
	for poll := range 2 {
		when := fmt.Sprintf("poll %d", poll)
		errsBefore := e.PollErrors(t, kafka.StageFindCoordinator)
		start := time.Now()
		err := e.Poller.GroupsPoll(context.Background(), e.Store)
		if n := len(kafka.StageErrors(err)); n != 1 {
			t.Errorf("%s: %d stage errors in %v, want only the find_coordinator one", when, n, err)
		}
		ses := stageErrors(err, kafka.StageFindCoordinator)
		if len(ses) != 1 || ses[0].Broker != victim || !strings.Contains(ses[0].Error(), g) ||
			!strings.Contains(ses[0].Error(), "authoriz") {
			t.Errorf("%s: poll error %v, want one find_coordinator error on broker %d naming group %s and the authorization failure", when, err, victim, g)
		}
		if got := e.PollErrors(t, kafka.StageFindCoordinator) - errsBefore; got != 1 {
			t.Errorf("%s: poll_errors_total{stage=find_coordinator} grew by %v, want 1", when, got)
		}
		snap := e.Store.Current()
		checkCarried(t, when, snap, before, g)
		checkFresh(t, when, snap.Groups, start, others)
	}
	if fc.Hits() == 0 || hidden.Hits() == 0 {
		t.Fatalf("faults not hit: FindCoordinator %d, ListGroups %d", fc.Hits(), hidden.Hits())
	}
	denied, _ := testkit.Collect(t, e.Poller.Metrics()).Get(kafka.SelfPrefix+"denied_total", "resource", "group")
	if denied < 2 {
		t.Errorf("denied_total{resource=group} = %v, want the 2 denied lookups", denied)
	}
}

// A transport error on FindCoordinator (the broker closes the connection)
// is reported as a find_coordinator StageError, and the broker's other
// vanished groups are not asked in that poll: one FindCoordinator request
// in all, and both groups kept unchanged. The next polls reconnect and
// ask again; once the broker lists the groups again they are fresh.
func TestVanishedGroupsFindCoordinatorTransportError(t *testing.T) {
	w := newFaultWorld(t, 12)
	victim := w.busiest()
	mine, others := w.on(victim)
	if len(mine) < 3 {
		t.Fatalf("broker %d coordinates %d groups, want 3", victim, len(mine))
	}
	slices.Sort(mine)
	gone := mine[:2]
	others = append(others, mine[2:]...)
	e := kafkatest.NewExporter(t, kafkatest.Config(t, w.addrs, nil))
	e.Poll(t)
	before := e.Store.Current()

	hidden := hideFromListGroups(w, gone...)
	var failing atomic.Bool
	var failed atomic.Int64
	failing.Store(true)
	w.c.ControlKey(kmsg.FindCoordinator.Int16(), func(kmsg.Request) (kmsg.Response, error, bool) {
		w.c.KeepControl()
		if failing.Load() && w.c.CurrentNode() == victim {
			failed.Add(1)
			return nil, fmt.Errorf("injected connection failure"), true
		}
		return nil, nil, false
	})
	for poll := range 3 {
		when := fmt.Sprintf("poll %d", poll)
		fcBefore := apiRequests(t, e, "FindCoordinator")
		start := time.Now()
		err := e.Poller.GroupsPoll(context.Background(), e.Store)
		if ses := stageErrors(err, kafka.StageListGroups); len(ses) > 0 {
			t.Errorf("%s: ListGroups failed (%v): the broker answered, only its groups vanished", when, err)
		}
		ses := stageErrors(err, kafka.StageFindCoordinator)
		if len(ses) != 1 || ses[0].Broker != victim || !strings.Contains(ses[0].Error(), fmt.Sprintf("%q", gone[0])) {
			t.Errorf("%s: poll error %v, want one find_coordinator error on broker %d for group %s", when, err, victim, gone[0])
		}
		if got := apiRequests(t, e, "FindCoordinator") - fcBefore; got != 1 {
			t.Errorf("%s: %v FindCoordinator requests, want 1 (none after the connection broke)", when, got)
		}
		snap := e.Store.Current()
		for _, g := range gone {
			checkCarried(t, when, snap, before, g)
		}
		checkFresh(t, when, snap.Groups, start, others)
	}
	if failed.Load() == 0 || hidden.Hits() == 0 {
		t.Fatalf("faults not hit: FindCoordinator %d, ListGroups %d", failed.Load(), hidden.Hits())
	}

	failing.Store(false)
	hidden.Remove()
	awaitFresh(t, e, gone...)
}
