package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/kafka"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/kafkatest"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/testkit"
)

// faultWorld is a three-broker cluster with a 6-partition topic and
// groups committed on it, spread over the coordinators.
type faultWorld struct {
	c           *kfake.Cluster
	addrs       []string
	adm         *kadm.Client
	coordinator map[string]int32
}

const faultTopic = "orders"

func newFaultWorld(t *testing.T, groups int) *faultWorld {
	c := kafkatest.NewCluster(t)
	w := &faultWorld{c: c, addrs: c.ListenAddrs(), coordinator: map[string]int32{}}
	kafkatest.CreateTopic(t, w.addrs, faultTopic, 6)
	kafkatest.Produce(t, w.addrs, faultTopic, []int32{0, 1, 2, 3, 4, 5}, 10)
	w.adm = kafkatest.Admin(t, w.addrs)
	for i := range groups {
		g := fmt.Sprintf("group-%02d", i)
		w.commit(t, g, 5)
		w.coordinator[g] = c.CoordinatorFor(g)
	}
	return w
}

func (w *faultWorld) commit(t *testing.T, group string, at int64) {
	t.Helper()
	var os kadm.Offsets
	for p := range int32(6) {
		os.AddOffset(faultTopic, p, at, -1)
	}
	kafkatest.CommitOffsets(t, w.adm, group, os)
}

// on returns the groups broker id coordinates, and the others.
func (w *faultWorld) on(id int32) (mine, others []string) {
	for g, c := range w.coordinator {
		if c == id {
			mine = append(mine, g)
		} else {
			others = append(others, g)
		}
	}
	return mine, others
}

// busiest is the broker coordinating the most groups.
func (w *faultWorld) busiest() int32 {
	n := map[int32]int{}
	best := int32(-1)
	for _, c := range w.coordinator {
		n[c]++
		if best < 0 || n[c] > n[best] {
			best = c
		}
	}
	return best
}

// A broker that hangs on DescribeGroups delays only the groups it
// coordinates: every groups poll still ends within about its interval, the
// other brokers' groups are fresh at each poll, and the hung broker's
// groups keep the time they were last observed, until it answers again.
func TestHungBrokerDelaysOnlyItsGroups(t *testing.T) {
	w := newFaultWorld(t, 12)
	victim := w.busiest()
	mine, others := w.on(victim)
	if len(mine) == 0 || len(others) == 0 {
		t.Fatalf("groups not spread: %v", w.coordinator)
	}
	const interval = 400 * time.Millisecond
	e := kafkatest.NewExporter(t, kafkatest.Config(t, w.addrs, map[string]string{
		"GROUP_POLL_INTERVAL": interval.String(), "REQUEST_TIMEOUT": "20s"}))
	e.Poll(t)
	before := e.Store.Current().Groups

	var hang atomic.Bool
	release := make(chan struct{})
	hang.Store(true)
	w.c.ControlKey(kmsg.DescribeGroups.Int16(), func(kmsg.Request) (kmsg.Response, error, bool) {
		w.c.KeepControl()
		if hang.Load() && w.c.CurrentNode() == victim {
			w.c.SleepControl(func() { <-release })
		}
		return nil, nil, false
	})
	defer func() {
		if hang.CompareAndSwap(true, false) {
			close(release)
		}
	}()

	ctx := context.Background()
	for poll := range 5 {
		start := time.Now()
		err := e.Poller.GroupsPoll(ctx, e.Store)
		took := time.Since(start)
		if took > interval+time.Second {
			t.Fatalf("poll %d took %s with one broker hung; the interval is %s", poll, took, interval)
		}
		var se *kafka.StageError
		if !errors.As(err, &se) || !strings.Contains(err.Error(), fmt.Sprintf("broker %d", victim)) {
			t.Fatalf("poll %d: error %v does not name the hung broker %d", poll, err, victim)
		}
		snap := e.Store.Current().Groups
		for _, g := range others {
			if at := snap.Groups[g].ObservedAt; at.Before(start) {
				t.Errorf("poll %d: group %s of a healthy broker observed %s before the poll", poll, g, start.Sub(at))
			}
		}
		for _, g := range mine {
			if got, was := snap.Groups[g], before.Groups[g]; got == nil || !got.ObservedAt.Equal(was.ObservedAt) {
				t.Errorf("poll %d: group %s of the hung broker: %+v, want it carried with its old observation time", poll, g, got)
			}
		}
	}
	hang.Store(false)
	close(release)
	testkit.Eventually(t, 20*time.Second, 50*time.Millisecond, "the hung broker's groups fresh again", func() error {
		start := time.Now()
		_ = e.Poller.GroupsPoll(ctx, e.Store)
		for _, g := range mine {
			if at := e.Store.Current().Groups.Groups[g].ObservedAt; at.Before(start) {
				return fmt.Errorf("group %s observed %s before the poll", g, start.Sub(at))
			}
		}
		return nil
	})
}

