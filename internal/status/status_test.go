package status

import (
	"strings"
	"testing"
	"time"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/cluster"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

const (
	topic    = "orders"
	interval = 10 * time.Second
)

// world is a synthetic cluster with one topic, polled every interval.
type world struct {
	at      time.Duration
	ends    []int64            // log end per partition, -1 unknown
	commits map[string][]int64 // group -> committed offset per partition, -1 none
	members map[string]int     // group -> member count; absent: not in the groups poll
}

func newWorld(partitions int) *world {
	return &world{ends: make([]int64, partitions), commits: map[string][]int64{}, members: map[string]int{}}
}

func (w *world) offsets() *cluster.OffsetsObservation {
	obs := &cluster.OffsetsObservation{
		Time:      t0.Add(w.at),
		Topics:    map[string]*cluster.Topic{topic: {Name: topic, Partitions: map[int32]cluster.Partition{}}},
		Committed: map[string]map[string]map[int32]int64{},
	}
	for p, end := range w.ends {
		obs.Topics[topic].Partitions[int32(p)] = cluster.Partition{Newest: end}
	}
	for g, cs := range w.commits {
		parts := map[int32]int64{}
		for p, c := range cs {
			if c >= 0 {
				parts[int32(p)] = c
			}
		}
		obs.Committed[g] = map[string]map[int32]int64{}
		if len(parts) > 0 {
			obs.Committed[g][topic] = parts
		}
	}
	return obs
}

func (w *world) groups() *cluster.GroupsObservation {
	obs := &cluster.GroupsObservation{Time: t0.Add(w.at), Groups: map[string]*cluster.Group{}}
	for g, n := range w.members {
		obs.Groups[g] = &cluster.Group{Name: g, State: "Stable", Members: make([]cluster.Member, n)}
	}
	return obs
}

// poll observes the world and advances its clock.
func (w *world) poll(e *Evaluator) map[string]Result {
	r := e.Observe(w.offsets(), w.groups())
	w.at += interval
	return r
}

func cfg() Config {
	return Config{Window: 5, StopAfter: 2 * time.Minute, StopFactor: 5, ErrLag: 100}
}

func expect(t *testing.T, results map[string]Result, group, status string, poll int) Result {
	t.Helper()
	r, ok := results[group]
	if !ok {
		t.Fatalf("poll %d: no result for %s", poll, group)
	}
	if r.Status != status {
		t.Fatalf("poll %d: %s is %s (%s), want %s", poll, group, r.Status, r.Reason, status)
	}
	if r.Reason == "" {
		t.Fatalf("poll %d: %s has no reason", poll, group)
	}
	return r
}

func TestStatusesInExportOrder(t *testing.T) {
	want := "UNKNOWN OK WARN STALL STOP REWIND ERR" // README.md and docs/status.md
	if got := strings.Join(Statuses, " "); got != want {
		t.Fatalf("Statuses %q, want %q", got, want)
	}
}

func TestFirstPoll(t *testing.T) {
	e := New(cfg())
	w := newWorld(2)
	w.ends = []int64{100, 50}
	w.commits["caughtup"] = []int64{100, 50}
	w.commits["behind"] = []int64{90, 50}
	w.commits["nothing"] = nil
	w.members["onlymembers"] = 1
	w.commits["unknownend"] = []int64{100, 50}
	r := w.poll(e)
	expect(t, r, "caughtup", StatusOK, 1)
	b := expect(t, r, "behind", StatusUnknown, 1)
	if !strings.Contains(b.Reason, "not enough data") || b.Polls != 1 || b.Lag != 10 {
		t.Fatalf("behind: %+v", b)
	}
	if n := expect(t, r, "nothing", StatusUnknown, 1); n.Reason != "no committed offsets" {
		t.Fatalf("group without commits: %+v", n)
	}
	expect(t, r, "onlymembers", StatusUnknown, 1)

	// A log end that could not be read does not count as lag 0.
	e = New(cfg())
	w.ends = []int64{100, -1}
	w.commits = map[string][]int64{"g": {100, 50}}
	expect(t, w.poll(e), "g", StatusUnknown, 1)
}

func TestProgressingConsumerIsOK(t *testing.T) {
	e := New(cfg())
	w := newWorld(1)
	w.commits["g"] = []int64{0}
	w.members["g"] = 1
	for i := 1; i <= 20; i++ {
		w.ends[0] += 100
		w.commits["g"][0] = w.ends[0] - 30 // constant lag, commits every poll
		r := w.poll(e)
		want := StatusOK
		if i == 1 {
			want = StatusUnknown
		}
		got := expect(t, r, "g", want, i)
		if i > 1 && got.Since != t0.Add(interval) {
			t.Fatalf("poll %d: OK since %v, want the second poll", i, got.Since)
		}
	}
}

func TestWarnWhenLagGrows(t *testing.T) {
	e := New(cfg())
	w := newWorld(1)
	w.commits["g"] = []int64{0}
	w.members["g"] = 1
	for i := 1; i <= 7; i++ {
		w.ends[0] += 100
		w.commits["g"][0] += 80 // consumes, but slower than production
		r := w.poll(e)
		switch {
		case i == 1:
			expect(t, r, "g", StatusUnknown, i)
		case i < 5:
			expect(t, r, "g", StatusOK, i) // progressing, window not full
		default:
			got := expect(t, r, "g", StatusWarn, i)
			if !strings.Contains(got.Reason, "lag grew") {
				t.Fatalf("reason %q", got.Reason)
			}
		}
	}
	// One poll where the consumer gains ground clears WARN until the dip
	// leaves the window.
	w.commits["g"][0] = w.ends[0] + 50
	w.ends[0] += 100
	for i := 8; i <= 14; i++ {
		r := w.poll(e)
		want := StatusOK
		if i >= 12 { // the drop from poll 7 to 8 leaves with poll 7, at poll 12
			want = StatusWarn
		}
		expect(t, r, "g", want, i)
		w.ends[0] += 100
		w.commits["g"][0] += 80
	}
}

func TestStallNeedsMembers(t *testing.T) {
	e := New(cfg())
	w := newWorld(2)
	w.ends = []int64{1000, 1000}
	// Partition 0 stuck 10 behind; partition 1 keeps being consumed.
	w.commits["stalled"] = []int64{990, 1000}
	w.commits["nomembers"] = []int64{990, 1000}
	w.members["stalled"] = 3
	w.members["nomembers"] = 0
	for i := 1; i <= 6; i++ {
		w.ends[1]++
		w.commits["stalled"][1] = w.ends[1]
		w.commits["nomembers"][1] = w.ends[1]
		r := w.poll(e)
		if i < 5 {
			want := StatusOK // progressing on partition 1
			if i == 1 {
				want = StatusUnknown
			}
			expect(t, r, "stalled", want, i)
			continue
		}
		s := expect(t, r, "stalled", StatusStall, i)
		if !strings.Contains(s.Reason, "orders/0") || !strings.Contains(s.Reason, "3 members") {
			t.Fatalf("reason %q", s.Reason)
		}
		expect(t, r, "nomembers", StatusOK, i) // no consumer: a STOP case once StopAfter passes
	}
}

func TestErrStuckWithLargeLag(t *testing.T) {
	e := New(cfg())
	w := newWorld(1)
	w.ends[0] = 500
	w.commits["g"] = []int64{100} // lag 400 >= ErrLag 100
	w.members["g"] = 0            // ERR does not depend on members
	for i := 1; i <= 5; i++ {
		r := w.poll(e)
		if i < 5 {
			expect(t, r, "g", StatusUnknown, i)
			continue
		}
		got := expect(t, r, "g", StatusErr, i)
		if !strings.Contains(got.Reason, "lag 400 >= 100") {
			t.Fatalf("reason %q", got.Reason)
		}
	}
}

func TestRewindStaysForTheWindow(t *testing.T) {
	e := New(cfg())
	w := newWorld(1)
	w.commits["g"] = []int64{0}
	w.members["g"] = 1
	var statuses []string
	for i := 1; i <= 10; i++ {
		w.ends[0] += 100
		w.commits["g"][0] = w.ends[0]
		if i == 3 {
			w.commits["g"][0] = 50 // reset to an old offset
		}
		statuses = append(statuses, w.poll(e)["g"].Status)
	}
	// Rewind seen at poll 3 (vs poll 2); the pair leaves the 5-poll window
	// when poll 2 does, at poll 7.
	want := "OK OK REWIND REWIND REWIND REWIND OK OK OK OK"
	if got := strings.Join(statuses, " "); got != want {
		t.Fatalf("statuses %s, want %s", got, want)
	}
}

func TestRecreatedTopicIsNotRewind(t *testing.T) {
	e := New(cfg())
	w := newWorld(1)
	w.ends[0] = 5000
	w.commits["g"] = []int64{5000}
	w.poll(e)
	w.ends[0] = 10 // topic recreated
	w.commits["g"][0] = 0
	expect(t, w.poll(e), "g", StatusOK, 2)
}

func TestStop(t *testing.T) {
	e := New(cfg()) // StopAfter 2m, polls every 10 s
	w := newWorld(1)
	w.ends[0] = 50
	w.commits["lagging"] = []int64{40} // lag 10 < ErrLag: never ERR
	w.commits["gone"] = []int64{50}
	w.commits["idle"] = []int64{50}
	w.members["lagging"] = 2
	w.members["gone"] = 0 // left after consuming everything: nothing is late
	w.members["idle"] = 2 // silent topic, caught up, still subscribed
	for i := 1; i <= 20; i++ {
		r := w.poll(e)
		elapsed := time.Duration(i-1) * interval
		if elapsed < 2*time.Minute {
			if r["lagging"].Status == StatusStop {
				t.Fatalf("poll %d: lagging STOP after %v", i, elapsed)
			}
		} else {
			got := expect(t, r, "lagging", StatusStop, i)
			if !strings.Contains(got.Reason, "lag 10") {
				t.Fatalf("reason %q", got.Reason)
			}
		}
		expect(t, r, "idle", StatusOK, i)
		expect(t, r, "gone", StatusOK, i)
	}
}

// Once its interval is learned, a group that commits every minute is
// neither STALL nor WARN between commits, and its STOP threshold grows to
// StopFactor times that minute.
func TestCommitIntervalIsLearned(t *testing.T) {
	c := cfg()
	c.StopAfter = time.Minute
	c.StopFactor = 5
	c.ErrLag = 1 << 40 // this test is about STOP, not the backlog
	e := New(c)
	w := newWorld(1)
	w.commits["g"] = []int64{0}
	w.members["g"] = 1
	i := 0
	for ; i < 60; i++ { // 10 minutes, a commit every 6th poll
		w.ends[0] += 10
		if i%6 == 0 {
			w.commits["g"][0] = w.ends[0] - 5
		}
		r := w.poll(e)
		// Commits (movements) at polls 6, 12, 18, 24: the third interval,
		// learned at poll 24, ends the STALLs a slow committer shows while
		// its interval is unknown.
		if s := r["g"].Status; i >= 24 && s != StatusOK {
			t.Fatalf("poll %d: %s (%s) for a group committing every minute", i, s, r["g"].Reason)
		}
	}
	last := w.poll(e)["g"]
	if last.CommitInterval != time.Minute {
		t.Fatalf("learned interval %v, want 1m", last.CommitInterval)
	}
	// The consumer dies at its last commit (poll 54, 9 min): STOP after
	// 5 min instead of StopAfter's 1 min.
	lastCommit := 54 * interval
	for {
		w.ends[0] += 10
		r := w.poll(e)["g"]
		idle := w.at - interval - lastCommit
		if idle < 5*time.Minute && r.Status == StatusStop {
			t.Fatalf("STOP after %v idle, threshold 5m", idle)
		}
		if idle >= 5*time.Minute {
			if r.Status != StatusStop {
				t.Fatalf("%s (%s) after %v idle, want STOP", r.Status, r.Reason, idle)
			}
			break
		}
	}
}

func TestPrecedence(t *testing.T) {
	// Each case builds a window where two rules hold; the higher one wins.
	cases := []struct {
		name  string
		setup func(w *world, i int)
		want  string
	}{
		{"ERR over REWIND", func(w *world, i int) {
			w.ends = []int64{1000, 1000}
			w.commits["g"] = []int64{10, []int64{500, 400, 400, 400, 400}[i]} // p0 stuck with lag 990
		}, StatusErr},
		{"REWIND over STOP", func(w *world, i int) {
			w.ends = []int64{1000}
			w.commits["g"] = []int64{[]int64{500, 500, 500, 500, 400}[i]}
			w.members["g"] = 0
			w.at += time.Minute // idle beyond StopAfter 2m by the end
		}, StatusRewind},
		{"STOP over STALL", func(w *world, i int) {
			w.ends = []int64{1000}
			w.commits["g"] = []int64{950}
			w.members["g"] = 2
			w.at += time.Minute
		}, StatusStop},
		{"STALL over WARN", func(w *world, i int) {
			w.ends = []int64{1000 + 10*int64(i)} // lag 50, 60, ... below ErrLag
			w.commits["g"] = []int64{950}
			w.members["g"] = 2
		}, StatusStall},
		{"WARN over OK", func(w *world, i int) {
			w.ends = []int64{1000 + 10*int64(i)}
			w.commits["g"] = []int64{950 + int64(i)}
			w.members["g"] = 2
		}, StatusWarn},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := New(cfg())
			w := newWorld(1)
			var r map[string]Result
			for i := range 5 {
				tc.setup(w, i)
				r = w.poll(e)
			}
			expect(t, r, "g", tc.want, 5)
		})
	}
}

