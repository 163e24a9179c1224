package lagtime

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
	"unsafe"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/cluster"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

const topic = "orders"

// testOptions are the exporter's defaults (KRE_LAG_HISTORY_POINTS).
var testOptions = Options{MaxPoints: 64}

// poll builds an observation of one single-partition topic.
func poll(at time.Duration, logEnd int64, commits map[string]int64) *cluster.OffsetsObservation {
	obs := &cluster.OffsetsObservation{
		Time: t0.Add(at),
		Topics: map[string]*cluster.Topic{topic: {
			Name:       topic,
			Partitions: map[int32]cluster.Partition{0: {Newest: logEnd, Oldest: 0}},
		}},
		Committed: map[string]map[string]map[int32]int64{},
	}
	for g, c := range commits {
		obs.Committed[g] = map[string]map[int32]int64{topic: {0: c}}
	}
	return obs
}

// step observes obs and computes its result.
func step(e *Estimator, obs *cluster.OffsetsObservation) Result {
	e.Observe(obs)
	return e.Compute(obs)
}

func lagOf(t *testing.T, r Result, group string) (PartitionLag, bool) {
	t.Helper()
	g, ok := r.Group(group)
	if !ok {
		return PartitionLag{}, false
	}
	p, ok := g.Partition(topic, 0)
	if !ok {
		t.Fatalf("group %s present without partition %s/0", group, topic)
	}
	return p, true
}

func mustLag(t *testing.T, r Result, group string) PartitionLag {
	t.Helper()
	p, ok := lagOf(t, r, group)
	if !ok {
		t.Fatalf("group %s has no lag value at %s", group, r.Time)
	}
	return p
}

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

// With a constant production rate the record at offset C was appended when
// the log end reached C+1, so the true lag is known exactly.
func TestSteadyProductionInterpolatesTrueAge(t *testing.T) {
	const rate = 10 // records per second
	e := New(testOptions)
	var r Result
	for s := 0; s <= 300; s += 10 {
		end := int64(rate * s)
		r = step(e, poll(time.Duration(s)*time.Second, end, map[string]int64{
			"behind":   max(0, end-345), // 34.5 s of records behind
			"caughtup": end,
		}))
	}
	now := 300.0
	committed := int64(rate*300 - 345)
	want := now - float64(committed+1)/rate
	got := mustLag(t, r, "behind")
	if !near(got.Seconds, want, 1e-6) || got.Method != MethodInterpolated {
		t.Fatalf("behind: got %+v, want %.3f s interpolated", got, want)
	}
	up := mustLag(t, r, "caughtup")
	if up.Seconds != 0 || up.Method != MethodCaughtUp {
		t.Fatalf("caught-up group: got %+v, want exactly 0", up)
	}
	g, _ := r.Group("behind")
	if g.MaxSeconds != got.Seconds {
		t.Fatalf("max %v, want the only partition's %v", g.MaxSeconds, got.Seconds)
	}
}

// A burst lands between two polls; the estimate must stay inside the poll
// interval in which the records really arrived.
func TestBurstBetweenPolls(t *testing.T) {
	e := New(testOptions)
	for s := 0; s <= 100; s += 10 {
		step(e, poll(time.Duration(s)*time.Second, 0, nil))
	}
	// 1000 records appended during (100 s, 110 s], then silence.
	var r Result
	for s := 110; s <= 300; s += 10 {
		r = step(e, poll(time.Duration(s)*time.Second, 1000, map[string]int64{"mid": 500, "done": 1000}))
	}
	got := mustLag(t, r, "mid")
	// Interpolating over (100, 110] puts the 501st end offset at 105.01 s.
	if !near(got.Seconds, 300-105.01, 1e-6) {
		t.Fatalf("mid-burst lag %v, want %v", got.Seconds, 300-105.01)
	}
	if got.Seconds < 190 || got.Seconds > 200 {
		t.Fatalf("lag %v outside the true range [190, 200]", got.Seconds)
	}
	if d := mustLag(t, r, "done"); d.Seconds != 0 {
		t.Fatalf("group at log end on a silent topic: lag %v, want 0", d.Seconds)
	}
}

