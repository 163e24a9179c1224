// Package store keeps the exporter's current view of the cluster: the
// latest observations of both poll loops plus everything derived from them
// (rebalances, lag in seconds, status), published as one immutable Snapshot
// that scrapes and the JSON API read without locks.
//
// The store is the poller's Sink and does no I/O: data flows one way,
// Kafka → poller → store → collector and web. The __consumer_offsets
// reader, when on, is a second way in of the same direction: the tracker
// asks its Source for generations, and each snapshot carries the reader's
// view current at its publication.
package store

import (
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/cluster"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/lagtime"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/offsetslog"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/rebalance"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/status"
)

// LoopStatus is what the snapshot says about one poll loop.
type LoopStatus struct {
	// LastSuccess is the time of the loop's last poll that produced an
	// observation, partial or not; zero until the first.
	LastSuccess time.Time
	// Serving is true while the loop's latest poll produced an
	// observation: the exporter serves fresh data for every broker that
	// answered. `up` is all loops serving.
	Serving bool
	// LastOK is true when the latest poll fully succeeded: every broker
	// answered everything.
	LastOK    bool
	LastError string
	polled    bool
}

// Snapshot is one consistent view. Nothing in it is modified after it is
// published; a poll builds a new Snapshot that shares unchanged parts.
type Snapshot struct {
	// The latest observations, possibly partial (see LoopStatus);
	// nil until a poll produced one.
	Groups  *cluster.GroupsObservation
	Offsets *cluster.OffsetsObservation
	Loops   map[string]LoopStatus // by cluster.Loops

	// Derived from the groups observations: rebalance statistics by group.
	Rebalance map[string]rebalance.GroupStats
	// Derived from the offsets observations: lag in seconds and status.
	LagSeconds lagtime.Result
	Status     map[string]status.Result

	// OffsetsLog is what the coordinators' own log said when the snapshot
	// was published (commits, last commit times, members' timeouts); nil
	// when the source is off.
	OffsetsLog *offsetslog.View
}

// Ready reports whether both loops have produced an observation, possibly
// partial, at least once.
func (s *Snapshot) Ready() bool { return s.Groups != nil && s.Offsets != nil }

// Analyzers turn successive observations into derived data. Each is fed
// from the poll goroutines only; a nil analyzer is skipped. None of them
// does I/O: what they need from Kafka (record timestamps for exact lag in
// seconds) is in the observations.
type Analyzers struct {
	Rebalance *rebalance.Tracker
	Lag       *lagtime.Estimator
	Status    *status.Evaluator
}

// Store receives poll results (it is the poller's Sink) and publishes
// snapshots.
type Store struct {
	log  zerolog.Logger
	an   Analyzers
	view func() *offsetslog.View
	now  func() time.Time
	mu   sync.Mutex // serialises the two poll loops' updates
	cur  atomic.Pointer[Snapshot]
}

// Options configure a Store.
type Options struct {
	Log zerolog.Logger
	// Analyzers run on every poll that produced an observation.
	Analyzers Analyzers
	// OffsetsLog returns the __consumer_offsets reader's latest view
	// (offsetslog.Reader.View); nil when the source is off. Each snapshot
	// carries the view current when it was published.
	OffsetsLog func() *offsetslog.View
	// Now stamps successful polls; time.Now when nil.
	Now func() time.Time
}

// New returns a store holding an empty snapshot.
func New(o Options) *Store {
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Store{log: o.Log, an: o.Analyzers, view: o.OffsetsLog, now: o.Now}
	first := &Snapshot{Loops: map[string]LoopStatus{}}
	for _, l := range cluster.Loops {
		first.Loops[l] = LoopStatus{}
	}
	s.cur.Store(first)
	return s
}

// Current returns the latest snapshot; never nil.
func (s *Store) Current() *Snapshot { return s.cur.Load() }

// GroupsPolled implements kafka.Sink.
func (s *Store) GroupsPolled(obs *cluster.GroupsObservation, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := s.next(cluster.LoopGroups, obs != nil, err)
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

// OffsetsPolled implements kafka.Sink.
func (s *Store) OffsetsPolled(obs *cluster.OffsetsObservation, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := s.next(cluster.LoopOffsets, obs != nil, err)
	if obs != nil {
		next.Offsets = obs
		if s.an.Lag != nil {
			s.an.Lag.Observe(obs)
			next.LagSeconds = s.an.Lag.Compute(obs)
		}
		if s.an.Status != nil {
			next.Status = s.an.Status.Observe(obs, next.Groups)
		}
	}
	s.cur.Store(next)
}

// next copies the current snapshot's bookkeeping and records one poll of
// loop. Failures are logged when a loop starts or stops failing, not on
// every poll, so an outage of hours does not flood the log.
func (s *Store) next(loop string, observed bool, err error) *Snapshot {
	prev := s.cur.Load()
	next := *prev
	next.Loops = maps.Clone(prev.Loops)
	ls := next.Loops[loop]
	wasOK := ls.LastOK || !ls.polled
	ls.Serving = observed
	if observed {
		ls.LastSuccess = s.now()
	}
	if err == nil {
		if !ls.LastOK && ls.polled {
			s.log.Info().Str("loop", loop).Msg("poll recovered")
		}
		ls.LastOK, ls.LastError = true, ""
	} else {
		ls.LastOK, ls.LastError = false, err.Error()
		ev := s.log.Debug()
		if wasOK {
			ev = s.log.Warn()
		}
		ev.Str("loop", loop).Err(err).Msg("poll failed; serving what the brokers that answered said, and the last good data for the rest")
	}
	ls.polled = true
	next.Loops[loop] = ls
	if s.view != nil {
		next.OffsetsLog = s.view()
	}
	return &next
}
