package lagtime

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/cluster"
)

// twoPartitions builds an observation of topic with partitions 0 and 1 at
// the given log ends, with every group committed at the same offset on
// both.
func twoPartitions(at time.Duration, ends [2]int64, commits map[string]int64) *cluster.OffsetsObservation {
	obs := &cluster.OffsetsObservation{
		Time: t0.Add(at),
		Topics: map[string]*cluster.Topic{topic: {Name: topic, Partitions: map[int32]cluster.Partition{
			0: {Newest: ends[0]}, 1: {Newest: ends[1]},
		}}},
		Committed: map[string]map[string]map[int32]int64{},
	}
	for g, c := range commits {
		obs.Committed[g] = map[string]map[int32]int64{topic: {0: c, 1: c}}
	}
	return obs
}

// The shape (issue 10): a world built 30 s before the exporter
// starts, 1000 records per partition written in its first second and a
// group committed at 500 on both partitions; then production is sparse
// (five records on partition 0 two seconds after the exporter starts,
// five on partition 1 at 75 s). At 80 s the world is 110 s old, both
// partitions have the same committed offset and the same lag, and the
// record at 500 is about 109.5 s old on both.
//
// The log end history says only that the record was appended before the
// first poll; extrapolating at the rate the history saw (0.5/s on one
// partition, 1/16 s on the other) dated it 1078 s and 8064 s ago. Without
// a record timestamp the value is what the evidence guarantees, the same
// for both partitions and never more than the truth.
func TestSparseProductionNeverOverstates(t *testing.T) {
	const worldAge = 110.0 // seconds at the last poll
	truth := worldAge - 0.5
	e := New(testOptions)
	commits := map[string]int64{"g": 500}
	var r Result
	for s := 0; s <= 80; s += 10 {
		ends := [2]int64{1000, 1000}
		if s >= 10 {
			ends[0] = 1005 // five records at 2 s
		}
		if s >= 80 {
			ends[1] = 1005 // five records at 75 s
		}
		r = step(e, twoPartitions(time.Duration(s)*time.Second, ends, commits))
	}
	g, ok := r.Group("g")
	if !ok {
		t.Fatal("no lag in seconds for the group")
	}
	var got [2]PartitionLag
	for p := range int32(2) {
		pl, ok := g.Partition(topic, p)
		if !ok {
			t.Fatalf("no lag in seconds for partition %d", p)
		}
		got[p] = pl
		t.Logf("partition %d: %.3f s (%s), truth %.3f s, world %.0f s old", p, pl.Seconds, pl.Method, truth, worldAge)
		if pl.Seconds > truth {
			t.Errorf("partition %d: %.3f s, more than the record's true age %.3f s (the world is %.0f s old)", p, pl.Seconds, truth, worldAge)
		}
	}
	if got[0].Seconds != got[1].Seconds {
		t.Errorf("same committed offset, same lag, same evidence: %.3f s and %.3f s", got[0].Seconds, got[1].Seconds)
	}
}

