package lagtime

import (
	"math"
	"testing"
	"time"
)

// FuzzLagSeconds drives an Estimator with arbitrary poll sequences (time
// jumps, bursts, silence, unknown and shrinking log ends, vanishing topics,
// commits behind, at and beyond the log end) and checks what would be
// exported: never NaN, negative or infinite; exactly 0 when caught up;
// never older than the first poll (without record timestamps nothing is
// evidence of an earlier time); and a group further behind is never
// reported as less late, nor without a value when a group less far behind
// has a positive one.
//
// Each poll takes 4 bytes: time step, log end change, and the distance
// behind the log end of groups "a" and "b".
func FuzzLagSeconds(f *testing.F) {
	f.Add([]byte{40, 20, 5, 0, 40, 20, 5, 0, 40, 20, 5, 0, 40, 20, 5, 0})          // steady
	f.Add([]byte{40, 9, 0, 0, 40, 9, 0, 0, 40, 200, 100, 3, 40, 9, 100, 3})        // burst
	f.Add([]byte{40, 30, 2, 1, 40, 30, 2, 1, 40, 9, 2, 1, 40, 9, 2, 1, 40, 9, 2})  // going silent
	f.Add([]byte{40, 100, 50, 10, 40, 100, 50, 10, 40, 3, 50, 10, 40, 100, 50, 1}) // recreated
	f.Add([]byte{0, 100, 50, 10, 255, 100, 50, 10, 40, 8, 50, 10, 253, 100, 50})   // same time, backwards, unknown, vanished
	f.Add([]byte{1, 255, 255, 255, 1, 255, 255, 255, 1, 10, 255, 0, 200, 9, 255})  // huge gaps, tiny rates
	steady := make([]byte, 0, 4*200)
	for i := range 200 {
		steady = append(steady, 40, byte(10+i%7), byte(i%50), byte(200-i%50))
	}
	f.Add(steady)

	f.Fuzz(func(t *testing.T, data []byte) {
		const maxPoints = 4 // thin often
		e := New(Options{MaxPoints: maxPoints})
		at := time.Duration(0)
		end := int64(0)
		var first time.Time
		for len(data) >= 4 {
			b := data[:4]
			data = data[4:]
			switch b[0] {
			case 255:
				at -= 5 * time.Second
			default:
				at += time.Duration(b[0]) * 250 * time.Millisecond
			}
			newest := end
			switch {
			case b[1] < 8:
				end = int64(b[1]) // below the old end: a recreated topic
				newest = end
			case b[1] == 8:
				newest = -1
			default:
				d := int64(b[1] - 9)
				end += d * d * d
				newest = end
			}
			commits := map[string]int64{"a": end - cube(b[2]), "b": end - cube(b[3])}
			if b[2] == 0 {
				commits["a"] = end + 5
			}
			obs := poll(at, newest, commits)
			if b[0] == 253 {
				delete(obs.Topics, topic)
			}
			if first.IsZero() || obs.Time.Before(first) {
				first = obs.Time // the earliest poll, which may come later
			}
			r := step(e, obs)

			for _, h := range e.parts {
				if len(h.points) > maxPoints {
					t.Fatalf("history of %d points, bound %d", len(h.points), maxPoints)
				}
				checkHistory(t, h.points)
			}
			bound := math.Max(0, obs.Time.Sub(first).Seconds()) + 1e-6
			got := map[string]float64{}
			for _, g := range r.Groups {
				worst := 0.0
				for _, p := range g.Partitions {
					s := p.Seconds
					if math.IsNaN(s) || math.IsInf(s, 0) || s < 0 {
						t.Fatalf("group %s: exported %v (%+v)", g.Group, s, p)
					}
					if s > bound {
						t.Fatalf("group %s: %v s is older than the first poll (%v s ago)", g.Group, s, bound)
					}
					worst = max(worst, s)
					got[g.Group] = s
				}
				if g.MaxSeconds != worst {
					t.Fatalf("group %s: max %v, partitions' max %v", g.Group, g.MaxSeconds, worst)
				}
			}
			if _, listed := obs.Topics[topic]; !listed || newest < 0 {
				continue
			}
			for g, c := range commits {
				s, ok := got[g]
				if c >= newest && (!ok || s != 0) {
					t.Fatalf("group %s caught up (%d >= %d) but lag %v present=%v", g, c, newest, s, ok)
				}
			}
			sa, okA := got["a"]
			sb, okB := got["b"]
			ca, cb := commits["a"], commits["b"]
			if okA && okB && ca >= 0 && cb >= 0 {
				if ca <= cb && sa < sb-1e-6*math.Max(1, sb) || cb <= ca && sb < sa-1e-6*math.Max(1, sa) {
					t.Fatalf("further behind reported less late: a=%d %v s, b=%d %v s", ca, sa, cb, sb)
				}
			}
			if ca >= 0 && cb >= 0 && ca < cb && okB && !okA && sb > 0 && commits["b"] < newest {
				// Whatever dates b's record also bounds a's older one.
				t.Fatalf("b (%d) has %v s, a (%d, further behind) has no value", cb, sb, ca)
			}
		}
	})
}

func cube(b byte) int64 {
	d := int64(b)
	return d * d * d
}