func TestGroupsComeAndGo(t *testing.T) {
	e := New(cfg())
	w := newWorld(1)
	w.ends[0] = 10
	w.commits["g"] = []int64{5}
	w.members["g"] = 1
	w.commits["other"] = []int64{10}
	w.poll(e)
	w.poll(e)
	delete(w.commits, "g")
	r := w.poll(e) // still in the groups poll: kept, no commits now
	expect(t, r, "g", StatusUnknown, 3)
	delete(w.members, "g")
	r = w.poll(e)
	if _, ok := r["g"]; ok {
		t.Fatal("vanished group still reported")
	}
	if _, ok := e.groups["g"]; ok {
		t.Fatal("vanished group's window kept")
	}
	w.commits["g"] = []int64{5}
	r = w.poll(e)
	if got := expect(t, r, "g", StatusUnknown, 5); got.Polls != 1 {
		t.Fatalf("returning group starts with %d polls, want a fresh window", got.Polls)
	}
}

func TestMembersFallBackToLastKnown(t *testing.T) {
	e := New(cfg())
	w := newWorld(1)
	w.ends[0] = 50
	w.commits["g"] = []int64{40}
	w.members["g"] = 2
	w.poll(e)
	delete(w.members, "g") // the describe of this group failed
	var r map[string]Result
	for range 4 {
		r = w.poll(e)
	}
	if got := expect(t, r, "g", StatusStall, 5); got.Members != 2 {
		t.Fatalf("members %d, want the last known 2", got.Members)
	}
	// Without any groups poll the member count is unknown: no STALL.
	e = New(cfg())
	for range 5 {
		r = e.Observe(w.offsets(), nil)
		w.at += interval
	}
	if got := expect(t, r, "g", StatusOK, 5); got.Members != -1 {
		t.Fatalf("members %d, want -1", got.Members)
	}
}

