// Package state keeps the exporter's current view of the cluster: the
// latest successful observations of both poll loops plus everything
// derived from them, published as one immutable Snapshot that scrapes and
// the JSON API read without locks and without touching Kafka.
package store

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/cluster"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/kafka"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/lagtime"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/rebalance"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/status"
)

// Loop names, as used in the self-health metrics' loop label.
const (
	LoopGroups  = "groups"
	LoopOffsets = "offsets"
)

// Loops lists the poll loops in export order.
var Loops = []string{LoopGroups, LoopOffsets}

// LoopStatus is what the self-health metrics report about one poll loop.
type LoopStatus struct {
	Polls       uint64
	LastAttempt time.Time
	LastSuccess time.Time // zero until the first successful poll
	LastOK      bool
	LastError   string
	// LastDuration of the last poll, successful or not.
	LastDuration time.Duration
}

// Snapshot is one consistent view. Nothing in it is modified after it is
// published; a poll builds a new Snapshot that shares unchanged parts.
type Snapshot struct {
	// The latest observations, possibly partial (see LoopStatus.LastOK);
	// nil until a poll produced one.
	Groups  *cluster.GroupsObservation
	Offsets *cluster.OffsetsObservation
	Loops   map[string]LoopStatus
	// StageErrors counts failed poll steps by stage since start.
	StageErrors map[string]uint64
	// PollDurations keeps every poll's duration for the histogram.
	PollDurations map[string]*DurationHistogram

	// Derived from the groups observations: rebalance statistics by group.
	Rebalance map[string]rebalance.GroupStats
	// Derived from the offsets observations: lag in seconds and status.
	LagSeconds lagtime.Result
	Status     map[string]status.Result
}

// Ready reports whether both loops have produced an observation, possibly
// partial, at least once.
func (s *Snapshot) Ready() bool { return s.Groups != nil && s.Offsets != nil }

// Analyzers turn successive observations into derived data. Each is fed
// from the poll goroutines only; a nil analyzer is skipped.
type Analyzers struct {
	Rebalance *rebalance.Tracker
	Lag       *lagtime.Estimator
	Health    *status.Evaluator
	// LagExact makes lag in seconds read record timestamps (bounded by
	// LagExactTimeout per poll) instead of estimating them.
	LagExact        bool
	LagExactTimeout time.Duration
}

// Store receives poll results (it is the poller's Sink) and publishes
// snapshots.
type Store struct {
	log zerolog.Logger
	an  Analyzers
	mu  sync.Mutex // serialises the two poll loops' updates
	cur atomic.Pointer[Snapshot]
}

// NewStore returns a store holding an empty snapshot, with no analyzers.
func NewStore(log zerolog.Logger) *Store { return NewStoreWith(log, Analyzers{}) }

// NewStoreWith returns a store that runs the given analyzers on every
// successful poll.
func NewStoreWith(log zerolog.Logger, an Analyzers) *Store {
	s := &Store{log: log, an: an}
	first := &Snapshot{Loops: map[string]LoopStatus{}, StageErrors: map[string]uint64{}, PollDurations: map[string]*DurationHistogram{}}
	for _, l := range Loops {
		first.Loops[l] = LoopStatus{}
		first.PollDurations[l] = NewDurationHistogram()
	}
	for _, st := range kafka.Stages {
		first.StageErrors[st] = 0
	}
	s.cur.Store(first)
	return s
}

// Current returns the latest snapshot; never nil.
func (s *Store) Current() *Snapshot { return s.cur.Load() }

// LatestGroups implements kafka.Sink.
func (s *Store) LatestGroups() *cluster.GroupsObservation { return s.cur.Load().Groups }

// GroupsPolled implements kafka.Sink.
func (s *Store) GroupsPolled(obs *cluster.GroupsObservation, took time.Duration, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := s.next(LoopGroups, took, err)
	// A partial observation (err != nil) is still newer than the last
	// good one for every broker that answered; the poller carried forward
	// what the others could not say.
	if obs != nil {
		next.Groups = obs
		if s.an.Rebalance != nil {
			for _, ev := range s.an.Rebalance.Observe(obs) {
				s.logRebalance(ev)
			}
			next.Rebalance = s.an.Rebalance.Stats()
		}
	}
	s.cur.Store(next)
}

