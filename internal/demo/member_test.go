package demo

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/kafkatest"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/testkit"
)

// leaveRecorder watches the cluster for explicit departures: classic
// LeaveGroup requests and KIP-848 heartbeats with member epoch -1.
type leaveRecorder struct {
	mu   sync.Mutex
	left map[string]bool // member ID -> sent a leave
}

func recordLeaves(c *Cluster) *leaveRecorder {
	r := &leaveRecorder{left: make(map[string]bool)}
	c.Fake().ControlKey(kmsg.LeaveGroup.Int16(), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.Fake().KeepControl()
		leave := req.(*kmsg.LeaveGroupRequest)
		r.mu.Lock()
		defer r.mu.Unlock()
		if leave.MemberID != "" {
			r.left[leave.MemberID] = true
		}
		for _, m := range leave.Members {
			r.left[m.MemberID] = true
		}
		return nil, nil, false
	})
	c.Fake().ControlKey(kmsg.ConsumerGroupHeartbeat.Int16(), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.Fake().KeepControl()
		hb := req.(*kmsg.ConsumerGroupHeartbeatRequest)
		if hb.MemberEpoch == -1 {
			r.mu.Lock()
			r.left[hb.MemberID] = true
			r.mu.Unlock()
		}
		return nil, nil, false
	})
	return r
}

func (r *leaveRecorder) sentLeave(memberID string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.left[memberID]
}

// bareWorkload has topics but runs no groups, so a test can start single
// members and watch exactly what they do.
func bareWorkload(t *testing.T, addrs []string) *Workload {
	t.Helper()
	opts := testWorkloadOptions()
	w := &Workload{
		opts:    opts.withDefaults(),
		log:     zerolog.Nop(),
		brokers: addrs,
		gens:    newGenerationTracker(),
	}
	if err := w.setup(reqCtx(t)); err != nil {
		t.Fatalf("setup: %v", err)
	}
	w.ctx, w.cancel = context.WithCancel(context.Background())
	t.Cleanup(w.Close)
	return w
}

type memberInfo struct {
	id       string
	assigned int // partitions currently assigned
}

// groupMembers returns a group's state and its members by client ID.
func groupMembers(ctx context.Context, adm *kadm.Client, group string, kip848 bool) (string, map[string]memberInfo, error) {
	members := make(map[string]memberInfo)
	if kip848 {
		described, err := adm.DescribeConsumerGroups(ctx, group)
		if err != nil {
			return "", nil, err
		}
		for _, m := range described[group].Members {
			n := 0
			for _, ps := range m.Assignment {
				n += len(ps)
			}
			members[m.ClientID] = memberInfo{id: m.MemberID, assigned: n}
		}
		return described[group].State, members, nil
	}
	described, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		return "", nil, err
	}
	for _, m := range described[group].Members {
		n := 0
		if a, ok := m.Assigned.AsConsumer(); ok {
			for _, t := range a.Topics {
				n += len(t.Partitions)
			}
		}
		members[m.ClientID] = memberInfo{id: m.MemberID, assigned: n}
	}
	return described[group].State, members, nil
}

// TestCrashLeavesNoGoodbye checks, for every client kind, that stop sends
// a leave and crash does not, and that the crashed member is still dropped
// once its session times out.
func TestCrashLeavesNoGoodbye(t *testing.T) {
	t.Parallel()
	cluster := startTestCluster(t)
	leaves := recordLeaves(cluster)
	w := bareWorkload(t, cluster.Addrs())
	adm := kafkatest.Admin(t, cluster.Addrs())

	kinds := []struct {
		name string
		spec memberSpec
	}{
		{"sarama-range", memberSpec{group: GroupChurnRange, kind: saramaRangeNoGeneration}},
		{"sarama-cooperative", memberSpec{group: GroupFast, kind: saramaCooperative}},
		{"kgo-classic", memberSpec{group: GroupChurnCoop, kind: kgoClassic}},
		{"kgo-848", memberSpec{group: GroupChurn848, kind: kgoConsumer848}},
	}
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			t.Parallel()
			is848 := k.spec.kind == kgoConsumer848
			crashed := w.startMember(k.spec)
			stopped := w.startMember(k.spec)

			// Crash only once both members own partitions: a cooperative
			// group is briefly Stable between its two rounds. kfake expires
			// members waiting in a join for their session timeout (Kafka
			// does not), so a crash mid-rebalance can take the survivor out
			// too; that is a kfake artefact, not what this test is about.
			var before map[string]memberInfo
			testkit.Eventually(t, 20*time.Second, pollEvery, "both members to own partitions in a Stable group", func() error {
				state, now, err := groupMembers(reqCtx(t), adm, k.spec.group, is848)
				if err != nil {
					return err
				}
				before = now
				if !(state == "Stable" && len(now) == 2 && now[crashed.clientID].assigned > 0 && now[stopped.clientID].assigned > 0) {
					return fmt.Errorf("%s %v", state, now)
				}
				return nil
			})

			crashed.crash()
			testkit.Eventually(t, 20*time.Second, pollEvery, "the crashed member to time out of the group", func() error {
				state, now, err := groupMembers(reqCtx(t), adm, k.spec.group, is848)
				if err != nil {
					return err
				}
				if _, present := now[crashed.clientID]; present {
					return fmt.Errorf("%s %v", state, now)
				}
				return nil
			})
			if crashedID := before[crashed.clientID].id; leaves.sentLeave(crashedID) {
				t.Fatalf("crashed member %s sent a leave", crashedID)
			}

			_, now, err := groupMembers(reqCtx(t), adm, k.spec.group, is848)
			if err != nil {
				t.Fatalf("describing %s: %v", k.spec.group, err)
			}
			survivor, ok := now[stopped.clientID]
			if !ok {
				t.Fatalf("the surviving member is not in the group: %v", now)
			}
			stopped.stop()
			if !leaves.sentLeave(survivor.id) {
				t.Fatalf("cleanly stopped member %s did not send a leave", survivor.id)
			}
		})
	}
}
