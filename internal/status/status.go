// Package health rates every consumer group with one status, from the
// offsets polls the exporter runs anyway (no Kafka I/O of its own).
//
// # Inputs and window
//
// Each offsets poll gives, per group, a sample: for every partition the
// group has committed, the committed offset C and the log end offset E
// (E unknown when the poll could not read it). A partition's lag is
// max(0, E-C); the group's lag is the sum over partitions whose E is known.
// The member count comes from the latest groups poll (the last known count
// when the group is missing from it). The window is the group's last
// Config.Window samples; it is "full" once it holds that many.
//
// A "commit movement" is a poll at which some committed offset of the
// group differs from the previous poll, or a partition gets its first
// commit. The usual commit interval U is the median of the last 8 intervals
// between movements; it is known once 3 intervals were measured. The STOP
// threshold is Config.StopAfter, or Config.StopFactor*U when U is known and
// that is longer.
//
// A partition is stuck when the window is full, the partition is in every
// sample with the same committed offset and a known lag above 0 in each,
// and, when U is known, its committed offset has not moved for more than
// 2*U (so a group that commits less often than the window is long does not
// look stuck between its commits).
//
// # Rules, first match wins
//
//  1. UNKNOWN: the group has no committed offsets.
//  2. ERR: a stuck partition has lag >= Config.ErrLag.
//  3. REWIND: within the window, a partition's committed offset is lower
//     than at the previous sample that had it, and its log end did not drop
//     as well (a recreated topic is not a rewind).
//  4. STOP: no commit movement for at least the STOP threshold (counted
//     from the first poll that saw the group when it never moved), and the
//     group lags (lag > 0): consumption stopped while there is something to
//     consume. A caught-up group with no members is idle, not stopped.
//  5. STALL: the group has members (count known and > 0) and at least one
//     stuck partition.
//  6. WARN: the window is full, the group's lag was above 0 at every sample
//     and never decreased from one
//     sample to the next, and it is higher at the newest sample than at the
//     oldest; when U is known, the window must also span at least U (lag
//     always grows between the commits of a group that commits less often
//     than the window is long).
//  7. OK: the lag is 0 with every log end known, or the window is full, or
//     a commit movement happened inside the window.
//  8. UNKNOWN: otherwise, not enough data yet.
//
// Precedence is therefore ERR > REWIND > STOP > STALL > WARN > OK > UNKNOWN.
// A group seen once is OK when it has no lag and UNKNOWN otherwise (STOP
// is the only other rule that needs no full window, and it needs time).
// A group committing less often than the window is long shows STALL
// between its commits until U is known. Groups missing from both the
// committed offsets and the groups poll are forgotten with their window.
// docs/status.md restates these rules for users.
package status

import (
	"cmp"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/cluster"
)

// Status names, as exported in the status label.
const (
	StatusUnknown = "UNKNOWN"
	StatusOK      = "OK"
	StatusWarn    = "WARN"
	StatusStall   = "STALL"
	StatusStop    = "STOP"
	StatusRewind  = "REWIND"
	StatusErr     = "ERR"
)

// Statuses lists every status in export order: the collector exports one
// 0/1 series per entry for each group.
var Statuses = []string{StatusUnknown, StatusOK, StatusWarn, StatusStall, StatusStop, StatusRewind, StatusErr}

// Config holds the thresholds, taken as given; their defaults and
// validation live in the config package (KRE_STATUS_*).
type Config struct {
	// Window is the number of offsets polls evaluated.
	// Env: KRE_STATUS_WINDOW.
	Window int
	// StopAfter is the STOP threshold while the usual commit interval is
	// unknown, and its floor afterwards. Env: KRE_STATUS_STOP_AFTER.
	StopAfter time.Duration
	// StopFactor times the usual commit interval is the STOP threshold when
	// that exceeds StopAfter. Env: KRE_STATUS_STOP_FACTOR.
	StopFactor float64
	// ErrLag is the lag, in records, at which a stuck partition makes the
	// group ERR instead of STALL. Env: KRE_STATUS_ERR_LAG.
	ErrLag int64
	// Logger receives status changes at debug level.
	Logger zerolog.Logger
}

