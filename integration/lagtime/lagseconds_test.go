package lagtimeit

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/kafkatest"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/lagtime"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/store"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/testkit"
)

func TestLagSecondsMatchesRecordAge(t *testing.T) {
	checkLagSeconds(t)
}

func TestLagSecondsMatchesRecordAgeOnKafka28(t *testing.T) {
	checkLagSeconds(t, kfake.MaxVersions(kversion.V2_8_0()))
}

// checkLagSeconds runs a producer at a steady rate and a group that keeps
// up, then stops the group for a known time while production goes on,
// and compares the lag in seconds of an estimating exporter and of an
// exact one (LAG_EXACT) with the truth: the age, at the exporter's poll,
// of the record at each partition's committed offset.
func checkLagSeconds(t *testing.T, opts ...kfake.Opt) {
	const (
		topic      = "lag-events"
		group      = "lag-consumers"
		partitions = 3
		perSecond  = 50
		interval   = 500 * time.Millisecond
		stopped    = 7 * time.Second
	)
	addrs := kafkatest.NewCluster(t, opts...).ListenAddrs()
	kafkatest.CreateTopic(t, addrs, topic, partitions)
	adm := kafkatest.Admin(t, addrs)

	env := map[string]string{"POLL_INTERVAL": interval.String(), "GROUP_INCLUDE": group, "TOPIC_INCLUDE": topic, "LAG_EXACT": "false"}
	estimating := kafkatest.NewExporter(t, kafkatest.Config(t, addrs, env))
	env["LAG_EXACT"] = "true"
	exact := kafkatest.NewExporter(t, kafkatest.Config(t, addrs, env))
	d := newDriver(t, interval, estimating, exact)

	// The exporters' history starts before the first record, so every
	// committed offset is dated by interpolation between two polls.
	d.poll()
	prod := startProducer(t, addrs, topic, partitions, perSecond)
	cons := startConsumer(t, addrs, group, topic, commitEveryPoll)
	d.pollUntil(15*time.Second, "group commits on every partition", atLeast(adm, group, topic, partitions, 30))

	cons.stop()
	stoppedAt := time.Now()
	d.pollUntil(10*time.Second, "group empty after its member left", groupState(adm, group, "Empty"))
	d.pollFor(stopped - time.Since(stoppedAt))
	prod.stop(t)
	acked, maxAck := prod.stats()

	want, err := committed(adm, group, topic)
	if err != nil {
		t.Fatal(err)
	}
	if len(want) != partitions {
		t.Fatalf("committed offsets %v, want %d partitions", want, partitions)
	}
	stamps := recordTimestamps(t, addrs, topic, want)
	t.Logf("%d records produced at %d/s, largest timestamp-to-ack delay %s; committed offsets %v; group stopped %s before the last poll",
		acked, perSecond, maxAck, want, d.latest(0).Offsets.Time.Sub(stoppedAt).Round(time.Millisecond))

	type figures struct{ truth, got, err float64 }
	results := make([]map[int32]figures, len(d.exporters))
	for i, name := range []string{"estimate", "exact"} {
		snap := d.latest(i)
		now := snap.Offsets.Time
		gl, ok := snap.LagSeconds.Group(group)
		if !ok {
			t.Fatalf("%s: no lag in seconds for %s", name, group)
		}
		series := exposed(t, d.exporters[i])
		if v, _ := series.Get("kafka_consumergroup_max_lag_seconds", "consumergroup", group); v != gl.MaxSeconds {
			t.Errorf("%s: exposed max lag seconds %v, snapshot %v", name, v, gl.MaxSeconds)
		}
		results[i] = map[int32]figures{}
		maxTruth := 0.0
		for p := int32(0); p < partitions; p++ {
			if c := snap.Offsets.Committed[group][topic][p]; c != want[p] {
				t.Fatalf("%s: exporter saw committed offset %d on partition %d, broker says %d", name, c, p, want[p])
			}
			pl, ok := gl.Partition(topic, p)
			if !ok {
				t.Fatalf("%s: no lag in seconds for partition %d", name, p)
			}
			key := testkit.Key("kafka_consumergroup_lag_seconds", "consumergroup", group, "partition", fmt.Sprint(p), "topic", topic)
			if v, ok := series[key]; !ok || v != pl.Seconds {
				t.Errorf("%s: exposed %s = %v (present %v), snapshot %v", name, key, v, ok, pl.Seconds)
			}
			truth := now.Sub(stamps[p]).Seconds()
			maxTruth = max(maxTruth, truth)
			f := figures{truth: truth, got: pl.Seconds, err: pl.Seconds - truth}
			results[i][p] = f

			switch name {
			case "estimate":
				if pl.Method != lagtime.MethodInterpolated {
					t.Errorf("estimate: partition %d method %s, want %s", p, pl.Method, lagtime.MethodInterpolated)
				}
				gap, readDur, ok := bracket(d.snaps[i], d.took[i], topic, p, want[p])
				if !ok {
					t.Fatalf("estimate: no two polls bracket the append of offset %d on partition %d", want[p], p)
				}
				ack, ok := prod.ackDelay(p, want[p])
				if !ok {
					t.Fatalf("no acknowledgement recorded for offset %d of partition %d", want[p], p)
				}
				// The estimate dates record C between the last poll that
				// read a log end <= C and the first that read one > C: off
				// by at most the gap between them, plus the earlier poll's
				// duration (its time is taken after the offsets were read),
				// plus how much later than its timestamp the record was
				// appended (at most its acknowledgement delay), plus the
				// timestamp's millisecond truncation.
				tolerance := readDur + ack + time.Millisecond
				bound := max(gap, interval) + tolerance
				t.Logf("estimate partition %d: committed %d, truth %.3fs, estimate %.3fs, error %+.3fs; bracketing polls %s apart, bound %s (tolerance %s: poll %s + ack %s + 1ms)",
					p, want[p], truth, pl.Seconds, f.err, gap.Round(time.Millisecond), bound.Round(time.Millisecond), tolerance.Round(time.Millisecond),
					readDur.Round(time.Millisecond), ack.Round(time.Millisecond))
				if math.Abs(f.err) > bound.Seconds() {
					t.Errorf("estimate partition %d: |error| %.3fs > bound %s", p, math.Abs(f.err), bound)
				}
			case "exact":
				if pl.Method != lagtime.MethodExact {
					t.Errorf("exact: partition %d method %s, want %s", p, pl.Method, lagtime.MethodExact)
				}
				t.Logf("exact partition %d: committed %d, truth %.3fs, exact %.3fs, error %+.4fs", p, want[p], truth, pl.Seconds, f.err)
				// Same record, same timestamp, same clock reading: only
				// float rounding may differ.
				if math.Abs(f.err) > 1e-6 {
					t.Errorf("exact partition %d: error %+.6fs, want 0", p, f.err)
				}
			}
		}
		if math.Abs(gl.MaxSeconds-maxTruth) > 1.5*interval.Seconds() {
			t.Errorf("%s: max lag seconds %.3f, truth %.3f", name, gl.MaxSeconds, maxTruth)
		}
		// The group was stopped for `stopped`: its oldest unconsumed record
		// cannot be younger than that, minus the lag it had when it
		// stopped (it kept up, so well under a poll interval).
		if maxTruth < (stopped - interval).Seconds() {
			t.Errorf("%s: truth %.3fs is shorter than the %s the group was stopped", name, maxTruth, stopped)
		}
	}
	worst := 0.0
	for p := int32(0); p < partitions; p++ {
		est, ex := results[0][p], results[1][p]
		worst = max(worst, math.Abs(est.err))
		t.Logf("partition %d: estimate - exact = %+.3fs (estimate error %+.3fs, exact error %+.4fs; exact polled %s after estimate)",
			p, est.got-ex.got, est.err, ex.err, d.latest(1).Offsets.Time.Sub(d.latest(0).Offsets.Time).Round(time.Millisecond))
	}
	t.Logf("largest estimate error %.3fs at a %s poll interval over %d polls", worst, interval, len(d.snaps[0]))
}

// bracket finds, in one exporter's polls, the last that read a log end
// <= committed and the first that read one > committed, and returns the
// time between them and the earlier poll's offsets duration.
func bracket(snaps []*store.Snapshot, took []time.Duration, topic string, partition int32, committed int64) (gap, readDur time.Duration, ok bool) {
	var before, after *store.Snapshot
	beforeIdx := -1
	for i, s := range snaps {
		t := s.Offsets.Topics[topic]
		if t == nil {
			continue
		}
		end := t.Partitions[partition].Newest
		if end <= committed {
			before, beforeIdx = s, i
		} else if after == nil {
			after = s
		}
	}
	if before == nil || after == nil {
		return 0, 0, false
	}
	return after.Offsets.Time.Sub(before.Offsets.Time), took[beforeIdx], true
}