func TestSilentTopic(t *testing.T) {
	e := New(testOptions)
	for s := 0; s <= 60; s += 10 {
		step(e, poll(time.Duration(s)*time.Second, int64(s), nil)) // 1 record/s
	}
	// Producers stop at 60 s. "behind" sits at offset 30: the record there
	// was appended at 31 s. "idle" consumed everything.
	prev := -1.0
	for s := 70; s <= 600; s += 10 {
		r := step(e, poll(time.Duration(s)*time.Second, 60, map[string]int64{"behind": 30, "idle": 60}))
		if idle := mustLag(t, r, "idle"); idle.Seconds != 0 {
			t.Fatalf("at %d s caught-up group has lag %v on a silent topic", s, idle.Seconds)
		}
		b := mustLag(t, r, "behind")
		if !near(b.Seconds, float64(s)-31, 1e-6) {
			t.Fatalf("at %d s behind group lag %v, want %v", s, b.Seconds, float64(s)-31)
		}
		if prev >= 0 && !near(b.Seconds-prev, 10, 1e-6) {
			t.Fatalf("lag grew by %v over 10 s of silence, want 10", b.Seconds-prev)
		}
		prev = b.Seconds
	}
}

func TestConsumerCatchingUp(t *testing.T) {
	e := New(testOptions)
	committed := int64(0)
	prev := math.Inf(1)
	reachedZero := false
	for s := 0; s <= 400; s += 10 {
		end := int64(5 * s) // 5 records/s
		if s >= 100 {
			committed = min(end, committed+100) // consumes 10/s from 100 s on
		}
		r := step(e, poll(time.Duration(s)*time.Second, end, map[string]int64{"g": committed}))
		p, ok := lagOf(t, r, "g")
		if !ok {
			continue
		}
		if p.Seconds > prev+1e-9 && s > 100 {
			t.Fatalf("at %d s lag rose to %v from %v while the consumer outpaces production", s, p.Seconds, prev)
		}
		prev = p.Seconds
		if committed == end {
			reachedZero = true
			if p.Seconds != 0 {
				t.Fatalf("caught up at %d s but lag %v", s, p.Seconds)
			}
		}
	}
	if !reachedZero {
		t.Fatal("consumer never caught up; the scenario is wrong")
	}
}

// A record older than the history is not dated with the production rate
// the history saw: the evidence only says it was appended before the
// first poll, so its lag is at least the time since then, growing with
// the clock, for every group behind the history alike.
func TestRecordBeforeHistoryIsALowerBound(t *testing.T) {
	e := New(testOptions)
	commits := map[string]int64{"g": 9_400, "further": 100, "up": 10_200}
	// First poll: the groups are behind and there is no history; "at
	// least 0 s" says nothing, so there is no value.
	r := step(e, poll(0, 10_000, commits))
	if _, ok := r.Group("g"); ok {
		t.Fatalf("one history point cannot date a record before it, got %+v", r.Groups)
	}
	step(e, poll(10*time.Second, 10_100, commits))
	r = step(e, poll(20*time.Second, 10_200, commits))
	for _, g := range []string{"g", "further"} {
		// 10 records/s would have extrapolated g to 79.9 s; the record may
		// be anything older than 20 s.
		if p := mustLag(t, r, g); p.Method != MethodLowerBound || !near(p.Seconds, 20, 1e-9) {
			t.Fatalf("%s: got %+v, want the 20 s lower bound", g, p)
		}
	}
	if p := mustLag(t, r, "up"); p.Method != MethodCaughtUp || p.Seconds != 0 {
		t.Fatalf("caught-up group: %+v", p)
	}
	// Producers stop; the bound ages with the clock.
	for s := 30; s <= 600; s += 10 {
		r = step(e, poll(time.Duration(s)*time.Second, 10_200, commits))
	}
	if p := mustLag(t, r, "g"); p.Method != MethodLowerBound || !near(p.Seconds, 600, 1e-9) {
		t.Fatalf("after 580 s of silence got %+v, want 600 s", p)
	}
}

// A flat history has no production rate and needs none: a group behind it
// gets the lower bound once the history spans some time.
func TestFlatHistoryLowerBound(t *testing.T) {
	e := New(testOptions)
	var r Result
	for s := 0; s <= 100; s += 10 {
		r = step(e, poll(time.Duration(s)*time.Second, 500, map[string]int64{"behind": 100, "up": 500}))
	}
	if p := mustLag(t, r, "behind"); p.Method != MethodLowerBound || p.Seconds != 100 {
		t.Fatalf("behind a flat history: %+v, want at least 100 s", p)
	}
	if p := mustLag(t, r, "up"); p.Seconds != 0 {
		t.Fatalf("caught-up group lag %v, want 0", p.Seconds)
	}
}