// Result is one group's status.
type Result struct {
	Status string
	// Reason says in a few words why, for the JSON API and logs.
	Reason string
	// Since is the time of the first poll that gave the group this status.
	Since time.Time
	// Polls is how many polls the window holds.
	Polls int
	// Lag is the group's lag at the newest poll, in records, over the
	// partitions whose log end is known.
	Lag int64
	// Members is the member count used, -1 when never known.
	Members int
	// CommitInterval is the learned usual commit interval, 0 until known.
	CommitInterval time.Duration
}

const (
	maxIntervals = 8 // commit intervals remembered per group
	minIntervals = 3 // intervals needed before the median is trusted
	stuckFactor  = 2 // a stuck partition has not moved for more than 2*U
)

// Evaluator keeps each group's window. It is safe for concurrent use.
// Memory per group is about Window * committed partitions * 60 bytes.
type Evaluator struct {
	cfg Config

	mu     sync.Mutex
	newest time.Time
	groups map[string]*groupWindow
	last   map[string]Result
}

type offsets struct {
	committed int64
	end       int64 // -1 when unknown
}

type sample struct {
	at       time.Time
	parts    map[cluster.TopicPartition]offsets
	lag      int64
	allKnown bool // every partition's log end was known
}

type groupWindow struct {
	samples   []sample // oldest first
	lastMove  time.Time
	moved     bool // lastMove is a movement, not the first sighting
	partMove  map[cluster.TopicPartition]time.Time
	intervals []time.Duration
	members   int
	status    string
	since     time.Time
}

// New returns an Evaluator with no history.
func New(cfg Config) *Evaluator {
	return &Evaluator{cfg: cfg, groups: make(map[string]*groupWindow), last: map[string]Result{}}
}

// Observe adds one offsets poll and returns the status of every group it
// or the groups poll lists; the map is the caller's. groups may be nil
// (no groups poll yet: member counts unknown). An observation not newer
// than the last one changes nothing and returns the previous statuses.
func (e *Evaluator) Observe(offs *cluster.OffsetsObservation, groups *cluster.GroupsObservation) map[string]Result {
	e.mu.Lock()
	defer e.mu.Unlock()
	if offs == nil || offs.Time.IsZero() || !offs.Time.After(e.newest) {
		return cloneResults(e.last)
	}
	now := offs.Time
	e.newest = now
	present := make(map[string]bool, len(offs.Committed))
	for name := range offs.Committed {
		present[name] = true
	}
	if groups != nil {
		for name := range groups.Groups {
			present[name] = true
		}
	}
	results := make(map[string]Result, len(present))
	for name := range present {
		g := e.groups[name]
		if g == nil {
			g = &groupWindow{lastMove: now, members: -1, partMove: map[cluster.TopicPartition]time.Time{}}
			e.groups[name] = g
		}
		if groups != nil {
			if desc := groups.Groups[name]; desc != nil {
				g.members = len(desc.Members)
			}
		}
		g.add(newSample(now, offs, offs.Committed[name]), e.cfg.Window)
		r := g.evaluate(e.cfg, now)
		if r.Status != g.status {
			e.cfg.Logger.Debug().Str("group", name).Str("from", g.status).Str("to", r.Status).
				Str("reason", r.Reason).Msg("consumer group status changed")
			g.status, g.since = r.Status, now
		}
		r.Since = g.since
		results[name] = r
	}
	for name := range e.groups {
		if !present[name] {
			delete(e.groups, name)
		}
	}
	e.last = results
	return cloneResults(results)
}

