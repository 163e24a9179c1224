package kafka_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/kafka"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/kafkatest"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/testkit"
)

// hostileMember is a classic group member written with kmsg: it joins
// with the subscription metadata it is given (any size), hands every
// member an assignment of assignSize bytes when it leads, and heartbeats
// until ctx ends, rejoining whenever the group rebalances.
func hostileMember(ctx context.Context, t *testing.T, cl *kgo.Client, group string, metadata []byte, assignSize int) {
	memberID := ""
	for ctx.Err() == nil {
		join := kmsg.NewPtrJoinGroupRequest()
		join.Group, join.MemberID, join.ProtocolType = group, memberID, "consumer"
		join.SessionTimeoutMillis, join.RebalanceTimeoutMillis = 6000, 3000
		p := kmsg.NewJoinGroupRequestProtocol()
		p.Name, p.Metadata = "range", metadata
		join.Protocols = append(join.Protocols, p)
		jr, err := join.RequestWith(ctx, cl)
		if err != nil {
			continue
		}
		if jr.MemberID != "" {
			memberID = jr.MemberID
		}
		if jr.ErrorCode != 0 {
			continue // MEMBER_ID_REQUIRED, REBALANCE_IN_PROGRESS: join again
		}
		sync := kmsg.NewPtrSyncGroupRequest()
		sync.Group, sync.Generation, sync.MemberID = group, jr.Generation, memberID
		sync.ProtocolType, sync.Protocol = kmsg.StringPtr("consumer"), jr.Protocol
		if jr.LeaderID == memberID {
			for _, m := range jr.Members {
				a := kmsg.NewSyncGroupRequestGroupAssignment()
				a.MemberID = m.MemberID
				var ma kmsg.ConsumerMemberAssignment
				ma.UserData = bytes.Repeat([]byte{'a'}, assignSize)
				a.MemberAssignment = ma.AppendTo(nil)
				sync.GroupAssignment = append(sync.GroupAssignment, a)
			}
		}
		sr, err := sync.RequestWith(ctx, cl)
		if err != nil || sr.ErrorCode != 0 {
			continue
		}
		for ctx.Err() == nil {
			hb := kmsg.NewPtrHeartbeatRequest()
			hb.Group, hb.Generation, hb.MemberID = group, jr.Generation, memberID
			hr, err := hb.RequestWith(ctx, cl)
			if err == nil && hr.ErrorCode == kerr.RebalanceInProgress.Code {
				break
			}
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
}

// subscription is consumer protocol metadata of version 2 (KIP-792: it
// carries generation 7) padded with user data to about size bytes.
func subscription(size int) []byte {
	var m kmsg.ConsumerMemberMetadata
	m.Version, m.Topics, m.Generation = 2, []string{faultTopic}, 7
	m.UserData = bytes.Repeat([]byte{'m'}, size)
	return m.AppendTo(nil)
}

// startHostileGroup runs members hostile members in group and waits until
// the group is stable with all of them.
func startHostileGroup(t *testing.T, c *kfake.Cluster, addrs []string, group string, members, metaSize, assignSize int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	meta := subscription(metaSize)
	for range members {
		cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ClientID("hostile"),
			kgo.BrokerMaxWriteBytes(256<<20), kgo.BrokerMaxReadBytes(256<<20), kgo.RequestTimeoutOverhead(30*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		wg.Add(1)
		go func() { defer wg.Done(); hostileMember(ctx, t, cl, group, meta, assignSize) }()
	}
	wctx, wcancel := context.WithTimeout(ctx, 60*time.Second)
	defer wcancel()
	if _, err := c.WaitGroupStable(wctx, group, members); err != nil {
		t.Fatalf("hostile group %s not stable with %d members: %v", group, members, err)
	}
}

// Member metadata beyond the size bound is skipped and counted, and a
// group whose DescribeGroups response is above sarama's response limit
// (sarama.MaxResponseSize, 100 MiB; the case: 32 members × 4 MiB)
// fails alone: the other groups of the same coordinator, described in the
// same batch, stay fresh at every poll (staleness ≤ one poll interval).
//
// The limit is lowered to 8 MiB for the package (TestMain) so the test
// holds tens, not hundreds, of megabytes (sarama checks the length in the
// response header, before it reads the body, so the path is the same);
// KRE_TEST_FULL_SIZE=1 runs the 32 × 4 MiB against the real limit.
//
// The first poll pays for finding the huge group (the batch is asked again
// in halves, each a response kfake encodes in full), so the interval is
// 5 s, not the default 2 s, to hold under -race on a busy machine; later
// polls leave the huge group out (it is asked again once a minute).
func TestHostileMemberMetadata(t *testing.T) {
	hugeMembers, hugeSize := 4, 3<<20
	if fullSize {
		hugeMembers, hugeSize = 32, 4<<20
	}
	// One broker: every group has the same coordinator, and the huge
	// group shares its DescribeGroups batch with all the others.
	c := kafkatest.NewCluster(t, kfake.NumBrokers(1))
	addrs := c.ListenAddrs()
	kafkatest.CreateTopic(t, addrs, faultTopic, 6)
	kafkatest.Produce(t, addrs, faultTopic, []int32{0, 1, 2, 3, 4, 5}, 10)
	adm := kafkatest.Admin(t, addrs)
	var quiet []string
	for i := range 8 {
		g := fmt.Sprintf("quiet-%02d", i)
		var os kadm.Offsets
		for p := range int32(6) {
			os.AddOffset(faultTopic, p, 5, -1)
		}
		kafkatest.CommitOffsets(t, adm, g, os)
		quiet = append(quiet, g)
	}
	// big: two members whose metadata and assignment are above the
	// per-member bound, but whose response fits.
	startHostileGroup(t, c, addrs, "big", 2, 3<<19, 3<<19)
	// huge: a response above the limit.
	startHostileGroup(t, c, addrs, "huge", hugeMembers, hugeSize, 0)
	// normal: a member with a normal subscription (generation 7).
	startHostileGroup(t, c, addrs, "normal", 1, 64, 64)

	const interval = 5 * time.Second
	e := kafkatest.NewExporter(t, kafkatest.Config(t, addrs, map[string]string{"GROUP_POLL_INTERVAL": interval.String()}))
	skipped := func(reason string) float64 {
		v, _ := testkit.Collect(t, e.Poller.Metrics()).Get(kafka.SelfPrefix+"member_metadata_skipped_total", "reason", reason)
		return v
	}
	lastDescribes := 0.0
	for poll := range 3 {
		start := time.Now()
		err := e.Poller.GroupsPoll(context.Background(), e.Store)
		took := time.Since(start)
		if took > interval {
			t.Errorf("poll %d took %s, more than the interval %s", poll, took, interval)
		}
		t.Logf("poll %d: %s", poll, took.Round(time.Millisecond))
		if err == nil || !strings.Contains(err.Error(), `"huge"`) {
			t.Fatalf("poll %d: error %v does not name the huge group", poll, err)
		}
		if errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("poll %d: ran out of time: %v", poll, err)
		}
		snap := e.Store.Current().Groups
		for _, g := range append(append([]string{}, quiet...), "big", "normal") {
			got := snap.Groups[g]
			if got == nil {
				t.Fatalf("poll %d: group %s of the huge group's coordinator missing", poll, g)
			}
			if got.ObservedAt.Before(start) {
				t.Errorf("poll %d: group %s observed %s before the poll", poll, g, start.Sub(got.ObservedAt))
			}
		}
		if snap.Groups["huge"] != nil {
			t.Errorf("poll %d: the huge group is served though it could not be read", poll)
		}
		big := snap.Groups["big"]
		if len(big.Members) != 2 {
			t.Fatalf("poll %d: big has %d members, want 2 (exported without their metadata)", poll, len(big.Members))
		}
		for _, m := range big.Members {
			if m.Generation != -1 || m.Assignment != nil {
				t.Errorf("poll %d: big member %s decoded despite the bound: generation %d, assignment %v", poll, m.MemberID, m.Generation, m.Assignment)
			}
		}
		if n := snap.Groups["normal"]; len(n.Members) != 1 || n.Members[0].Generation != 7 {
			t.Errorf("poll %d: normal group %+v, want one member with generation 7", poll, n)
		}
		want := float64(2 * (poll + 1))
		if got := skipped("metadata_too_large"); got != want {
			t.Errorf("poll %d: metadata_too_large = %v, want %v", poll, got, want)
		}
		if got := skipped("assignment_too_large"); got != want {
			t.Errorf("poll %d: assignment_too_large = %v, want %v", poll, got, want)
		}
		// Found once, then not asked again for a minute: the later polls
		// send one DescribeGroups for everything else.
		if got := skipped("response_too_large"); got != 1 {
			t.Errorf("poll %d: response_too_large = %v, want 1", poll, got)
		}
		describes := apiRequests(t, e, "DescribeGroups")
		if poll > 0 && describes-lastDescribes != 1 {
			t.Errorf("poll %d sent %v DescribeGroups, want 1 (the huge group left out)", poll, describes-lastDescribes)
		}
		lastDescribes = describes
	}
	t.Logf("sarama.MaxResponseSize %d MiB; huge group %d members × %d MiB", sarama.MaxResponseSize>>20, hugeMembers, hugeSize>>20)
}
