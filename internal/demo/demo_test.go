package demo

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/testkit"
)

// eventually polls cond until it reports true or the deadline passes; cond
// also returns a description of what it last saw, for the failure message.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for {
		ok, seen := cond()
		if ok {
			return
		}
		last = seen
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s; last seen: %s", timeout, what, last)
		}
		time.Sleep(100 * time.Millisecond) // poll interval, not synchronisation
	}
}

func startTestCluster(t *testing.T, extra ...kfake.Opt) *Cluster {
	t.Helper()
	c, err := StartCluster(ClusterOptions{
		ConsumerSessionTimeout:    3 * time.Second,
		ConsumerHeartbeatInterval: 250 * time.Millisecond,
		ExtraOpts:                 extra,
	})
	if err != nil {
		t.Fatalf("StartCluster: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// testWorkloadOptions shortens every timer so a test sees several
// rebalances in seconds.
func testWorkloadOptions() WorkloadOptions {
	return WorkloadOptions{
		ProduceRate:    200,
		ChurnInterval:  2 * time.Second,
		StormInterval:  1500 * time.Millisecond,
		SessionTimeout: 4 * time.Second,
		IdleRecords:    20,
		Logger:         zerolog.Nop(),
	}
}

func runTestWorkload(t *testing.T, addrs []string, opts WorkloadOptions) *Workload {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w, err := RunWorkload(ctx, addrs, opts)
	if err != nil {
		cancel()
		t.Fatalf("RunWorkload: %v", err)
	}
	// Registered after the cluster's cleanup, so it runs before it.
	t.Cleanup(func() {
		w.Close()
		cancel()
	})
	return w
}

func newAdmin(t *testing.T, addrs []string) *kadm.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		t.Fatalf("admin client: %v", err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

func reqCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// groupLag sums end offset minus committed offset over every partition the
// group committed, and reports how many partitions that was.
func groupLag(ctx context.Context, adm *kadm.Client, group string) (lag int64, partitions int, err error) {
	committed, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return 0, 0, err
	}
	ends, err := adm.ListEndOffsets(ctx, GroupTopics(group)...)
	if err != nil {
		return 0, 0, err
	}
	committed.Each(func(o kadm.OffsetResponse) {
		if o.Err != nil || o.At < 0 {
			return
		}
		end, ok := ends.Lookup(o.Topic, o.Partition)
		if !ok || end.Err != nil {
			return
		}
		partitions++
		lag += end.Offset - o.At
	})
	return lag, partitions, nil
}

// listGroupTypes issues ListGroups v5 so the broker reports each group's
// type (classic or consumer).
func listGroupTypes(ctx context.Context, addrs []string) (map[string]string, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	req := kmsg.NewPtrListGroupsRequest()
	req.Version = 5
	types := make(map[string]string)
	for _, shard := range cl.RequestSharded(ctx, req) {
		if shard.Err != nil {
			return nil, shard.Err
		}
		for _, g := range shard.Resp.(*kmsg.ListGroupsResponse).Groups {
			types[g.Group] = g.GroupType
		}
	}
	return types, nil
}

// waitSettled waits until each group has exactly members members and is
// Stable as the broker sees it, and returns the generations the workload's
// clients report at that point: a baseline that later joins and leaves
// must move.
func waitSettled(t *testing.T, adm *kadm.Client, w *Workload, members int, groups ...string) map[string]int32 {
	t.Helper()
	var baseline map[string]int32
	eventually(t, 20*time.Second, fmt.Sprintf("%v to settle with %d members each", groups, members), func() (bool, string) {
		var seen []string
		ok := true
		for _, g := range groups {
			var state string
			var n int
			if g == GroupChurn848 {
				described, err := adm.DescribeConsumerGroups(reqCtx(t), g)
				if err != nil {
					return false, err.Error()
				}
				state, n = described[g].State, len(described[g].Members)
			} else {
				described, err := adm.DescribeGroups(reqCtx(t), g)
				if err != nil {
					return false, err.Error()
				}
				state, n = described[g].State, len(described[g].Members)
			}
			seen = append(seen, fmt.Sprintf("%s:%s/%d", g, state, n))
			if state != "Stable" || n != members {
				ok = false
			}
		}
		baseline = w.GroupGenerations()
		for _, g := range groups {
			if baseline[g] <= 0 {
				ok = false
			}
		}
		return ok, fmt.Sprintf("%v generations %v", seen, baseline)
	})
	return baseline
}

// waitAdvance waits until every group's client-reported generation is at
// least by above baseline.
func waitAdvance(t *testing.T, w *Workload, baseline map[string]int32, by int32, groups ...string) {
	t.Helper()
	eventually(t, 25*time.Second, fmt.Sprintf("%v to advance %d generations", groups, by), func() (bool, string) {
		now := w.GroupGenerations()
		for _, g := range groups {
			if now[g] < baseline[g]+by {
				return false, fmt.Sprintf("baseline %v, now %v", baseline, now)
			}
		}
		return true, ""
	})
}

func TestWorkloadShapesEveryGroup(t *testing.T) {
	t.Parallel()
	cluster := startTestCluster(t)
	w := runTestWorkload(t, cluster.Addrs(), testWorkloadOptions())
	adm := newAdmin(t, cluster.Addrs())

	if !w.KIP848() {
		t.Fatalf("kfake supports KIP-848 but the workload says it does not")
	}
	if got, want := strings.Join(w.Groups(), ","), strings.Join(GroupNames(), ","); got != want {
		t.Fatalf("Groups() = %s, want %s", got, want)
	}

	eventually(t, 20*time.Second, "every demo group to exist", func() (bool, string) {
		listed, err := adm.ListGroups(reqCtx(t))
		if err != nil {
			return false, err.Error()
		}
		for _, g := range GroupNames() {
			if _, ok := listed[g]; !ok {
				return false, fmt.Sprintf("listed %v", listed.Groups())
			}
		}
		return true, ""
	})

	eventually(t, 20*time.Second, "demo-slow lag to grow well past demo-fast's", func() (bool, string) {
		slowLag, slowParts, err := groupLag(reqCtx(t), adm, GroupSlow)
		if err != nil {
			return false, err.Error()
		}
		fastLag, fastParts, err := groupLag(reqCtx(t), adm, GroupFast)
		if err != nil {
			return false, err.Error()
		}
		seen := fmt.Sprintf("slow lag %d over %d partitions, fast lag %d over %d partitions", slowLag, slowParts, fastLag, fastParts)
		// Both committed on every partition they read, slow is clearly
		// behind, and fast is within a couple of commit intervals.
		return slowParts == 9 && fastParts == 11 && slowLag > 300 && fastLag < slowLag/2, seen
	})

	eventually(t, 20*time.Second, "demo-idle to be Empty with committed offsets and lag", func() (bool, string) {
		described, err := adm.DescribeGroups(reqCtx(t), GroupIdle)
		if err != nil {
			return false, err.Error()
		}
		state := described[GroupIdle].State
		lag, parts, err := groupLag(reqCtx(t), adm, GroupIdle)
		if err != nil {
			return false, err.Error()
		}
		return state == "Empty" && parts > 0 && lag > 0, fmt.Sprintf("state %q, lag %d over %d partitions", state, lag, parts)
	})

	// The classic groups' subscription metadata is what the exporter reads
	// generations from: range members must not send one, the others must.
	eventually(t, 20*time.Second, "classic members' subscription metadata versions", func() (bool, string) {
		described, err := adm.DescribeGroups(reqCtx(t), GroupChurnRange, GroupChurnCoop, GroupFast)
		if err != nil {
			return false, err.Error()
		}
		var seen []string
		ok := true
		for _, g := range []string{GroupChurnRange, GroupChurnCoop, GroupFast} {
			d := described[g]
			if len(d.Members) == 0 {
				ok = false
			}
			for _, m := range d.Members {
				meta, isConsumer := m.Join.AsConsumer()
				if !isConsumer {
					ok = false
					continue
				}
				seen = append(seen, fmt.Sprintf("%s:v%d", g, meta.Version))
				carriesGeneration := meta.Version >= 2
				if carriesGeneration != (g != GroupChurnRange) {
					ok = false
				}
			}
		}
		return ok, strings.Join(seen, " ")
	})

	types, err := listGroupTypes(reqCtx(t), cluster.Addrs())
	if err != nil {
		t.Fatalf("ListGroups v5: %v", err)
	}
	if types[GroupChurn848] != "consumer" || types[GroupChurnCoop] != "classic" || types[GroupFast] != "classic" {
		t.Fatalf("group types = %v; want %s consumer, the rest classic", types, GroupChurn848)
	}

	// Without churn a settled group stays put, and a cooperative join
	// alone moves at most two generations, so three means churn happened.
	baseline := waitSettled(t, adm, w, baseChurnMembers, ChurnGroupNames()...)
	waitAdvance(t, w, baseline, 3, ChurnGroupNames()...)
	if w.Produced() == 0 {
		t.Fatalf("no produced records were acknowledged")
	}
}

func TestStormSpeedsUpChurn(t *testing.T) {
	t.Parallel()
	cluster := startTestCluster(t)
	opts := testWorkloadOptions()
	opts.ChurnInterval = time.Hour // only the storm can make these groups rebalance
	w := runTestWorkload(t, cluster.Addrs(), opts)

	adm := newAdmin(t, cluster.Addrs())
	before := waitSettled(t, adm, w, baseChurnMembers, ChurnGroupNames()...)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stormDone := make(chan struct{})
	go func() {
		defer close(stormDone)
		w.Storm(ctx, 8*time.Second)
	}()
	waitAdvance(t, w, before, 3, ChurnGroupNames()...)
	<-stormDone
}

func TestWorkloadWithoutKIP848(t *testing.T) {
	t.Parallel()
	cluster := startTestCluster(t, kfake.MaxVersions(kversion.V2_8_0()))
	logs := &testkit.SyncBuffer{}
	opts := testWorkloadOptions()
	opts.Logger = zerolog.New(logs).Level(zerolog.WarnLevel)
	w := runTestWorkload(t, cluster.Addrs(), opts)
	adm := newAdmin(t, cluster.Addrs())

	if w.KIP848() {
		t.Fatalf("a 2.8 cluster cannot host KIP-848 groups, but the workload says it can")
	}
	for _, g := range w.Groups() {
		if g == GroupChurn848 {
			t.Fatalf("Groups() = %v still lists %s", w.Groups(), GroupChurn848)
		}
	}
	if !strings.Contains(logs.String(), `"level":"warn"`) || !strings.Contains(logs.String(), GroupChurn848) {
		t.Fatalf("expected a warning naming %s, logs: %s", GroupChurn848, logs.String())
	}

	eventually(t, 20*time.Second, "the classic groups to run and commit", func() (bool, string) {
		listed, err := adm.ListGroups(reqCtx(t))
		if err != nil {
			return false, err.Error()
		}
		if _, ok := listed[GroupChurn848]; ok {
			return false, "the KIP-848 group exists on a 2.8 cluster"
		}
		for _, g := range w.Groups() {
			if _, ok := listed[g]; !ok {
				return false, fmt.Sprintf("listed %v", listed.Groups())
			}
		}
		lag, parts, err := groupLag(reqCtx(t), adm, GroupSlow)
		if err != nil {
			return false, err.Error()
		}
		return parts > 0 && lag > 0, fmt.Sprintf("slow lag %d over %d partitions", lag, parts)
	})

	baseline := waitSettled(t, adm, w, baseChurnMembers, GroupChurnRange, GroupChurnCoop)
	waitAdvance(t, w, baseline, 3, GroupChurnRange, GroupChurnCoop)
}

// TestCancelThenCloseLeavesCleanly checks that ending the workload through
// its context makes every member leave: right after Close returns, no
// group has members left waiting for a session timeout.
func TestCancelThenCloseLeavesCleanly(t *testing.T) {
	t.Parallel()
	cluster := startTestCluster(t)
	opts := testWorkloadOptions()
	opts.CrashEvery = -1 // a crashed member would rightly linger until its session expires
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w, err := RunWorkload(ctx, cluster.Addrs(), opts)
	if err != nil {
		t.Fatalf("RunWorkload: %v", err)
	}
	t.Cleanup(w.Close)
	adm := newAdmin(t, cluster.Addrs())

	eventually(t, 20*time.Second, "every running group except demo-idle to have members", func() (bool, string) {
		listed, err := adm.ListGroups(reqCtx(t))
		if err != nil {
			return false, err.Error()
		}
		for _, g := range w.Groups() {
			state := listed[g].State
			if g != GroupIdle && (state == "" || state == "Empty") {
				return false, fmt.Sprintf("%s is %q", g, state)
			}
		}
		return true, ""
	})

	cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.Close()
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("Close did not return within 30s of the context being cancelled")
	}

	listed, err := adm.ListGroups(reqCtx(t))
	if err != nil {
		t.Fatalf("ListGroups: %v", err)
	}
	for _, g := range w.Groups() {
		if state := listed[g].State; state != "Empty" {
			t.Errorf("after Close, %s is %q, want Empty", g, state)
		}
	}
}
