package lagtime

import (
	"math"
	"sort"
	"time"
)

// point says the partition's log end offset was offset from first until at
// least last (Unix nanoseconds, first <= last). In a history the offsets
// and the times strictly increase from one point to the next, so a flat
// stretch of polls is a single point whose last keeps moving forward.
//
// Both times matter. first is the earliest moment we know the log end had
// reached offset; the record that moved it there was appended at or before
// first. last is the latest moment we know the log end was still at offset;
// the records that moved it further were appended after last. The records
// between two points were therefore appended inside (a.last, b.first], and
// that is the interval interpolation spreads them over. Keeping only the
// latest time of a flat run would claim the records right after it arrived
// late; keeping only the first would claim they arrived early.
type point struct {
	offset int64
	first  int64
	last   int64
}

// PointBytes is the memory one history point takes. A partition's history
// holds at most MaxPoints points in one slice allocated up front, so it
// costs PointBytes*MaxPoints bytes (1536 bytes with the default 64) plus a
// slice header and a map entry, about 100 bytes.
const PointBytes = 24

// minPoints is the smallest history that thinning can still shrink.
const minPoints = 4

// Time bounds for observations. Unix nanoseconds cover 1678..2262; staying
// inside 1970..2200 keeps every difference of two times inside int64.
var (
	minTime = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)
)

func usableTime(t time.Time) bool {
	return !t.Before(minTime) && t.Before(maxTime)
}

type observeOutcome int

const (
	observeIgnored  observeOutcome = iota // older than the history, nothing changed
	observeExtended                       // flat: the newest point's last moved
	observeAppended                       // the log end moved forward
	observeReset                          // the log end went back: history restarted
)

// history is the bounded log-end history of one partition.
type history struct {
	points []point
}

func newHistory(maxPoints int) *history {
	return &history{points: make([]point, 0, maxPoints)}
}

// observe records that the log end was at offset at time t (Unix nanos).
func (h *history) observe(offset, t int64) observeOutcome {
	n := len(h.points)
	if n == 0 {
		h.points = append(h.points, point{offset: offset, first: t, last: t})
		return observeAppended
	}
	newest := &h.points[n-1]
	if t < newest.last {
		// A late or replayed observation cannot be placed without breaking
		// the time order that interpolation depends on.
		return observeIgnored
	}
	switch {
	case offset == newest.offset:
		newest.last = t
		return observeExtended
	case offset < newest.offset:
		// Log end offsets never decrease for a living partition; this one
		// was deleted and recreated under the same name, so the old history
		// describes a different log.
		h.points = append(h.points[:0], point{offset: offset, first: t, last: t})
		return observeReset
	}
	if n == cap(h.points) {
		h.thin()
	}
	h.points = append(h.points, point{offset: offset, first: t, last: t})
	return observeAppended
}

// thin frees room by dropping every second point of the older half. The
// oldest point always stays so the history keeps its full time span (and
// the extrapolation rate its long baseline), and the newer half stays
// untouched so recent data keeps poll resolution. Repeated thinning makes
// older data exponentially sparser; interpolating across a dropped point
// is still bounded by the two points that remain around it.
func (h *history) thin() {
	n := len(h.points)
	half := n / 2
	w := 1
	for i := 2; i < half; i += 2 {
		h.points[w] = h.points[i]
		w++
	}
	w += copy(h.points[w:], h.points[half:])
	h.points = h.points[:w]
}

// estimate returns how many seconds before now the log end reached x, that
// is, the age of the record at offset x-1. pts must be a valid history
// (increasing offsets and times).
//
// Inside the history the time is interpolated linearly between the two
// points around x. Before the oldest point it is extrapolated backwards
// with the average production rate of the whole history, measured from the
// first time of the oldest point to the first time of the newest one: the
// current flat stretch, if any, is not part of it, so a topic that has
// merely gone quiet does not dilute the rate. The backward step is capped
// at maxBack seconds. ok is false when x lies beyond the newest point or
// when extrapolation has no rate to work with.
func estimate(pts []point, x, now int64, maxBack float64) (age float64, m Method, capped, ok bool) {
	n := len(pts)
	i := sort.Search(n, func(i int) bool { return pts[i].offset >= x })
	switch {
	case i == n:
		return 0, "", false, false
	case i > 0:
		a, b := pts[i-1], pts[i]
		frac := float64(x-a.offset) / float64(b.offset-a.offset)
		age = seconds(now-a.last) - frac*seconds(b.first-a.last)
		m = MethodInterpolated
	default:
		if n < 2 {
			return 0, "", false, false
		}
		oldest, newest := pts[0], pts[n-1]
		span := seconds(newest.first - oldest.first)
		if span <= 0 {
			return 0, "", false, false
		}
		rate := float64(newest.offset-oldest.offset) / span
		if !(rate > 0) || math.IsInf(rate, 0) {
			return 0, "", false, false
		}
		back := float64(oldest.offset-x) / rate
		if back > maxBack {
			back, capped = maxBack, true
		}
		age = seconds(now-oldest.first) + back
		m = MethodExtrapolated
	}
	if math.IsNaN(age) || math.IsInf(age, 0) {
		return 0, "", false, false
	}
	if age < 0 {
		// now precedes the history (a Compute with an older observation).
		age = 0
	}
	return age, m, capped, true
}

func seconds(nanos int64) float64 {
	return float64(nanos) / 1e9
}