func cloneResults(m map[string]Result) map[string]Result {
	out := make(map[string]Result, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func newSample(now time.Time, offs *cluster.OffsetsObservation, committed map[string]map[int32]int64) sample {
	s := sample{at: now, parts: map[cluster.TopicPartition]offsets{}, allKnown: true}
	for topic, parts := range committed {
		t := offs.Topics[topic]
		for id, c := range parts {
			if c < 0 {
				continue
			}
			o := offsets{committed: c, end: -1}
			if lag, ok := cluster.Lag(t, id, c); ok {
				o.end = t.Partitions[id].Newest
				s.lag += lag
			} else {
				s.allKnown = false
			}
			s.parts[cluster.TopicPartition{Topic: topic, Partition: id}] = o
		}
	}
	return s
}

// add appends s to the window and tracks commit movements.
func (g *groupWindow) add(s sample, window int) {
	if n := len(g.samples); n > 0 {
		prev := g.samples[n-1].parts
		moved := false
		for tp, o := range s.parts {
			if p, ok := prev[tp]; !ok || p.committed != o.committed {
				moved = true
				g.partMove[tp] = s.at
			}
		}
		if moved {
			if g.moved {
				g.intervals = append(g.intervals, s.at.Sub(g.lastMove))
				if len(g.intervals) > maxIntervals {
					g.intervals = slices.Delete(g.intervals, 0, len(g.intervals)-maxIntervals)
				}
			}
			g.lastMove, g.moved = s.at, true
		}
	}
	for tp := range s.parts {
		if _, ok := g.partMove[tp]; !ok {
			g.partMove[tp] = s.at
		}
	}
	for tp := range g.partMove {
		if _, ok := s.parts[tp]; !ok {
			delete(g.partMove, tp)
		}
	}
	g.samples = append(g.samples, s)
	if len(g.samples) > window {
		g.samples = slices.Delete(g.samples, 0, len(g.samples)-window)
	}
}

// usualInterval is the median of the remembered commit intervals.
func (g *groupWindow) usualInterval() (time.Duration, bool) {
	if len(g.intervals) < minIntervals {
		return 0, false
	}
	sorted := slices.Clone(g.intervals)
	slices.Sort(sorted)
	return sorted[len(sorted)/2], true
}

type stuckPartition struct {
	tp        cluster.TopicPartition
	committed int64
	lag       int64
	idle      time.Duration
}

func (g *groupWindow) evaluate(cfg Config, now time.Time) Result {
	n := len(g.samples)
	latest, oldest := g.samples[n-1], g.samples[0]
	full := n == cfg.Window
	usual, learned := g.usualInterval()
	r := Result{Polls: n, Lag: latest.lag, Members: g.members}
	if learned {
		r.CommitInterval = usual
	}
	set := func(status, format string, args ...any) Result {
		r.Status, r.Reason = status, fmt.Sprintf(format, args...)
		return r
	}

	if len(latest.parts) == 0 {
		return set(StatusUnknown, "no committed offsets")
	}

	stuck := g.stuckPartitions(full, learned, usual, now)
	if len(stuck) > 0 && stuck[0].lag >= cfg.ErrLag {
		s := stuck[0]
		return set(StatusErr, "%s stuck at offset %d for %s with lag %d >= %d%s",
			tpString(s.tp), s.committed, round(s.idle), s.lag, cfg.ErrLag, more(len(stuck)-1, "stuck partition"))
	}

	if tp, from, to, ok := g.rewind(); ok {
		return set(StatusRewind, "committed offset of %s went back from %d to %d", tpString(tp), from, to)
	}

	threshold := cfg.StopAfter
	if learned {
		threshold = max(threshold, time.Duration(cfg.StopFactor*float64(usual)))
	}
	if idle := now.Sub(g.lastMove); idle >= threshold && latest.lag > 0 {
		since := "commit"
		if !g.moved {
			since = "commit seen"
		}
		return set(StatusStop, "no %s for %s (threshold %s); lag %d, %s", since, round(idle), round(threshold),
			latest.lag, membersString(g.members))
	}

	if g.members > 0 && len(stuck) > 0 {
		s := stuck[0]
		return set(StatusStall, "%s stuck at offset %d for %s with lag %d while %s present%s",
			tpString(s.tp), s.committed, round(s.idle), s.lag, membersString(g.members), more(len(stuck)-1, "stuck partition"))
	}

	coversInterval := !learned || latest.at.Sub(oldest.at) >= usual
	if full && coversInterval && latest.lag > oldest.lag && lagNeverFell(g.samples) {
		return set(StatusWarn, "lag grew from %d to %d over the last %d polls", oldest.lag, latest.lag, n)
	}

	movedInWindow := g.moved && g.lastMove.After(oldest.at)
	switch {
	case latest.lag == 0 && latest.allKnown:
		return set(StatusOK, "no lag")
	case movedInWindow:
		return set(StatusOK, "lag %d, consumer committing", latest.lag)
	case full:
		return set(StatusOK, "lag %d, not growing", latest.lag)
	}
	return set(StatusUnknown, "not enough data yet (%d of %d polls)", n, cfg.Window)
}

// stuckPartitions returns the stuck partitions, largest lag first.
func (g *groupWindow) stuckPartitions(full, learned bool, usual time.Duration, now time.Time) []stuckPartition {
	if !full {
		return nil
	}
	n := len(g.samples)
	var stuck []stuckPartition
	for tp, o := range g.samples[n-1].parts {
		if !lagging(o) {
			continue
		}
		same := true
		for _, s := range g.samples[:n-1] {
			p, ok := s.parts[tp]
			if !ok || p.committed != o.committed || !lagging(p) {
				same = false
				break
			}
		}
		if !same {
			continue
		}
		idle := now.Sub(g.partMove[tp])
		if learned && idle <= stuckFactor*usual {
			continue
		}
		stuck = append(stuck, stuckPartition{tp: tp, committed: o.committed, lag: o.end - o.committed, idle: idle})
	}
	slices.SortFunc(stuck, func(a, b stuckPartition) int {
		return cmp.Or(cmp.Compare(b.lag, a.lag), cmp.Compare(a.tp.Topic, b.tp.Topic), cmp.Compare(a.tp.Partition, b.tp.Partition))
	})
	return stuck
}

func lagging(o offsets) bool { return o.end >= 0 && o.end > o.committed }

// rewind finds the newest backwards step of a committed offset in the window.
func (g *groupWindow) rewind() (tp cluster.TopicPartition, from, to int64, found bool) {
	prev := map[cluster.TopicPartition]offsets{}
	for _, s := range g.samples {
		stepFound := false
		var stepTP cluster.TopicPartition
		var stepFrom, stepTo int64
		for p, o := range s.parts {
			before, ok := prev[p]
			prev[p] = o
			if !ok || o.committed >= before.committed {
				continue
			}
			if o.end >= 0 && before.end >= 0 && o.end < before.end {
				continue // the log itself went back: recreated topic
			}
			if !stepFound || p.Topic < stepTP.Topic || p.Topic == stepTP.Topic && p.Partition < stepTP.Partition {
				stepFound, stepTP, stepFrom, stepTo = true, p, before.committed, o.committed
			}
		}
		if stepFound {
			found, tp, from, to = true, stepTP, stepFrom, stepTo
		}
	}
	return tp, from, to, found
}

// lagNeverFell also rejects a window in which the group was caught up at
// any poll: a consumer that reached the log end is keeping up, and the
// single record that arrived after it is not a trend.
func lagNeverFell(samples []sample) bool {
	for i := range samples {
		if samples[i].lag == 0 || i > 0 && samples[i].lag < samples[i-1].lag {
			return false
		}
	}
	return true
}

func tpString(tp cluster.TopicPartition) string {
	return fmt.Sprintf("%s/%d", tp.Topic, tp.Partition)
}

func round(d time.Duration) time.Duration { return d.Round(time.Second) }

func membersString(n int) string {
	switch {
	case n < 0:
		return "members unknown"
	case n == 1:
		return "1 member"
	}
	return fmt.Sprintf("%d members", n)
}

func more(n int, what string) string {
	switch {
	case n <= 0:
		return ""
	case n == 1:
		return fmt.Sprintf(" (and 1 more %s)", what)
	}
	return fmt.Sprintf(" (and %d more %ss)", n, what)
}
