package lagtimeit

import (
	"context"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/cluster"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/kafkatest"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/lagtime"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/store"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/testkit"
)

// TestLagSecondsSparseWorld is issue 10's world in small: a backlog
// written in two bursts before the exporter starts, groups committed far
// behind in it (by an admin and by a real consumer that stopped), then
// sparse production with long silences while three exporters poll:
//
//   - "default": the default settings, which read the timestamps of the
//     records older than the history (KRE_LAG_TIMESTAMP_READS_PER_POLL
//     1000);
//   - "budget": the same with 8 reads per poll, so most values start as
//     interpolations between read timestamps or lower bounds;
//   - "off": no reads (KRE_LAG_TIMESTAMP_READS_PER_POLL=0): lower bounds.
//
// Near the end some groups commit inside the history, so their values
// are interpolated. Truth is the timestamp of the record at each committed
// offset, read back from the topic. No value may exceed the world's age;
// exact values must equal the truth, interpolated ones be within the
// bracketing polls' gap (plus the poll's duration and the record's
// timestamp-to-ack delay), and lower bounds never above the truth. The
// error figures are logged.
func TestLagSecondsSparseWorld(t *testing.T) {
	const (
		topic      = "sparse-events"
		prefix     = "sparse-"
		partitions = 4
		groups     = 24
		interval   = 500 * time.Millisecond
	)
	addrs := kafkatest.NewCluster(t).ListenAddrs()
	kafkatest.CreateTopic(t, addrs, topic, partitions)
	adm := kafkatest.Admin(t, addrs)
	rng := rand.New(rand.NewPCG(10, 4))
	w := newBurster(t, addrs, topic)

	// The world: 200 records per partition in a burst, 2 s of silence,
	// 300 more.
	// Record timestamps are milliseconds: the world began at this one.
	worldStart := time.Now().Truncate(time.Millisecond)
	w.burst(t, partitions, 200)
	time.Sleep(2 * time.Second) // the silence is part of the world, not synchronisation
	w.burst(t, partitions, 300)

	// A real consumer reads from the start, commits the first 150 records
	// of every partition and stops; the admin commits the other groups at
	// random offsets of the backlog, the same offset on every partition for
	// half of them.
	stuck := prefix + "stuck-consumer"
	c := startConsumer(t, addrs, stuck, topic, func(ctx context.Context, cl *kgo.Client, fs kgo.Fetches) {
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset < 150 {
				_ = cl.CommitRecords(ctx, r)
			}
		})
	})
	testkit.Eventually(t, 20*time.Second, 25*time.Millisecond, "the consumer committed 150 per partition",
		atLeast(adm, stuck, topic, partitions, 150))
	c.stop()
	commits := map[string]map[int32]int64{}
	for g := range groups {
		name := fmt.Sprintf("%sgroup-%02d", prefix, g)
		commits[name] = map[int32]int64{}
		same := rng.Int64N(500)
		var os kadm.Offsets
		for p := range int32(partitions) {
			at := same
			if g%2 == 1 {
				at = rng.Int64N(500)
			}
			commits[name][p] = at
			os.AddOffset(topic, p, at, -1)
		}
		kafkatest.CommitOffsets(t, adm, name, os)
	}

	env := func(reads string) map[string]string {
		e := map[string]string{"POLL_INTERVAL": interval.String(), "GROUP_INCLUDE": prefix + ".*", "TOPIC_INCLUDE": topic}
		if reads != "" {
			e["LAG_TIMESTAMP_READS_PER_POLL"] = reads
		}
		return e
	}
	names := []string{"default", "budget", "off"}
	exporters := []*kafkatest.Exporter{
		kafkatest.NewExporter(t, kafkatest.Config(t, addrs, env(""))),
		kafkatest.NewExporter(t, kafkatest.Config(t, addrs, env("8"))),
		kafkatest.NewExporter(t, kafkatest.Config(t, addrs, env("0"))),
	}
	d := newDriver(t, interval, exporters...)
	d.poll()
	exporterStart := d.latest(0).Offsets.Time

	// Sparse production: a burst of 1 to 5 records on one partition, then
	// 1 to 3 s of silence, for 12 s, with the exporters polling all along.
	deadline := time.Now().Add(12 * time.Second)
	for time.Now().Before(deadline) {
		w.burstOn(t, int32(rng.IntN(partitions)), 1+rng.IntN(5))
		d.pollFor(time.Duration(1000+rng.IntN(2000)) * time.Millisecond)
	}
	// Four groups commit inside the history: halfway between the first
	// log end the exporters saw and the current one.
	first, now := d.snaps[0][0].Offsets.Topics[topic], d.latest(0).Offsets.Topics[topic]
	for g := range 4 {
		name := fmt.Sprintf("%sgroup-%02d", prefix, g)
		var os kadm.Offsets
		for p := range int32(partitions) {
			lo, hi := first.Partitions[p].Newest, now.Partitions[p].Newest
			if hi > lo {
				commits[name][p] = lo + (hi-lo)/2
				os.AddOffset(topic, p, commits[name][p], -1)
			}
		}
		if len(os) > 0 {
			kafkatest.CommitOffsets(t, adm, name, os)
		}
	}
	d.poll()
	d.poll()

	truth := readAllTimestamps(t, addrs, topic, d.latest(0).Offsets.Topics[topic])
	for i, name := range names {
		byMethod := map[lagtime.Method][]float64{}
		worst, maxV, maxAge := 0.0, 0.0, 0.0
		for k, snap := range d.snaps[i] {
			at := snap.Offsets.Time
			worldAge := at.Sub(worldStart).Seconds()
			maxAge = max(maxAge, worldAge)
			for g, parts := range snap.Offsets.Committed {
				gl, _ := snap.LagSeconds.Group(g)
				for p, c := range parts[topic] {
					lag, _ := cluster.Lag(snap.Offsets.Topics[topic], p, c)
					pl, ok := gl.Partition(topic, p)
					if lag == 0 {
						if !ok || pl.Seconds != 0 {
							t.Errorf("%s poll %d: %s/%d caught up, lag seconds %+v", name, k, g, p, pl)
						}
						continue
					}
					if !ok {
						if k > 0 {
							t.Errorf("%s poll %d: %s/%d at %d (lag %d) has no lag in seconds", name, k, g, p, c, lag)
						}
						continue
					}
					want := at.Sub(truth[p][c]).Seconds()
					diff := pl.Seconds - want
					method := string(pl.Method)
					maxV = max(maxV, pl.Seconds)
					if pl.Seconds > worldAge {
						t.Errorf("%s poll %d: %s/%d: %.3f s, older than the %.3f s old world", name, k, g, p, pl.Seconds, worldAge)
					}
					switch pl.Method {
					case lagtime.MethodExact:
						if math.Abs(diff) > 1e-6 {
							t.Errorf("%s poll %d: %s/%d exact %.6f s, truth %.6f s", name, k, g, p, pl.Seconds, want)
						}
						worst = max(worst, math.Abs(diff))
					case lagtime.MethodLowerBound:
						if diff > 1e-6 {
							t.Errorf("%s poll %d: %s/%d lower bound %.3f s above the truth %.3f s", name, k, g, p, pl.Seconds, want)
						}
					case lagtime.MethodInterpolated:
						bound := interpolationBound(t, d.snaps[i][:k+1], d.took[i][:k+1], topic, p, c, w)
						if bound >= 0 {
							if math.Abs(diff) > bound {
								t.Errorf("%s poll %d: %s/%d at %d interpolated %.3f s, truth %.3f s: |error| > bound %.3f s", name, k, g, p, c, pl.Seconds, want, bound)
							}
							worst = max(worst, math.Abs(diff))
							break
						}
						// Older than the history, between read timestamps:
						// never beyond what they say.
						method = "interpolated between timestamps"
						lo, hi := anchorBracket(snap.Offsets.RecordTimes, topic, p, c, d.snaps[i][0].Offsets)
						if pl.Seconds > at.Sub(lo).Seconds()+1e-6 || pl.Seconds < at.Sub(hi).Seconds()-1e-6 {
							t.Errorf("%s poll %d: %s/%d at %d: %.3f s outside its evidence [%.3f, %.3f] (truth %.3f)",
								name, k, g, p, c, pl.Seconds, at.Sub(hi).Seconds(), at.Sub(lo).Seconds(), want)
						}
					}
					byMethod[lagtime.Method(method)] = append(byMethod[lagtime.Method(method)], diff)
				}
			}
		}
		t.Logf("%s: over %d polls (world up to %.1f s old, exporter up %.1f s): largest value %.3f s; largest error of exact and history-interpolated values %.3f s",
			name, len(d.snaps[i]), maxAge, d.latest(i).Offsets.Time.Sub(exporterStart).Seconds(), maxV, worst)
		for _, m := range slices.Sorted(maps.Keys(byMethod)) {
			t.Logf("  %-32s %s", m, figures(byMethod[m]))
		}
		if name == "budget" && len(byMethod["interpolated between timestamps"]) == 0 {
			t.Errorf("budget: no value interpolated between read timestamps; the scenario does not exercise them")
		}
	}
	slowest := time.Duration(0)
	for _, took := range d.took[0] {
		slowest = max(slowest, took)
	}
	t.Logf("poll interval %s, slowest default offsets poll %s, largest timestamp-to-ack delay %s",
		interval, slowest.Round(time.Millisecond), w.maxAck.Round(time.Millisecond))

	// By the end both the default and the budget exporter have read every
	// record older than their history. (The default one usually does at
	// its first poll, but its reads get a third of the poll interval, so
	// on a loaded machine some wait for the next polls: not asserted.)
	for i, name := range names[:2] {
		for _, k := range []int{len(d.snaps[i]) - 1} {
			snap := d.snaps[i][k]
			for g, parts := range snap.Offsets.Committed {
				gl, _ := snap.LagSeconds.Group(g)
				for p, c := range parts[topic] {
					if pl, ok := gl.Partition(topic, p); ok && pl.Seconds > 0 && c < d.snaps[i][0].Offsets.Topics[topic].Partitions[p].Newest && pl.Method != lagtime.MethodExact {
						t.Errorf("%s poll %d: %s/%d at %d predates the history but is %s", name, k, g, p, c, pl.Method)
					}
				}
			}
		}
	}
}

