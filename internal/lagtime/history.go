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
// oldest point always stays, so the history keeps its full time span and
// the offset below which records predate it; the newer half stays
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
// (increasing offsets and times); anchors are points made of record
// timestamps, none above pts[0] in offset nor later than it in time, in
// the same order (see Estimator.anchorsLocked).
//
// The value never goes beyond the evidence. Inside the history the time is
// interpolated linearly between the two points around x: the record was
// appended between them. Before the oldest point it is interpolated the
// same way between the anchors around x, or between the newest anchor and
// the oldest point. Below every anchor, all that is known is that the
// record was appended no later than the evidence just above it (the
// oldest anchor, or else the oldest point): the age is that lower bound,
// and nothing when the bound is 0 (the first poll, with no timestamp). ok
// is false when x lies beyond the newest point or no value is known.
func estimate(pts, anchors []point, x, now int64) (age float64, m Method, ok bool) {
	n := len(pts)
	i := sort.Search(n, func(i int) bool { return pts[i].offset >= x })
	switch {
	case i == n:
		return 0, "", false
	case i > 0:
		age, m = between(pts[i-1], pts[i], x, now), MethodInterpolated
	default:
		j := sort.Search(len(anchors), func(j int) bool { return anchors[j].offset >= x })
		above := pts[0]
		if j < len(anchors) {
			above = anchors[j]
		}
		if j > 0 {
			age, m = between(anchors[j-1], above, x, now), MethodInterpolated
			break
		}
		if now <= above.first {
			return 0, "", false
		}
		age, m = seconds(now-above.first), MethodLowerBound
	}
	if math.IsNaN(age) || math.IsInf(age, 0) {
		return 0, "", false
	}
	if age < 0 {
		// now precedes the history (a Compute with an older observation).
		age = 0
	}
	return age, m, true
}

// between interpolates the time the log end reached x, a.offset < x <=
// b.offset, over the interval (a.last, b.first] in which the records
// between a and b were appended, and returns its age at now.
func between(a, b point, x, now int64) float64 {
	frac := float64(x-a.offset) / float64(b.offset-a.offset)
	return seconds(now-a.last) - frac*seconds(b.first-a.last)
}

func seconds(nanos int64) float64 {
	return float64(nanos) / 1e9
}