// Record timestamps from the poller replace the lower bound: the record
// read is exact, and another group's record between two read ones, or
// between one and the history, is interpolated between them, so it lies
// in the interval the evidence gives.
func TestAnchorsDateRecordsBeforeHistory(t *testing.T) {
	// True append times of the backlog: offset o of both partitions was
	// appended at -30 s + o ms (1000 records in the world's first second).
	appended := func(o int64) time.Time { return t0.Add(-30*time.Second + time.Duration(o)*time.Millisecond) }
	e := New(testOptions)
	commits := map[string]int64{"read": 500, "between": 600, "below": 100, "above": 900}
	var obs *cluster.OffsetsObservation
	for s := 0; s <= 80; s += 10 {
		obs = twoPartitions(time.Duration(s)*time.Second, [2]int64{1000, 1000 + int64(s/10)}, commits)
		e.Observe(obs)
	}
	now := obs.Time
	truth := func(o int64) float64 { return now.Sub(appended(o)).Seconds() }
	// The poller read the records at 500 and 700 on partition 0 (700 for
	// a group that is not in this observation's commits: the cache still
	// holds it), none on partition 1.
	obs.RecordTimes = map[cluster.Record]time.Time{
		{Topic: topic, Partition: 0, Offset: 500}: appended(500),
		{Topic: topic, Partition: 0, Offset: 700}: appended(700),
	}
	r := e.Compute(obs)
	lag := func(g string, p int32) PartitionLag {
		t.Helper()
		gl, ok := r.Group(g)
		if !ok {
			t.Fatalf("no lag for %s", g)
		}
		pl, ok := gl.Partition(topic, p)
		if !ok {
			t.Fatalf("no lag for %s on partition %d", g, p)
		}
		return pl
	}
	if p := lag("read", 0); p.Method != MethodExact || !near(p.Seconds, truth(500), 1e-9) {
		t.Fatalf("read record: %+v, truth %.3f", p, truth(500))
	}
	// 600 lies between the records read at 500 and 700: interpolated
	// between 500.5 ms and 700.5 ms after the world began, it is exact
	// here because the backlog was written at a constant rate.
	if p := lag("between", 0); p.Method != MethodInterpolated || !near(p.Seconds, truth(600), 1e-6) {
		t.Fatalf("between two read records: %+v, truth %.3f", p, truth(600))
	}
	// 900 lies between the record read at 700 and the first poll (log end
	// 1000 at 0 s): somewhere in that 29.3 s, never older than 700.
	if p := lag("above", 0); p.Method != MethodInterpolated || p.Seconds > truth(700) || p.Seconds < now.Sub(t0).Seconds() {
		t.Fatalf("between a read record and the history: %+v, evidence [%.3f, %.3f]", p, now.Sub(t0).Seconds(), truth(700))
	}
	// 100 is below every record read: at least as old as the one at 500.
	if p := lag("below", 0); p.Method != MethodLowerBound || !near(p.Seconds, truth(500), 1e-9) {
		t.Fatalf("below every read record: %+v, want the lower bound %.3f", p, truth(500))
	}
	// Partition 1 has no timestamps: every group gets the same bound.
	for g := range commits {
		if p := lag(g, 1); p.Method != MethodLowerBound || p.Seconds != 80 {
			t.Fatalf("%s on partition 1: %+v, want the 80 s lower bound", g, p)
		}
	}

	// A producer clock running ahead stamps the record at 300 later than
	// the one at 500: the anchors are made monotonic, so 400 (between
	// them) is not dated later than 500 either.
	obs.RecordTimes[cluster.Record{Topic: topic, Partition: 0, Offset: 300}] = appended(900)
	obs.Committed["ahead"] = map[string]map[int32]int64{topic: {0: 300}}
	obs.Committed["after-ahead"] = map[string]map[int32]int64{topic: {0: 400}}
	r = e.Compute(obs)
	if p := lag("ahead", 0); p.Method != MethodExact || !near(p.Seconds, truth(900), 1e-9) {
		t.Fatalf("the record's own timestamp is its exact age: %+v", p)
	}
	if p := lag("after-ahead", 0); p.Seconds < truth(500)-1e-9 {
		t.Fatalf("record at 400 dated %.3f s, younger than the record at 500 (%.3f s)", p.Seconds, truth(500))
	}
}

