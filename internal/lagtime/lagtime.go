// Package lagtime turns offset lag into time lag: for every consumer group
// and partition, how long ago the record at the group's committed offset was
// appended, i.e. the age of the oldest record the group has not consumed.
//
// The package does no I/O. Its evidence is a small per-partition history
// of log end offsets, one point per offsets poll, and the record
// timestamps the poller read into the observation
// (OffsetsObservation.RecordTimes). Definitions, for committed offset C,
// log end E and poll time now:
//
//   - C >= E: the group has consumed everything; the lag is exactly 0, no
//     matter how long the topic has been silent.
//   - C < E: the first unconsumed record is the one at offset C. It was
//     appended when the log end moved from C to C+1, so the lag is
//     now - t(C+1), where t(X) is the time the log end first reached X.
//     The lag of a group stuck behind a topic that has gone silent keeps
//     growing with the wall clock, as the age of that record does.
//   - The record's own timestamp, when the observation has it, is used as
//     is: now - timestamp, clamped at 0 (MethodExact).
//   - Otherwise t(X) inside the history is interpolated between the last
//     time the log end was below X and the first time it was seen at or
//     above X: the record was appended in that interval, so the error is
//     at most the time between those two polls (MethodInterpolated).
//   - A record older than the history (C below the oldest point's log
//     end) is interpolated the same way between the timestamps the
//     observation holds for other records of the partition that bracket
//     it (anchors), the oldest point closing the top (MethodInterpolated).
//   - Below every anchor, the evidence only says the record was appended
//     no later than the oldest anchor, or else the oldest point: the value
//     is that lower bound, now minus that time (MethodLowerBound). The true
//     lag is at least as large. Nothing is extrapolated: a production rate
//     seen by the history says nothing about how fast older records were
//     written (issue 10: a backlog written in one second before the
//     exporter started, dated with a rate of a few records a minute,
//     came out 10 and 73 times older than the world;
//     TestSparseProductionNeverOverstates). A lower bound of 0
//     (the first poll) is no value at all: the partition is not exported.
//
// So a value is never larger than the evidence allows, given record
// timestamps that do not decrease with the offset: inside the history and
// between anchors it lies in the interval the record was appended in, and
// below them it is a lower bound. Anchors are made monotonic before use
// (a timestamp later than the timestamp of a newer record, or than the
// oldest point, is lowered to it), so a producer clock running ahead
// cannot pull an older record's estimate below the evidence.
//
// Exported values are never NaN, negative or infinite. A committed offset
// below the log start offset is dated like any other: the lag then says how
// old the group's position is, although retention has deleted the records.
//
// Each history point is one log end offset with the first and the last
// poll time it was seen at, so a flat stretch costs one point. A history
// holds at most Options.MaxPoints points (PointBytes each); when full, every
// second point of its older half is dropped, so old data gets sparser while
// the newer half keeps poll resolution; the oldest point always stays. A
// partition whose log end goes backwards was recreated: its history
// restarts. Partitions missing from an observation are forgotten.
//
// The poller reads record timestamps for the records older than its own
// first log end of the partition (KRE_LAG_TIMESTAMP_READS_PER_POLL per
// poll, cached), or, in exact mode (KRE_LAG_EXACT), for every committed
// offset that is behind. The rules above hold whichever records it read.
package lagtime

import (
	"cmp"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/cluster"
)

// Options configures an Estimator. The values are taken as given; their
// defaults live in the config package (KRE_LAG_HISTORY_POINTS).
type Options struct {
	// MaxPoints bounds each partition's history (values below 4 become 4).
	MaxPoints int
	Logger    zerolog.Logger
}

// Method says how a PartitionLag value was obtained.
type Method string

const (
	MethodCaughtUp     Method = "caught_up"    // committed >= log end: exactly 0
	MethodInterpolated Method = "interpolated" // between two points of evidence (history points, anchors)
	MethodLowerBound   Method = "lower_bound"  // older than all evidence: the lag is at least this
	MethodExact        Method = "exact"        // the record's timestamp, read by the poller
)

// PartitionLag is one partition's lag in seconds for one group.
type PartitionLag struct {
	Topic     string
	Partition int32
	Seconds   float64
	Method    Method
}

