package lagtimeit

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/kafkatest"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/lagtime"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/status"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/store"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/testkit"
)

// statusInterval is the poll interval of the status scenarios; with a
// window of 4 polls a verdict needs under a second.
const statusInterval = 250 * time.Millisecond

// statusExporter is an exporter that sees only one group and one topic,
// with a 4-poll status window and the given thresholds.
func statusExporter(t *testing.T, addrs []string, group, topic, stopAfter string, errLag int) *kafkatest.Exporter {
	return kafkatest.NewExporter(t, kafkatest.Config(t, addrs, map[string]string{
		"POLL_INTERVAL":     statusInterval.String(),
		"GROUP_INCLUDE":     group,
		"TOPIC_INCLUDE":     topic,
		"STATUS_WINDOW":     "4",
		"STATUS_STOP_AFTER": stopAfter,
		"STATUS_ERR_LAG":    fmt.Sprint(errLag),
	}))
}

func statusOf(s *store.Snapshot, group string) status.Result { return s.Status[group] }

func TestStatusFromRealConsumers(t *testing.T) {
	addrs := kafkatest.NewCluster(t).ListenAddrs()
	adm := kafkatest.Admin(t, addrs)

	t.Run("OK while keeping up, STOP once gone", func(t *testing.T) {
		const group, topic = "steady-consumers", "steady"
		kafkatest.CreateTopic(t, addrs, topic, 3)
		e := statusExporter(t, addrs, group, topic, "3s", 1000)
		d := newDriver(t, statusInterval, e)
		startProducer(t, addrs, topic, 3, 50)
		cons := startConsumer(t, addrs, group, topic, commitEveryPoll)

		d.pollUntil(10*time.Second, "OK while the group keeps up", statusIs(e, group, status.StatusOK))
		assertStatus(t, e, group, status.StatusOK)
		// Keep watching for two seconds (eight polls, two full windows):
		// a group that commits at every poll is never stuck or stopped.
		// WARN may show if its small lag happens to rise four polls in a
		// row, so it is counted, not forbidden.
		seen := map[string]int{}
		var lags []int64
		for range 8 {
			d.poll()
			r := statusOf(d.latest(0), group)
			seen[r.Status]++
			lags = append(lags, r.Lag)
			if r.Status != status.StatusOK && r.Status != status.StatusWarn {
				t.Fatalf("keeping-up group is %s (%s)", r.Status, r.Reason)
			}
		}
		t.Logf("keeping up, 8 polls: %v; group lag in records at each: %v", seen, lags)

		cons.stop()
		stoppedAt := time.Now()
		d.pollUntil(10*time.Second, "coordinator reports the group empty", groupState(adm, group, "Empty"))
		d.pollUntil(8*time.Second, "STOP after 3s without commits", statusIs(e, group, status.StatusStop))
		r := assertStatus(t, e, group, status.StatusStop)
		if r.Members != 0 || r.Lag <= 0 {
			t.Errorf("STOP with %d members and lag %d, want 0 members and lag > 0", r.Members, r.Lag)
		}

		// STOP must come at the first poll 3s or more after the last poll
		// that saw a commit move, not before.
		snaps := d.snaps[0]
		lastMove := lastCommitMove(snaps, group)
		for _, s := range snaps {
			if !s.Offsets.Time.After(lastMove) {
				continue
			}
			idle := s.Offsets.Time.Sub(lastMove)
			got := statusOf(s, group).Status
			if idle < 3*time.Second && got == status.StatusStop {
				t.Errorf("STOP after only %s without a commit", idle)
			}
			if idle >= 3*time.Second {
				if got != status.StatusStop {
					t.Errorf("%s without a commit: status %s, want STOP", idle, got)
				}
				t.Logf("member closed at %+v from the poll that saw its last commit movement; STOP at the first poll %s after that movement (statuses %v)",
					stoppedAt.Sub(lastMove).Round(time.Millisecond), idle.Round(time.Millisecond), sequence(snaps, group))
				break
			}
		}
	})

	t.Run("UNKNOWN then STALL then ERR for a member that never commits", func(t *testing.T) {
		const group, topic = "hung-consumers", "hung"
		kafkatest.CreateTopic(t, addrs, topic, 2)
		kafkatest.Produce(t, addrs, topic, []int32{0, 1}, 20)
		// The member commits the first 10 records of each partition, then
		// keeps fetching without ever committing again: connected, in the
		// group, and stuck at offset 10 with lag 10 per partition.
		startConsumer(t, addrs, group, topic, func(ctx context.Context, cl *kgo.Client, fs kgo.Fetches) {
			fs.EachRecord(func(r *kgo.Record) {
				if r.Offset < 10 {
					_ = cl.CommitRecords(ctx, r)
				}
			})
		})
		testkit.Eventually(t, 15*time.Second, 25*time.Millisecond, "the member committed 10 per partition and Stable", func() error {
			if err := atLeast(adm, group, topic, 2, 10)(); err != nil {
				return err
			}
			return groupState(adm, group, "Stable")()
		})

		e := statusExporter(t, addrs, group, topic, "1m", 50)
		d := newDriver(t, statusInterval, e)
		// A group seen for the first time with lag has no verdict yet.
		// One log end point dates nothing, but the records at offset 10
		// predate the history, so the poller reads their timestamps
		// (KRE_LAG_TIMESTAMP_READS_PER_POLL): lag in seconds from the
		// first poll.
		d.poll()
		r := assertStatus(t, e, group, status.StatusUnknown)
		if r.Lag != 20 {
			t.Errorf("lag %d, want 20", r.Lag)
		}
		if got := exposed(t, e).Family("kafka_consumergroup_lag_seconds"); len(got) != 2 {
			t.Errorf("lag seconds after one poll: %v, want both partitions", got)
		}
		d.poll()
		d.poll()
		assertStatus(t, e, group, status.StatusUnknown)
		// Fourth poll: the window is full and both partitions sat at
		// offset 10 with lag in all of it, while a member is present.
		d.poll()
		r = assertStatus(t, e, group, status.StatusStall)
		if r.Members != 1 {
			t.Errorf("STALL with %d members, want 1", r.Members)
		}
		d.poll()
		assertStatus(t, e, group, status.StatusStall)

		// 50 more records per partition: the member fetches them and still
		// commits nothing, so each partition's lag is 60 >= STATUS_ERR_LAG.
		kafkatest.Produce(t, addrs, topic, []int32{0, 1}, 50)
		d.poll()
		r = assertStatus(t, e, group, status.StatusErr)
		if r.Lag != 120 {
			t.Errorf("ERR with lag %d, want 120", r.Lag)
		}
		t.Logf("hung member: %v; ERR reason: %s", sequence(d.snaps[0], group), r.Reason)

		// The records at offset 10 predate the exporter's history: their
		// age is their timestamp's, read once and cached.
		snap := d.latest(0)
		gl, ok := snap.LagSeconds.Group(group)
		if !ok {
			t.Fatal("no lag in seconds once the log end has moved")
		}
		stamps := recordTimestamps(t, addrs, topic, map[int32]int64{0: 10, 1: 10})
		for _, pl := range gl.Partitions {
			truth := snap.Offsets.Time.Sub(stamps[pl.Partition]).Seconds()
			if pl.Method != lagtime.MethodExact || pl.Seconds != truth {
				t.Errorf("partition %d: %s %.3fs, want %s %.3fs (the record's age)", pl.Partition, pl.Method, pl.Seconds, lagtime.MethodExact, truth)
			}
		}
	})

	t.Run("REWIND on an admin reset backwards", func(t *testing.T) {
		const group, topic = "rewound-consumers", "rewound"
		kafkatest.CreateTopic(t, addrs, topic, 2)
		kafkatest.Produce(t, addrs, topic, []int32{0, 1}, 30)
		// A real sarama group drains the topic, commits 30 on each
		// partition and leaves.
		kafkatest.ConsumeAll(t, addrs, group, []string{topic})
		testkit.Eventually(t, 10*time.Second, 25*time.Millisecond, "the drained group Empty", groupState(adm, group, "Empty"))

		e := statusExporter(t, addrs, group, topic, "1m", 1000)
		d := newDriver(t, statusInterval, e)
		d.poll()
		assertStatus(t, e, group, status.StatusOK)
		d.poll()
		assertStatus(t, e, group, status.StatusOK)

		var to kadm.Offsets
		to.Add(kadm.Offset{Topic: topic, Partition: 0, At: 5, LeaderEpoch: -1})
		kafkatest.CommitOffsets(t, adm, group, to) // reset partition 0 to 5

		// The backwards step stays in the 4-poll window for this poll and
		// the next two; then the group is an empty one with a constant
		// lag of 25, which is OK (full window, not growing).
		var got []string
		for range 4 {
			d.poll()
			got = append(got, statusOf(d.latest(0), group).Status)
		}
		want := []string{status.StatusRewind, status.StatusRewind, status.StatusRewind, status.StatusOK}
		if !slices.Equal(got, want) {
			t.Fatalf("statuses after the reset %v, want %v", got, want)
		}
		d.poll()
		r := assertStatus(t, e, group, status.StatusOK)
		if r.Lag != 25 {
			t.Errorf("lag after the reset %d, want 25", r.Lag)
		}
		// Show REWIND once more through the exposition: reset again.
		to = nil
		to.Add(kadm.Offset{Topic: topic, Partition: 1, At: 0, LeaderEpoch: -1})
		kafkatest.CommitOffsets(t, adm, group, to) // reset partition 1 to 0
		d.poll()
		r = assertStatus(t, e, group, status.StatusRewind)
		t.Logf("REWIND reason: %s", r.Reason)
	})

	t.Run("WARN for a consumer slower than the producer", func(t *testing.T) {
		const group, topic = "slow-consumers", "slow"
		// One partition: the slow member's only partition moves at every
		// commit, so it is never stuck (which would be STALL instead).
		kafkatest.CreateTopic(t, addrs, topic, 1)
		e := statusExporter(t, addrs, group, topic, "1m", 1000000)
		d := newDriver(t, statusInterval, e)
		startProducer(t, addrs, topic, 1, 50)
		// The member handles 10 records a second and commits each one.
		pace := time.NewTicker(100 * time.Millisecond)
		t.Cleanup(pace.Stop)
		startConsumer(t, addrs, group, topic, func(ctx context.Context, cl *kgo.Client, fs kgo.Fetches) {
			fs.EachRecord(func(r *kgo.Record) {
				select {
				case <-ctx.Done():
					return
				case <-pace.C:
				}
				_ = cl.CommitRecords(ctx, r)
			})
		})

		d.pollUntil(10*time.Second, "WARN while lag grows", statusIs(e, group, status.StatusWarn))
		r := assertStatus(t, e, group, status.StatusWarn)
		window := d.snaps[0][len(d.snaps[0])-4:]
		first := window[0].Offsets.Committed[group][topic][0]
		last := window[3].Offsets.Committed[group][topic][0]
		if last <= first {
			t.Errorf("committed offset went from %d to %d over the window: the slow member should still be committing", first, last)
		}
		for _, s := range d.snaps[0] {
			if st := statusOf(s, group).Status; st != status.StatusUnknown && st != status.StatusOK && st != status.StatusWarn {
				t.Errorf("slow member was %s (%s)", st, statusOf(s, group).Reason)
			}
		}
		t.Logf("slow member: committed %d -> %d over the window; %s; sequence %v", first, last, r.Reason, sequence(d.snaps[0], group))
	})
}

// lastCommitMove is the time of the newest poll at which the group's
// committed offsets differed from the poll before.
func lastCommitMove(snaps []*store.Snapshot, group string) time.Time {
	var at time.Time
	for i := 1; i < len(snaps); i++ {
		if fmt.Sprint(snaps[i].Offsets.Committed[group]) != fmt.Sprint(snaps[i-1].Offsets.Committed[group]) {
			at = snaps[i].Offsets.Time
		}
	}
	return at
}

// sequence compresses the group's statuses over the polls into runs,
// e.g. [UNKNOWN×3 STALL×2].
func sequence(snaps []*store.Snapshot, group string) []string {
	var out []string
	var cur string
	n := 0
	for _, s := range snaps {
		st := statusOf(s, group).Status
		if st != cur && n > 0 {
			out = append(out, fmt.Sprintf("%s×%d", cur, n))
			n = 0
		}
		cur = st
		n++
	}
	if n > 0 {
		out = append(out, fmt.Sprintf("%s×%d", cur, n))
	}
	return out
}