// A randomized world with a true append time for every record: a backlog
// written before the exporter's first poll in bursts of random rate,
// then sparse production with long silences, consumers jumping around,
// and a random part of the records older than the history read as
// timestamps. Every value must lie in the interval its evidence gives
// (so never beyond the truth by more than that interval, and never older
// than the world), be exact for a read record, and never above the truth
// as a lower bound.
func TestValuesStayWithinEvidence(t *testing.T) {
	rng := rand.New(rand.NewPCG(10, 4))
	const polls = 30
	interval := 10 * time.Second
	seen := map[Method]int{}
	for world := range 200 {
		// The backlog: append times strictly increasing from the world's
		// start, up to 1 s before the first poll.
		start := t0.Add(-time.Duration(1+rng.IntN(3600)) * time.Second)
		var at []time.Time // at[o]: when offset o was appended
		for clock := start; len(at) < 1+rng.IntN(2000); {
			burst := 1 + rng.IntN(200)
			gap := time.Duration(rng.Int64N(int64(t0.Add(-time.Second).Sub(clock)/4 + 1)))
			clock = clock.Add(gap)
			for range burst {
				clock = clock.Add(time.Duration(1+rng.IntN(5)) * time.Millisecond)
				at = append(at, clock)
			}
		}
		first := int64(len(at)) // the history's oldest log end
		e := New(testOptions)
		var ends []int64 // log end at each poll
		var times []time.Time
		commits := map[string]int64{}
		for i := range polls {
			now := t0.Add(time.Duration(i) * interval)
			if i > 0 && rng.IntN(5) == 0 { // sparse: a burst in one poll of five
				prev := times[i-1]
				n := 1 + rng.IntN(20)
				for k := range n {
					at = append(at, prev.Add(time.Duration(k+1)*interval/time.Duration(n+1)))
				}
			}
			end := int64(len(at))
			for g := range 6 { // in order: the same world at every run
				name := fmt.Sprintf("g%d", g)
				if _, ok := commits[name]; !ok || rng.IntN(10) == 0 {
					commits[name] = rng.Int64N(end + 1)
				}
			}
			obs := poll(now.Sub(t0), end, commits)
			// Timestamps read for a random part of the records that predate
			// the history (a budget, a cache).
			obs.RecordTimes = map[cluster.Record]time.Time{}
			var read []int64
			for g := range 6 {
				c := commits[fmt.Sprintf("g%d", g)]
				if c < first && rng.IntN(3) == 0 {
					obs.RecordTimes[cluster.Record{Topic: topic, Partition: 0, Offset: c}] = at[c]
					read = append(read, c)
				}
			}
			ends, times = append(ends, end), append(times, now)
			r := step(e, obs)
			worldAge := now.Sub(start).Seconds()
			for g, c := range commits {
				p, ok := lagOf(t, r, g)
				if c >= end {
					if !ok || p.Seconds != 0 {
						t.Fatalf("world %d poll %d: %s caught up, got %+v", world, i, g, p)
					}
					continue
				}
				truth := now.Sub(at[c]).Seconds()
				if !ok {
					if c < first && i > 0 {
						t.Fatalf("world %d poll %d: %s at %d behind the history has no value", world, i, g, c)
					}
					continue
				}
				lo, hi := evidence(c, first, read, at, ends, times)
				v := p.Seconds
				seen[p.Method]++
				if c < first && p.Method == MethodInterpolated {
					seen["anchored"]++
				}
				if v > worldAge+1e-6 {
					t.Fatalf("world %d poll %d: %s %.3f s, older than the world (%.3f s)", world, i, g, v, worldAge)
				}
				switch p.Method {
				case MethodExact:
					if !near(v, truth, 1e-6) {
						t.Fatalf("world %d poll %d: %s exact %.6f, truth %.6f", world, i, g, v, truth)
					}
				case MethodLowerBound:
					if v > truth+1e-6 || !near(v, now.Sub(hi).Seconds(), 1e-6) {
						t.Fatalf("world %d poll %d: %s lower bound %.3f, truth %.3f, evidence newer than %s", world, i, g, v, truth, hi)
					}
				case MethodInterpolated:
					if v < now.Sub(hi).Seconds()-1e-6 || v > now.Sub(lo).Seconds()+1e-6 {
						t.Fatalf("world %d poll %d: %s at %d: %.3f s outside its evidence [%.3f, %.3f] (truth %.3f; history from %d, read %v)",
							world, i, g, c, v, now.Sub(hi).Seconds(), now.Sub(lo).Seconds(), truth, first, read)
					}
				default:
					t.Fatalf("world %d poll %d: %s method %s", world, i, g, p.Method)
				}
			}
		}
	}
	t.Logf("values checked by method: %v", seen)
	for _, m := range []Method{MethodExact, MethodInterpolated, MethodLowerBound, "anchored"} {
		if seen[m] < 100 {
			t.Errorf("only %d values by %s: the worlds do not exercise it", seen[m], m)
		}
	}
}

// evidence is the interval in which the record at c was appended, as the
// test's own log of polls and read timestamps tells it: after lo, at or
// before hi. lo is zero when nothing bounds it from below.
func evidence(c, first int64, read []int64, at []time.Time, ends []int64, times []time.Time) (lo, hi time.Time) {
	if c >= first {
		for i := range ends {
			if ends[i] <= c {
				lo = times[i]
			} else if hi.IsZero() {
				hi = times[i]
			}
		}
		return lo, hi
	}
	hi = times[0]
	for _, o := range read {
		if o <= c && (lo.IsZero() || at[o].After(lo)) {
			lo = at[o]
		}
		if o >= c && at[o].Before(hi) {
			hi = at[o]
		}
	}
	return lo, hi
}