func TestTopicRecreatedResetsHistory(t *testing.T) {
	e := New(testOptions)
	for s := 0; s <= 100; s += 10 {
		step(e, poll(time.Duration(s)*time.Second, int64(100*s), nil))
	}
	// Recreated: the log end starts again from 0.
	r := step(e, poll(110*time.Second, 50, map[string]int64{"old": 9_000, "new": 10}))
	if n := len(e.parts[cluster.TopicPartition{Topic: topic}].points); n != 1 {
		t.Fatalf("history has %d points after the reset, want 1", n)
	}
	if p := mustLag(t, r, "old"); p.Seconds != 0 {
		t.Fatalf("commit beyond the new log end: lag %v, want 0", p.Seconds)
	}
	if _, ok := lagOf(t, r, "new"); ok {
		t.Fatal("old history used after the reset")
	}
	r = step(e, poll(120*time.Second, 150, map[string]int64{"new": 10}))
	// New log: 50 at 110 s, 150 at 120 s; the record at 10 predates it.
	// The old history would have dated it at about 0.1 s.
	p := mustLag(t, r, "new")
	if p.Method != MethodLowerBound || !near(p.Seconds, 10, 1e-6) {
		t.Fatalf("lag on recreated topic %+v, want the 10 s lower bound", p)
	}
}

func TestUnknownLogEndKeepsHistory(t *testing.T) {
	e := New(testOptions)
	step(e, poll(0, 0, nil))
	step(e, poll(10*time.Second, 100, nil))
	r := step(e, poll(20*time.Second, -1, map[string]int64{"g": 50}))
	if len(r.Groups) != 0 {
		t.Fatalf("unknown log end must not produce values, got %+v", r.Groups)
	}
	r = step(e, poll(30*time.Second, 100, map[string]int64{"g": 50}))
	// Offset 51 reached at 5.1 s.
	if p := mustLag(t, r, "g"); !near(p.Seconds, 30-5.1, 1e-6) {
		t.Fatalf("lag %v, want 24.9", p.Seconds)
	}
}

func TestLateObservationIgnored(t *testing.T) {
	e := New(testOptions)
	step(e, poll(0, 0, nil))
	step(e, poll(20*time.Second, 200, nil))
	e.Observe(poll(10*time.Second, 150, nil))
	pts := e.parts[cluster.TopicPartition{Topic: topic}].points
	if len(pts) != 2 || pts[1].offset != 200 {
		t.Fatalf("late observation changed the history: %+v", pts)
	}
}

// Compute on an observation that was never observed uses it as the newest
// point instead of failing.
func TestComputeAheadOfHistory(t *testing.T) {
	e := New(testOptions)
	step(e, poll(0, 0, nil))
	obs := poll(10*time.Second, 100, map[string]int64{"g": 49})
	r := e.Compute(obs)
	if p := mustLag(t, r, "g"); !near(p.Seconds, 5, 1e-6) {
		t.Fatalf("lag %v, want 5", p.Seconds)
	}
	if n := len(e.parts[cluster.TopicPartition{Topic: topic}].points); n != 1 {
		t.Fatalf("Compute wrote into the history: %d points", n)
	}
}

func TestDisappearedPartitionsAreForgotten(t *testing.T) {
	e := New(testOptions)
	obs := poll(0, 10, nil)
	obs.Topics["other"] = &cluster.Topic{Name: "other", Partitions: map[int32]cluster.Partition{
		0: {Newest: 1}, 1: {Newest: 2},
	}}
	e.Observe(obs)
	if n := e.Partitions(); n != 3 {
		t.Fatalf("%d partitions tracked, want 3", n)
	}
	obs = poll(10*time.Second, 20, nil)
	obs.Topics["other"] = &cluster.Topic{Name: "other", Partitions: map[int32]cluster.Partition{1: {Newest: 2}}}
	e.Observe(obs)
	if n := e.Partitions(); n != 2 {
		t.Fatalf("%d partitions tracked after one vanished, want 2", n)
	}
	e.Observe(poll(20*time.Second, 30, nil))
	if n := e.Partitions(); n != 1 {
		t.Fatalf("%d partitions tracked after a topic vanished, want 1", n)
	}
}