// A group whose description fails keeps its previous state alone: the
// other groups of its coordinator are fresh, a new group there is seen,
// and an authorization failure is counted as denied.
func TestGroupErrorAffectsOnlyThatGroup(t *testing.T) {
	w := newFaultWorld(t, 12)
	victim := w.busiest()
	mine, _ := w.on(victim)
	if len(mine) < 2 {
		t.Fatalf("broker %d coordinates %d groups, want 2", victim, len(mine))
	}
	bad, good := mine[0], mine[1]
	e := kafkatest.NewExporter(t, kafkatest.Config(t, w.addrs, nil))
	e.Poll(t)
	before := e.Store.Current().Groups

	for _, fault := range []*kerr.Error{kerr.CoordinatorNotAvailable, kerr.NotCoordinator, kerr.GroupAuthorizationFailed} {
		h := w.c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.DescribeGroups}, Group: bad, Err: fault, Count: -1})
		// A group created on the same coordinator while the fault lasts.
		var fresh string
		for i := 0; fresh == ""; i++ {
			if g := fmt.Sprintf("new-%s-%d", fault.Message, i); w.c.CoordinatorFor(g) == victim {
				fresh = g
			}
		}
		w.commit(t, fresh, 1)

		start := time.Now()
		err := e.Poller.GroupsPoll(context.Background(), e.Store)
		if err == nil || !strings.Contains(err.Error(), bad) {
			t.Fatalf("%s: poll error %v does not name group %s", fault.Message, err, bad)
		}
		snap := e.Store.Current().Groups
		if snap.Groups[bad] != before.Groups[bad] {
			t.Errorf("%s: the failing group was not carried forward unchanged", fault.Message)
		}
		if at := snap.Groups[good].ObservedAt; at.Before(start) {
			t.Errorf("%s: group %s of the same coordinator not fresh", fault.Message, good)
		}
		if snap.Groups[fresh] == nil {
			t.Errorf("%s: new group %s on the same coordinator not seen", fault.Message, fresh)
		}
		h.Remove()
	}
	denied, _ := testkit.Collect(t, e.Poller.Metrics()).Get(kafka.SelfPrefix+"denied_total", "resource", "group")
	if denied < 1 {
		t.Errorf("GROUP_AUTHORIZATION_FAILED not counted as denied: %v", denied)
	}
}

// A connection error on OffsetFetch does not take the same broker's
// ListOffsets down with it: the partitions it leads still have log ends in
// the same poll.
func TestOffsetFetchFailureKeepsLogOffsets(t *testing.T) {
	w := newFaultWorld(t, 12)
	// The victim both coordinates groups and leads partitions.
	victim := int32(-1)
	for p := range int32(6) {
		if l := w.c.LeaderFor(faultTopic, p); len(first(w.on(l))) > 0 {
			victim = l
			break
		}
	}
	if victim < 0 {
		t.Fatalf("no broker both leads a partition of %s and coordinates a group: %v", faultTopic, w.coordinator)
	}
	e := kafkatest.NewExporter(t, kafkatest.Config(t, w.addrs, nil))
	e.Poll(t)
	var failing atomic.Bool
	failing.Store(true)
	w.c.ControlKey(kmsg.OffsetFetch.Int16(), func(kmsg.Request) (kmsg.Response, error, bool) {
		w.c.KeepControl()
		if failing.Load() && w.c.CurrentNode() == victim {
			return nil, errors.New("injected connection failure"), true
		}
		return nil, nil, false
	})
	err := e.TryPoll()
	if err == nil || !strings.Contains(err.Error(), "offset_fetch") {
		t.Fatalf("poll error %v does not report the failed OffsetFetch", err)
	}
	offs := e.Store.Current().Offsets
	for p, part := range offs.Topics[faultTopic].Partitions {
		if part.Newest != 10 {
			t.Errorf("partition %d (leader %d) has log end %d after the OffsetFetch failure, want 10", p, part.Leader, part.Newest)
		}
	}
	mine, _ := w.on(victim)
	for _, g := range mine {
		if offs.Committed[g][faultTopic][0] != 5 {
			t.Errorf("group %s lost its carried commits: %v", g, offs.Committed[g])
		}
	}
	failing.Store(false)
}

// Groups no broker has answered for KRE_STALE_AFTER are dropped, not
// served forever.
func TestStaleGroupsAreDropped(t *testing.T) {
	w := newFaultWorld(t, 12)
	victim := w.busiest()
	mine, others := w.on(victim)
	e := kafkatest.NewExporter(t, kafkatest.Config(t, w.addrs, map[string]string{"STALE_AFTER": "1s"}))
	e.Poll(t)
	w.c.ControlKey(kmsg.ListGroups.Int16(), func(kmsg.Request) (kmsg.Response, error, bool) {
		w.c.KeepControl()
		if w.c.CurrentNode() == victim {
			return nil, errors.New("injected failure"), true
		}
		return nil, nil, false
	})
	observed := e.Store.Current().Groups.Groups[mine[0]].ObservedAt
	_ = e.TryPoll()
	if e.Store.Current().Groups.Groups[mine[0]] == nil && time.Since(observed) < time.Second {
		t.Fatal("a group dropped before KRE_STALE_AFTER")
	}
	testkit.Eventually(t, 20*time.Second, 100*time.Millisecond, "the failing coordinator's groups dropped", func() error {
		_ = e.TryPoll()
		for _, g := range mine {
			if e.Store.Current().Groups.Groups[g] != nil {
				return fmt.Errorf("group %s still served %s after it was last observed", g, time.Since(observed))
			}
		}
		return nil
	})
	if took := time.Since(observed); took < time.Second {
		t.Fatalf("groups dropped %s after their last observation, before KRE_STALE_AFTER (1s)", took)
	}
	for _, g := range others {
		if e.Store.Current().Groups.Groups[g] == nil {
			t.Errorf("healthy group %s dropped", g)
		}
	}
}

// first returns the first result of faultWorld.on.
func first(mine, _ []string) []string { return mine }