// GroupLag holds a group's partitions that have a value, sorted by topic
// and partition, and the largest of their values.
type GroupLag struct {
	Group      string
	MaxSeconds float64
	Partitions []PartitionLag
}

// Result is the lag of every group at one observation. Groups is sorted by
// name and holds only groups with at least one partition value. A Result is
// never modified after Compute returns it, so it can be shared with
// readers; they must not modify it either.
type Result struct {
	Time   time.Time
	Groups []GroupLag
}

// Group returns the named group's lag.
func (r Result) Group(name string) (GroupLag, bool) {
	i, found := sort.Find(len(r.Groups), func(i int) int { return cmp.Compare(name, r.Groups[i].Group) })
	if !found {
		return GroupLag{}, false
	}
	return r.Groups[i], true
}

// Partition returns one partition's lag.
func (g GroupLag) Partition(topic string, partition int32) (PartitionLag, bool) {
	i, found := sort.Find(len(g.Partitions), func(i int) int {
		p := g.Partitions[i]
		return cmp.Or(cmp.Compare(topic, p.Topic), cmp.Compare(partition, p.Partition))
	})
	if !found {
		return PartitionLag{}, false
	}
	return g.Partitions[i], true
}

// Estimator keeps the log end histories. It is safe for concurrent use;
// normally one poll loop calls Observe and then Compute.
type Estimator struct {
	opts Options

	mu    sync.Mutex
	parts map[cluster.TopicPartition]*history
}

// New returns an Estimator with no history.
func New(opts Options) *Estimator {
	opts.MaxPoints = max(opts.MaxPoints, minPoints)
	return &Estimator{
		opts:  opts,
		parts: make(map[cluster.TopicPartition]*history),
	}
}

// Observe adds the log end offsets of one poll to the histories and forgets
// partitions the poll no longer lists. Partitions with an unknown log end
// (-1) keep their history unchanged. An observation with an unusable time
// (zero, or outside 1970..2200) is ignored.
func (e *Estimator) Observe(obs *cluster.OffsetsObservation) {
	if obs == nil || !usableTime(obs.Time) {
		return
	}
	now := obs.Time.UnixNano()
	e.mu.Lock()
	defer e.mu.Unlock()
	for name, topic := range obs.Topics {
		if topic == nil {
			continue
		}
		for id, p := range topic.Partitions {
			if p.Newest < 0 {
				continue
			}
			tp := cluster.TopicPartition{Topic: name, Partition: id}
			h := e.parts[tp]
			if h == nil {
				h = newHistory(e.opts.MaxPoints)
				e.parts[tp] = h
			}
			if h.observe(p.Newest, now) == observeReset {
				e.opts.Logger.Debug().Str("topic", name).Int32("partition", id).
					Int64("log_end", p.Newest).Msg("log end went backwards, partition recreated: lag history reset")
			}
		}
	}
	for tp := range e.parts {
		if _, ok := obs.Topics[tp.Topic].Partition(tp.Partition); !ok {
			delete(e.parts, tp)
		}
	}
}

// Compute returns the lag of every committed partition of obs, using
// obs.Time as now and obs's log end offsets for the caught-up test. Call
// Observe(obs) first; if a log end in obs is ahead of the history, obs is
// used as a provisional newest point. A partition that is behind and whose
// record timestamp obs carries (obs.RecordTimes) gets now − that
// timestamp, clamped at 0 for producer clocks ahead of ours; the others
// get the estimate, which uses the timestamps of the partition's other
// records older than the history as anchors.
func (e *Estimator) Compute(obs *cluster.OffsetsObservation) Result {
	return buildResult(obs, e.compute(obs))
}

// entry is one group partition during a Compute.
type entry struct {
	group string
	lag   PartitionLag
	ok    bool
}

