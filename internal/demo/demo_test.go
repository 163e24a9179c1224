package demo

import (
	"context"
	"errors"
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

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/kafkatest"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/testkit"
)

// pollEvery is how often the tests look at the cluster while they wait.
const pollEvery = 100 * time.Millisecond

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
	testkit.Eventually(t, 20*time.Second, pollEvery, fmt.Sprintf("%v to settle with %d members each", groups, members), func() error {
		var seen []string
		ok := true
		for _, g := range groups {
			var state string
			var n int
			if g == GroupChurn848 {
				described, err := adm.DescribeConsumerGroups(reqCtx(t), g)
				if err != nil {
					return err
				}
				state, n = described[g].State, len(described[g].Members)
			} else {
				described, err := adm.DescribeGroups(reqCtx(t), g)
				if err != nil {
					return err
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
		if !ok {
			return fmt.Errorf("%v generations %v", seen, baseline)
		}
		return nil
	})
	return baseline
}

// waitAdvance waits until every group's client-reported generation is at
// least by above baseline.
func waitAdvance(t *testing.T, w *Workload, baseline map[string]int32, by int32, groups ...string) {
	t.Helper()
	testkit.Eventually(t, 25*time.Second, pollEvery, fmt.Sprintf("%v to advance %d generations", groups, by), func() error {
		now := w.GroupGenerations()
		for _, g := range groups {
			if now[g] < baseline[g]+by {
				return fmt.Errorf("baseline %v, now %v", baseline, now)
			}
		}
		return nil
	})
}

func TestWorkloadShapesEveryGroup(t *testing.T) {
	t.Parallel()
	cluster := startTestCluster(t)
	w := runTestWorkload(t, cluster.Addrs(), testWorkloadOptions())
	adm := kafkatest.Admin(t, cluster.Addrs())

	if !w.KIP848() {
		t.Fatalf("kfake supports KIP-848 but the workload says it does not")
	}
	if got, want := strings.Join(w.Groups(), ","), strings.Join(GroupNames(), ","); got != want {
		t.Fatalf("Groups() = %s, want %s", got, want)
	}

	testkit.Eventually(t, 20*time.Second, pollEvery, "every demo group to exist", func() error {
		listed, err := adm.ListGroups(reqCtx(t))
		if err != nil {
			return err
		}
		for _, g := range GroupNames() {
			if _, ok := listed[g]; !ok {
				return fmt.Errorf("listed %v", listed.Groups())
			}
		}
		return nil
	})

	testkit.Eventually(t, 20*time.Second, pollEvery, "demo-slow lag to grow well past demo-fast's", func() error {
		slowLag, slowParts, err := groupLag(reqCtx(t), adm, GroupSlow)
		if err != nil {
			return err
		}
		fastLag, fastParts, err := groupLag(reqCtx(t), adm, GroupFast)
		if err != nil {
			return err
		}
		// Both committed on every partition they read, slow is clearly
		// behind, and fast is within a couple of commit intervals.
		if !(slowParts == 9 && fastParts == 11 && slowLag > 300 && fastLag < slowLag/2) {
			return fmt.Errorf("slow lag %d over %d partitions, fast lag %d over %d partitions", slowLag, slowParts, fastLag, fastParts)
		}
		return nil
	})

	testkit.Eventually(t, 20*time.Second, pollEvery, "demo-idle to be Empty with committed offsets and lag", func() error {
		described, err := adm.DescribeGroups(reqCtx(t), GroupIdle)
		if err != nil {
			return err
		}
		state := described[GroupIdle].State
		lag, parts, err := groupLag(reqCtx(t), adm, GroupIdle)
		if err != nil {
			return err
		}
		if !(state == "Empty" && parts > 0 && lag > 0) {
			return fmt.Errorf("state %q, lag %d over %d partitions", state, lag, parts)
		}
		return nil
	})

	// The classic groups' subscription metadata is what the exporter reads
	// generations from: range members must not send one, the others must.
	testkit.Eventually(t, 20*time.Second, pollEvery, "classic members' subscription metadata versions", func() error {
		described, err := adm.DescribeGroups(reqCtx(t), GroupChurnRange, GroupChurnCoop, GroupFast)
		if err != nil {
			return err
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
		if !ok {
			return errors.New(strings.Join(seen, " "))
		}
		return nil
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

	adm := kafkatest.Admin(t, cluster.Addrs())
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
	adm := kafkatest.Admin(t, cluster.Addrs())

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

	testkit.Eventually(t, 20*time.Second, pollEvery, "the classic groups to run and commit", func() error {
		listed, err := adm.ListGroups(reqCtx(t))
		if err != nil {
			return err
		}
		if _, ok := listed[GroupChurn848]; ok {
			return errors.New("the KIP-848 group exists on a 2.8 cluster")
		}
		for _, g := range w.Groups() {
			if _, ok := listed[g]; !ok {
				return fmt.Errorf("listed %v", listed.Groups())
			}
		}
		lag, parts, err := groupLag(reqCtx(t), adm, GroupSlow)
		if err != nil {
			return err
		}
		if !(parts > 0 && lag > 0) {
			return fmt.Errorf("slow lag %d over %d partitions", lag, parts)
		}
		return nil
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
	adm := kafkatest.Admin(t, cluster.Addrs())

	testkit.Eventually(t, 20*time.Second, pollEvery, "every running group except demo-idle to have members", func() error {
		listed, err := adm.ListGroups(reqCtx(t))
		if err != nil {
			return err
		}
		for _, g := range w.Groups() {
			state := listed[g].State
			if g != GroupIdle && (state == "" || state == "Empty") {
				return fmt.Errorf("%s is %q", g, state)
			}
		}
		return nil
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