// logRebalance writes every rebalance once: when it completes, or when it
// is first seen still running (at debug, since its completion follows).
func (s *Store) logRebalance(ev rebalance.Event) {
	e := s.log.Info()
	msg := "consumer group rebalanced"
	if ev.InProgress {
		e, msg = s.log.Debug(), "consumer group rebalance started"
	}
	refs := func(rs []rebalance.MemberRef) []string {
		out := make([]string, 0, len(rs))
		for _, r := range rs {
			out = append(out, r.ClientID+"@"+r.ClientHost)
		}
		return out
	}
	e = e.Str("consumergroup", ev.Group).Str("detection", ev.Detection).Uint64("rebalances", ev.Rebalances).
		Int32("generation_from", ev.GenerationFrom).Int32("generation_to", ev.GenerationTo).
		Str("generation_source", ev.GenerationSource).
		Int("members_joined", ev.JoinedCount).Strs("joined", refs(ev.Joined)).
		Int("members_left", ev.LeftCount).Strs("left", refs(ev.Left)).
		Int("members_rejoined", ev.RejoinedCount).Uint64("partitions_moved", ev.PartitionsMoved)
	if ev.DurationKnown {
		e = e.Float64("duration_seconds", ev.Duration.Seconds())
	}
	e.Msg(msg)
}

// OffsetsPolled implements kafka.Sink. Lag in seconds is computed before
// taking the lock: in exact mode it reads record timestamps from Kafka,
// and the groups loop must not wait for that.
func (s *Store) OffsetsPolled(obs *cluster.OffsetsObservation, took time.Duration, err error) {
	var lag *lagtime.Result
	if obs != nil && s.an.Lag != nil {
		r := s.lagSeconds(obs)
		lag = &r
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	next := s.next(LoopOffsets, took, err)
	if obs != nil {
		next.Offsets = obs
		if lag != nil {
			next.LagSeconds = *lag
		}
		if s.an.Health != nil {
			next.Status = s.an.Health.Observe(obs, next.Groups)
		}
	}
	s.cur.Store(next)
}

func (s *Store) lagSeconds(obs *cluster.OffsetsObservation) lagtime.Result {
	s.an.Lag.Observe(obs)
	if !s.an.LagExact {
		return s.an.Lag.Compute(obs)
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.an.LagExactTimeout)
	defer cancel()
	return s.an.Lag.ComputeExact(ctx, obs)
}

// next copies the current snapshot's bookkeeping and records one poll of
// loop. Failures are logged when a loop starts or stops failing, not on
// every poll, so an outage of hours does not flood the log.
func (s *Store) next(loop string, took time.Duration, err error) *Snapshot {
	prev := s.cur.Load()
	next := *prev
	next.Loops = make(map[string]LoopStatus, len(prev.Loops))
	for k, v := range prev.Loops {
		next.Loops[k] = v
	}
	next.PollDurations = make(map[string]*DurationHistogram, len(prev.PollDurations))
	for k, v := range prev.PollDurations {
		next.PollDurations[k] = v
	}
	next.PollDurations[loop] = prev.PollDurations[loop].With(took)

	ls := next.Loops[loop]
	now := time.Now()
	ls.Polls++
	ls.LastAttempt = now
	ls.LastDuration = took
	wasOK := ls.LastOK || ls.Polls == 1
	if err == nil {
		if !ls.LastOK && ls.Polls > 1 {
			s.log.Info().Str("loop", loop).Msg("poll recovered")
		}
		ls.LastOK, ls.LastError, ls.LastSuccess = true, "", now
	} else {
		ls.LastOK, ls.LastError = false, err.Error()
		next.StageErrors = make(map[string]uint64, len(prev.StageErrors))
		for k, v := range prev.StageErrors {
			next.StageErrors[k] = v
		}
		for _, se := range kafka.StageErrors(err) {
			next.StageErrors[se.Stage]++
		}
		ev := s.log.Debug()
		if wasOK {
			ev = s.log.Warn()
		}
		ev.Str("loop", loop).Err(err).Msg("poll failed; serving what the brokers that answered said, and the last good data for the rest")
	}
	next.Loops[loop] = ls
	return &next
}

// DurationBuckets are the poll duration histogram's bounds in seconds.
var DurationBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// DurationHistogram is an immutable cumulative histogram of poll durations.
type DurationHistogram struct {
	Count   uint64
	Sum     float64
	Buckets map[float64]uint64 // upper bound -> cumulative count
}

// NewDurationHistogram returns an empty histogram.
func NewDurationHistogram() *DurationHistogram {
	h := &DurationHistogram{Buckets: make(map[float64]uint64, len(DurationBuckets))}
	for _, b := range DurationBuckets {
		h.Buckets[b] = 0
	}
	return h
}

// With returns a copy that also counts d.
func (h *DurationHistogram) With(d time.Duration) *DurationHistogram {
	sec := d.Seconds()
	n := &DurationHistogram{Count: h.Count + 1, Sum: h.Sum + sec, Buckets: make(map[float64]uint64, len(h.Buckets))}
	for b, c := range h.Buckets {
		if sec <= b {
			c++
		}
		n.Buckets[b] = c
	}
	return n
}