// After 10,000 polls every history is within MaxPoints, still reaches back
// to the first poll, and still dates recent records to the poll.
func TestHistoryStaysBoundedAndRecentDataExact(t *testing.T) {
	const maxPoints = 64
	e := New(Options{MaxPoints: maxPoints})
	rng := rand.New(rand.NewPCG(1, 2))
	ends := []int64{0, 0, 0}
	at := time.Duration(0)
	var endsAt []int64 // log end of partition 0 at each poll
	var times []time.Duration
	for i := range 10_000 {
		obs := &cluster.OffsetsObservation{Time: t0.Add(at), Topics: map[string]*cluster.Topic{topic: {
			Name: topic, Partitions: map[int32]cluster.Partition{},
		}}}
		for p := range ends {
			if rng.IntN(4) > 0 { // some flat polls
				ends[p] += int64(rng.IntN(1000))
			}
			obs.Topics[topic].Partitions[int32(p)] = cluster.Partition{Newest: ends[p]}
		}
		e.Observe(obs)
		endsAt, times = append(endsAt, ends[0]), append(times, at)
		at += 10 * time.Second
		if i%1000 == 999 {
			for tp, h := range e.parts {
				if len(h.points) > maxPoints || cap(h.points) != maxPoints {
					t.Fatalf("poll %d: %v holds %d points (cap %d), bound %d", i, tp, len(h.points), cap(h.points), maxPoints)
				}
				if h.points[0].first != t0.UnixNano() {
					t.Fatalf("poll %d: oldest point dropped", i)
				}
				checkHistory(t, h.points)
			}
		}
	}
	// Five polls back, a record appended just before a poll is dated to
	// that poll interval exactly as with an unthinned history.
	now := at - 10*time.Second
	k := len(endsAt) - 6
	for k > 0 && endsAt[k] == endsAt[k-1] {
		k-- // find a poll at which the log end moved
	}
	committed := endsAt[k] - 1 // record appended in (times[k-1], times[k]]
	obs := poll(now, ends[0], map[string]int64{"g": committed})
	obs.Topics[topic].Partitions[1] = cluster.Partition{Newest: ends[1]}
	obs.Topics[topic].Partitions[2] = cluster.Partition{Newest: ends[2]}
	p := mustLag(t, e.Compute(obs), "g")
	lo, hi := (now - times[k]).Seconds(), (now - times[k-1]).Seconds()
	if p.Seconds < lo || p.Seconds > hi {
		t.Fatalf("recent record dated %v s ago, true range [%v, %v]", p.Seconds, lo, hi)
	}
	if size := unsafe.Sizeof(point{}); size != PointBytes {
		t.Fatalf("a point takes %d bytes, documented as %d", size, PointBytes)
	}
}

func checkHistory(t *testing.T, pts []point) {
	t.Helper()
	for i, p := range pts {
		if p.first > p.last {
			t.Fatalf("point %d: first after last: %+v", i, p)
		}
		if i > 0 && (p.offset <= pts[i-1].offset || p.first < pts[i-1].last) {
			t.Fatalf("points %d, %d out of order: %+v %+v", i-1, i, pts[i-1], p)
		}
	}
}

func TestResultLookupAndOrder(t *testing.T) {
	e := New(testOptions)
	obs := poll(0, 0, nil)
	obs.Topics["b"] = &cluster.Topic{Name: "b", Partitions: map[int32]cluster.Partition{0: {Newest: 0}, 1: {Newest: 0}}}
	e.Observe(obs)
	obs = poll(10*time.Second, 100, map[string]int64{"z": 100, "a": 0})
	obs.Topics["b"] = &cluster.Topic{Name: "b", Partitions: map[int32]cluster.Partition{0: {Newest: 100}, 1: {Newest: 100}}}
	obs.Committed["a"]["b"] = map[int32]int64{1: 50, 0: 90}
	r := step(e, obs)
	if len(r.Groups) != 2 || r.Groups[0].Group != "a" || r.Groups[1].Group != "z" {
		t.Fatalf("groups not sorted: %+v", r.Groups)
	}
	a := r.Groups[0]
	want := []struct {
		topic string
		part  int32
	}{{"b", 0}, {"b", 1}, {topic, 0}}
	for i, w := range want {
		if a.Partitions[i].Topic != w.topic || a.Partitions[i].Partition != w.part {
			t.Fatalf("partition %d is %s/%d, want %s/%d", i, a.Partitions[i].Topic, a.Partitions[i].Partition, w.topic, w.part)
		}
	}
	if a.MaxSeconds != a.Partitions[2].Seconds || !near(a.MaxSeconds, 9.9, 1e-6) {
		t.Fatalf("max %v, want the orders/0 lag 9.9", a.MaxSeconds)
	}
	if _, ok := a.Partition("b", 7); ok {
		t.Fatal("lookup of a missing partition succeeded")
	}
	if _, ok := r.Group("missing"); ok {
		t.Fatal("lookup of a missing group succeeded")
	}
}