// figures summarises signed errors (value - truth, seconds).
func figures(errs []float64) string {
	abs := make([]float64, len(errs))
	lo, hi := math.Inf(1), math.Inf(-1)
	for i, e := range errs {
		abs[i] = math.Abs(e)
		lo, hi = min(lo, e), max(hi, e)
	}
	slices.Sort(abs)
	q := func(f float64) float64 { return abs[int(f*float64(len(abs)-1))] }
	return fmt.Sprintf("n=%3d  |error| p50 %.3f s  p90 %.3f s  max %.3f s  (signed %+.3f .. %+.3f s)", len(errs), q(0.5), q(0.9), q(1), lo, hi)
}

// interpolationBound is how far an interpolated value of the record at c
// may be from its timestamp: the gap between the polls that bracket its
// append, the earlier poll's duration, the largest timestamp-to-ack delay
// and 1 ms of timestamp truncation. It is -1 when c predates the history
// (the value then comes from read timestamps).
func interpolationBound(t *testing.T, snaps []*store.Snapshot, took []time.Duration, topic string, p int32, c int64, w *burster) float64 {
	t.Helper()
	if c < snaps[0].Offsets.Topics[topic].Partitions[p].Newest {
		return -1
	}
	gap, readDur, ok := bracket(snaps, took, topic, p, c)
	if !ok {
		t.Fatalf("no two polls bracket the append of %d on partition %d", c, p)
	}
	return (gap + readDur + w.maxAck + time.Millisecond).Seconds()
}