func TestStaleObservationIgnored(t *testing.T) {
	e := New(cfg())
	w := newWorld(1)
	w.ends[0] = 50
	w.commits["g"] = []int64{40}
	w.poll(e)
	w.poll(e)
	w.at -= 2 * interval // replay the second poll
	r := w.poll(e)
	if got := r["g"]; got.Polls != 2 {
		t.Fatalf("replayed poll entered the window: %d polls", got.Polls)
	}
	if e.Observe(nil, nil)["g"].Polls != 2 {
		t.Fatal("nil observation changed the results")
	}
}

// A group that was caught up at some poll of the window keeps up: the few
// records that arrived after it are no trend, however they rise.
func TestNoWarnWhenCaughtUpInWindow(t *testing.T) {
	e := New(cfg())
	w := newWorld(1)
	w.commits["g"] = []int64{0}
	w.members["g"] = 1
	lags := []int64{0, 0, 0, 1, 2, 3, 4}
	for i, lag := range lags {
		w.ends[0] += 10
		w.commits["g"][0] = w.ends[0] - lag
		r := w.poll(e)
		if i >= 4 && i < 4+cfg().Window-1 && r["g"].Status == StatusWarn {
			t.Fatalf("poll %d: WARN with lags %v in the window", i+1, lags[max(0, i-4):i+1])
		}
	}
	// Once the zero has left the window, the rising lag is a trend.
	w.ends[0] += 10
	w.commits["g"][0] = w.ends[0] - 5
	r := w.poll(e)
	expect(t, r, "g", StatusWarn, len(lags)+1)
}
