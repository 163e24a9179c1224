// Package rebalance turns successive group observations into rebalance
// events and per-group statistics. It does no I/O: time comes from the
// observations, so a sequence of observations fully determines the result.
//
// # Counting rebalances
//
// A rebalance is what moves a group to its next generation (classic) or
// group epoch (KIP-848), so the tracker counts generation bumps wherever a
// GenerationSource can tell them, and falls back to what describe output
// shows where none can:
//
//   - With a generation from the same source in this observation and in an
//     earlier one (the baseline), the rebalances since the baseline are the
//     delta, minus whatever the fallback already counted since then. So 3
//     epoch bumps between polls count 3, and a classic rebalance counted
//     when it was seen starting (its metadata is not trusted until Stable)
//     is not counted again when the generation shows up after it.
//   - Without one, a contiguous stretch of rebalancing observations counts
//     one, when it is first seen; and between two settled (non-rebalancing)
//     observations, a change of member set or of partition assignment
//     counts one that completed between polls. A stretch ending with a
//     changed member set is still one rebalance.
//   - Empty counts like any member set: a group whose last member leaves
//     is one rebalance, as the classic coordinator moves it to Empty with a
//     new generation, and members joining an Empty group are another.
//   - A generation lower than the baseline means the group was deleted and
//     recreated: the baseline is reset and that observation counts nothing.
//     A change of source (say an exact source starts answering) also just
//     resets the baseline: values of different sources are not compared.
//   - The first observation of a group counts nothing, and a rebalance
//     already running then has no known start and is not timed. A group
//     missing from an observation is dropped; if it comes back it starts
//     over.
//
// Members are identified by group.instance.id when set, else by member ID.
// A static member that restarts comes back under a new member ID but the
// same instance ID; the coordinator hands it its old assignment without a
// rebalance (KIP-345), so it counts as a rejoin, not a leave and a join,
// and does not count as a membership change.
//
// # States
//
// Stable and Empty are settled; PreparingRebalance, CompletingRebalance,
// Assigning and Reconciling are rebalancing, and so is a KIP-848 group with
// members whose assignment epoch lags the group epoch or whose assignment
// differs from its target. Dead, Unknown and unrecognised states carry no
// usable membership (Dead groups are being unloaded or deleted), so such an
// observation only refreshes State, Members and ObservedAt.
//
// # Durations and owner changes
//
// A rebalance seen in progress is timed from the first observation that
// saw it to the first settled one, and observed into the histogram once.
// One that completed between polls has no known duration and is counted
// but not timed.
//
// Partition owner changes are counted between settled observations: each
// partition owned now by a different member than at the last settled
// observation that had it owned counts once. Partitions that become owned
// for the first time, or stop being owned, count nothing. Owners are
// remembered across Empty, so members replacing a group's previous ones
// take its partitions over as owner changes.
package rebalance

import (
	"sort"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/cluster"
)

// DefaultHistorySize is how many events a group keeps when
// Options.HistorySize is 0.
const DefaultHistorySize = 20

// Options configures a Tracker.
type Options struct {
	// HistorySize bounds GroupStats.History: 0 means DefaultHistorySize,
	// negative keeps no history.
	HistorySize int
	// Sources are asked in order; the first that answers gives the
	// generation. nil means DefaultSources(); an empty non-nil slice
	// disables generation tracking.
	Sources []GenerationSource
	Logger  zerolog.Logger
	// MissingPolls is how many observations in a row a group must be
	// missing from before it is forgotten; 0 means DefaultMissingPolls.
	MissingPolls int
}

// DefaultMissingPolls is Options.MissingPolls when it is 0.
const DefaultMissingPolls = 3

// Tracker follows rebalances across observations. It is safe for
// concurrent use: one goroutine feeding Observe while others call Stats.
type Tracker struct {
	historySize  int
	missingPolls int
	sources      []GenerationSource
	bounds       []float64
	log          zerolog.Logger

	mu       sync.Mutex
	last     time.Time // time of the latest accepted observation
	haveLast bool
	groups   map[string]*groupTracker
}

// NewTracker returns a Tracker with no groups.
func NewTracker(opts Options) *Tracker {
	t := &Tracker{
		historySize: opts.HistorySize,
		sources:     opts.Sources,
		bounds:      append([]float64(nil), DurationBuckets...),
		log:         opts.Logger,
		groups:      map[string]*groupTracker{},
	}
	if t.historySize == 0 {
		t.historySize = DefaultHistorySize
	}
	t.missingPolls = opts.MissingPolls
	if t.missingPolls <= 0 {
		t.missingPolls = DefaultMissingPolls
	}
	if t.sources == nil {
		t.sources = DefaultSources()
	} else {
		t.sources = append([]GenerationSource(nil), t.sources...)
	}
	return t
}

// Observe folds one poll into the tracker and returns the events that
// started or completed with it, ordered by group, for logging. An
// observation older than the previous one is ignored: durations would go
// negative. A group missing from Options.MissingPolls observations in a row
// is taken as deleted; one missing from fewer keeps its state, because a
// group that moves to another coordinator between two ListGroups calls can
// be absent from one poll, and dropping it would lose its counters and the
// rebalance that came with the move. A nil entry in Groups is skipped, the
// group kept as is.
func (t *Tracker) Observe(obs *cluster.GroupsObservation) []Event {
	if obs == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.haveLast && obs.Time.Before(t.last) {
		t.log.Warn().Time("time", obs.Time).Time("previous", t.last).Msg("ignoring group observation older than the previous one")
		return nil
	}
	t.last, t.haveLast = obs.Time, true

	for name, gt := range t.groups {
		if _, ok := obs.Groups[name]; ok {
			gt.missed = 0
			continue
		}
		if gt.missed++; gt.missed >= t.missingPolls {
			delete(t.groups, name)
		}
	}
	names := make([]string, 0, len(obs.Groups))
	for name, g := range obs.Groups {
		if g != nil {
			names = append(names, name)
		}
	}
	sort.Strings(names)

	var events []Event
	for _, name := range names {
		gt := t.groups[name]
		if gt == nil {
			gt = newGroupTracker(name, t.bounds)
			t.groups[name] = gt
		}
		events = append(events, gt.observe(obs.Groups[name], obs.Time, t)...)
	}
	return events
}

// Stats returns a deep copy of the statistics of every group in the
// latest observation; groups kept through a short absence are left out
// until they are seen again.
func (t *Tracker) Stats() map[string]GroupStats {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]GroupStats, len(t.groups))
	for name, gt := range t.groups {
		if gt.missed == 0 {
			out[name] = gt.stats.clone()
		}
	}
	return out
}

// read asks the sources in order for g's generation.
func (t *Tracker) read(g *cluster.Group) generation {
	for _, s := range t.sources {
		if gen, ok := s.Generation(g); ok {
			return generation{value: gen, source: s.Name(), known: true}
		}
	}
	return generation{}
}