func (e *Estimator) compute(obs *cluster.OffsetsObservation) []entry {
	if obs == nil || !usableTime(obs.Time) {
		return nil
	}
	now := obs.Time.UnixNano()
	e.mu.Lock()
	defer e.mu.Unlock()
	anchors := e.anchorsLocked(obs, now)
	var entries []entry
	for group, topics := range obs.Committed {
		for topic, parts := range topics {
			t := obs.Topics[topic]
			for id, committed := range parts {
				lag, ok := cluster.Lag(t, id, committed)
				if !ok {
					continue
				}
				en := entry{group: group, lag: PartitionLag{Topic: topic, Partition: id}}
				tp := cluster.TopicPartition{Topic: topic, Partition: id}
				if lag == 0 {
					en.lag.Method, en.ok = MethodCaughtUp, true
				} else if at, exact := obs.RecordTimes[cluster.Record{Topic: topic, Partition: id, Offset: committed}]; exact {
					en.lag.Seconds = max(0, obs.Time.Sub(at).Seconds())
					en.lag.Method, en.ok = MethodExact, true
				} else {
					en.lag.Seconds, en.lag.Method, en.ok = estimate(e.pointsLocked(tp, t.Partitions[id].Newest, now),
						anchors[tp], committed+1, now)
				}
				entries = append(entries, en)
			}
		}
	}
	return entries
}

// pointsLocked returns the history of tp for an estimate at now, with the
// observation's log end newest as a provisional newest point when the
// history has not seen it.
func (e *Estimator) pointsLocked(tp cluster.TopicPartition, newest, now int64) []point {
	var pts []point
	if h := e.parts[tp]; h != nil {
		pts = h.points
	}
	if n := len(pts); n == 0 || newest > pts[n-1].offset && now >= pts[n-1].last {
		// Full slice expression: the append must copy, never write into
		// the history's spare capacity.
		pts = append(pts[:n:n], point{offset: newest, first: now, last: now})
	}
	return pts
}

// oldestLocked is pointsLocked(tp, newest, now)[0] without the copy.
func (e *Estimator) oldestLocked(tp cluster.TopicPartition, newest, now int64) point {
	if h := e.parts[tp]; h != nil && len(h.points) > 0 {
		return h.points[0]
	}
	return point{offset: newest, first: now, last: now}
}

// anchorsLocked turns the record timestamps of obs that predate the
// history of their partition into anchors, per partition: point{C+1, T, T}
// for the record at C appended at T, sorted by offset, not above the
// oldest point (one at its offset dates it more tightly), and with times
// made non-decreasing and not later than the oldest point's first time
// (each is lowered to the next one's).
func (e *Estimator) anchorsLocked(obs *cluster.OffsetsObservation, now int64) map[cluster.TopicPartition][]point {
	if len(obs.RecordTimes) == 0 {
		return nil
	}
	out := map[cluster.TopicPartition][]point{}
	for r, at := range obs.RecordTimes {
		if !usableTime(at) {
			continue
		}
		tp := cluster.TopicPartition{Topic: r.Topic, Partition: r.Partition}
		p, ok := obs.Topics[r.Topic].Partition(r.Partition)
		if !ok || p.Newest < 0 || r.Offset < 0 || r.Offset >= p.Newest {
			continue
		}
		if r.Offset >= e.oldestLocked(tp, p.Newest, now).offset {
			continue
		}
		t := at.UnixNano()
		out[tp] = append(out[tp], point{offset: r.Offset + 1, first: t, last: t})
	}
	for tp, as := range out {
		slices.SortFunc(as, func(a, b point) int { return cmp.Compare(a.offset, b.offset) })
		next := e.oldestLocked(tp, obs.Topics[tp.Topic].Partitions[tp.Partition].Newest, now).first
		for i := len(as) - 1; i >= 0; i-- {
			as[i].first = min(as[i].first, next)
			as[i].last = as[i].first
			next = as[i].first
		}
	}
	return out
}

func buildResult(obs *cluster.OffsetsObservation, entries []entry) Result {
	var r Result
	if obs != nil {
		r.Time = obs.Time
	}
	slices.SortFunc(entries, func(a, b entry) int {
		return cmp.Or(cmp.Compare(a.group, b.group), cmp.Compare(a.lag.Topic, b.lag.Topic),
			cmp.Compare(a.lag.Partition, b.lag.Partition))
	})
	for _, en := range entries {
		if !en.ok {
			continue
		}
		if n := len(r.Groups); n == 0 || r.Groups[n-1].Group != en.group {
			r.Groups = append(r.Groups, GroupLag{Group: en.group})
		}
		g := &r.Groups[len(r.Groups)-1]
		g.Partitions = append(g.Partitions, en.lag)
		g.MaxSeconds = max(g.MaxSeconds, en.lag.Seconds)
	}
	return r
}

// Partitions returns how many partitions have a history.
func (e *Estimator) Partitions() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.parts)
}
