// Package rebalance turns successive group observations into rebalance
// events and per-group statistics. It does no I/O: time comes from the
// observations, so a sequence of observations fully determines the result.
// It has no defaults of its own for what the configuration sets (history
// size): Options are taken as given.
//
// # Counting rebalances
//
// A rebalance is what moves a group to its next generation (classic) or
// group epoch (KIP-848), so the tracker counts generation bumps wherever a
// GenerationSource can tell them, and falls back to what describe output
// shows where none can:
//
//   - Without a generation, a contiguous stretch of rebalancing
//     observations counts one, when it is first seen; and between two
//     settled (non-rebalancing) observations, a change of member set or of
//     partition assignment counts one that completed between polls. A
//     stretch ending with a changed member set is still one rebalance.
//     This fallback never counts more than happened.
//   - With a generation from the same source as an earlier reading, the
//     tracker keeps a floor: the generation it has accounted for, that is
//     the reading that started the baseline plus every rebalance counted
//     since (by either rule). A reading above the floor counts the
//     difference; a reading at or below it counts nothing and leaves the
//     floor where it is. So 3 epoch bumps between polls count 3; a classic
//     rebalance counted when it was seen starting (its metadata is not
//     trusted until Stable) is not counted again when the generation shows
//     up after it; and a stale reading, one that trails rebalances already
//     counted, does not make the next reading count them again.
//   - The exported generation is the floor, in the source's numbering,
//     at every observation that has a reading, so between two readings of
//     one source it moves exactly as the counter does. While a rebalance
//     runs without a reading, the last one exported is kept.
//   - Empty counts like any member set: a group whose last member leaves
//     is one rebalance, as the classic coordinator moves it to Empty with a
//     new generation, and members joining an Empty group are another.
//   - A reading lower than the previous reading means the group was
//     deleted and recreated: the baseline restarts from it and that
//     observation counts nothing (for member claims, see below). A change
//     of source (say an exact source starts answering) also restarts the
//     baseline: values of different sources are not compared.
//   - The first observation of a group counts nothing, and a rebalance
//     already running then has no known start and is not timed. A group
//     missing from an observation is dropped; if it comes back it starts
//     over.
//
// # Member claims
//
// The KIP-792 generation is what members put in their own metadata, so
// it is a hint, not a fact: a buggy or hostile member can send any value,
// and a client that rejoins under a new member ID after being removed may
// still send the generation it held then. A member seen at two readings
// under the same member ID took part in every generation in between, so
// an honest one moved its claim by exactly the generations since. When
// such members exist, a reading counts no more than the least of their
// moves (less what the fallback counted since); a reading lower than the
// previous one is a recreation only if one of them moved backwards; and a
// reading that says less than describe output shows counts what describe
// output shows. A forged generation therefore moves neither the counter
// nor the exported generation beyond what the other members corroborate.
// When no member was seen at both readings (every member replaced since),
// nothing can check the reading and it counts like any other; in
// particular such a reading below the previous one is taken as a
// recreation, so a stale one there can still over-count once.
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
// observation only refreshes Members and ObservedAt.
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
//
// # Publication
//
// Tracker.Stats copies each group's statistics (a map of structs) but not
// their slices: a group's Members are the latest observation's own slice,
// and its History, event member lists and histogram slices are shared with
// the tracker and with earlier results. The tracker never writes to a
// slice it has handed out; a change builds a new one, so a group that did
// not change costs nothing but the copy of its struct, and readers must
// not write to what they receive. Observations must likewise stay
// unmodified once observed, as they do everywhere in the exporter.
package rebalance

import (
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/cluster"
)

// Options configures a Tracker.
type Options struct {
	// HistorySize bounds GroupStats.History: each group keeps its latest
	// HistorySize completed events; 0 or less keeps none. The
	// configuration (KRE_REBALANCE_HISTORY) owns the default.
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
	// empty is the histogram every group starts from; its slices, like
	// every published slice, are shared and never written.
	empty DurationHistogram
	log   zerolog.Logger

	mu       sync.Mutex
	last     time.Time // time of the latest accepted observation
	haveLast bool
	groups   map[string]*groupTracker
}

// NewTracker returns a Tracker with no groups.
func NewTracker(opts Options) *Tracker {
	t := &Tracker{
		historySize: max(opts.HistorySize, 0),
		sources:     opts.Sources,
		empty:       newHistogram(DurationBuckets),
		log:         opts.Logger,
		groups:      map[string]*groupTracker{},
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
//
// The tracker keeps references into obs (the members of each group), so
// obs must not be modified afterwards; observations never are.
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
	var events []Event
	for name, g := range obs.Groups {
		if g == nil {
			continue
		}
		gt := t.groups[name]
		if gt == nil {
			gt = newGroupTracker(name, t.empty)
			t.groups[name] = gt
		}
		events = append(events, gt.observe(g, obs.Time, t)...)
	}
	// Groups are independent, so only the events need ordering; sorting
	// them rather than every group name keeps a quiet poll cheap. Each
	// group's own events stay in the order they happened.
	slices.SortStableFunc(events, func(a, b Event) int { return strings.Compare(a.Group, b.Group) })
	return events
}

// Stats returns the statistics of every group in the latest observation;
// groups kept through a short absence are left out until they are seen
// again. The map is the caller's. The GroupStats values are copies, but
// the slices in them (Members, History and its events' member lists,
// Durations) are shared with the tracker, with the observation and with
// earlier results: the tracker never writes to a slice once it has been
// returned (a change builds a new one, so a group that did not change
// hands out the same slices again), and callers must not write to them
// either.
func (t *Tracker) Stats() map[string]GroupStats {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]GroupStats, len(t.groups))
	for name, gt := range t.groups {
		if gt.missed == 0 {
			out[name] = gt.stats
		}
	}
	return out
}

// read asks the sources in order for g's generation.
func (t *Tracker) read(g *cluster.Group) generation {
	for _, s := range t.sources {
		if gen, ok := s.Generation(g); ok {
			_, hint := s.(memberHint)
			scale := s.Name()
			if sc, ok := s.(GenerationScale); ok {
				scale = sc.Scale()
			}
			return generation{value: gen, source: s.Name(), scale: scale, known: true, hint: hint}
		}
	}
	return generation{}
}