// anchorBracket is the interval the record at c was appended in by the
// read timestamps of its partition's records and the exporter's first
// poll: after the newest read record at or below c (zero when none), no
// later than the oldest one above it or the first poll.
func anchorBracket(rt map[cluster.Record]time.Time, topic string, p int32, c int64, first *cluster.OffsetsObservation) (lo, hi time.Time) {
	hi = first.Time
	firstEnd := first.Topics[topic].Partitions[p].Newest
	for r, at := range rt {
		if r.Topic != topic || r.Partition != p || r.Offset >= firstEnd {
			continue
		}
		if r.Offset <= c && at.After(lo) {
			lo = at
		}
		if r.Offset >= c && at.Before(hi) {
			hi = at
		}
	}
	return lo, hi
}

// burster produces bursts of records and keeps the largest delay from a
// record's timestamp to its acknowledgement.
type burster struct {
	cl     *kgo.Client
	topic  string
	maxAck time.Duration
}

func newBurster(t *testing.T, addrs []string, topic string) *burster {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return &burster{cl: cl, topic: topic}
}

// burst writes n records to every partition.
func (b *burster) burst(t *testing.T, partitions int32, n int) {
	t.Helper()
	for p := range partitions {
		b.burstOn(t, p, n)
	}
}

func (b *burster) burstOn(t *testing.T, p int32, n int) {
	t.Helper()
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: b.topic, Partition: p, Value: []byte("x"), Timestamp: time.Now()}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	b.maxAck = max(b.maxAck, time.Since(recs[0].Timestamp))
}

// readAllTimestamps reads every record of topic up to each partition's
// log end in part and returns their timestamps by partition and offset.
func readAllTimestamps(t *testing.T, addrs []string, topic string, part *cluster.Topic) map[int32][]time.Time {
	t.Helper()
	offs := map[int32]kgo.Offset{}
	out := map[int32][]time.Time{}
	for p := range part.Partitions {
		offs[p] = kgo.NewOffset().AtStart()
		out[p] = nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offs}))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := func() bool {
		for p, pt := range part.Partitions {
			if int64(len(out[p])) < pt.Newest {
				return false
			}
		}
		return true
	}
	for !done() {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("read %s: %v", topic, err)
		}
		fs.EachError(func(_ string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset != int64(len(out[r.Partition])) {
				t.Fatalf("%s/%d: record at %d after %d records", topic, r.Partition, r.Offset, len(out[r.Partition]))
			}
			out[r.Partition] = append(out[r.Partition], r.Timestamp)
		})
	}
	return out
}
