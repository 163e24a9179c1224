package rebalance

import (
	"encoding/json"
	"slices"
	"sort"
	"time"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/cluster"
)

// DurationBuckets are the upper bounds, in seconds, of the rebalance
// duration histogram. Polls are ~2 s apart, so the low buckets mostly
// matter for faster poll intervals; the top ones catch rebalances stuck
// behind max.poll.interval.ms (5 min by default) and beyond.
var DurationBuckets = []float64{0.25, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800}

// Detection says what evidence counted a rebalance.
const (
	DetectGeneration = "generation" // classic generation delta (any source but KIP-848)
	DetectEpoch      = "epoch"      // KIP-848 group epoch delta
	DetectState      = "state"      // the group was seen in a rebalancing state
	DetectMembership = "membership" // member set changed between two settled polls
	DetectAssignment = "assignment" // partition assignment changed between two settled polls
)

// MaxMemberRefs bounds the member lists of one Event, so a long rebalance
// with crash-looping members cannot grow it without limit. The matching
// counts stay exact.
const MaxMemberRefs = 100

// MemberRef identifies a member in an Event.
type MemberRef struct {
	MemberID   string `json:"member_id"`
	InstanceID string `json:"instance_id,omitempty"`
	ClientID   string `json:"client_id"`
	ClientHost string `json:"client_host"`
}

// Event is one rebalance, or several generations that completed between
// two polls, as the tracker saw it.
type Event struct {
	Group     string `json:"group"`
	Detection string `json:"detection"` // one of the Detect* constants; how the first rebalance of the event was counted
	// Rebalances is how much this event added to GroupStats.Rebalances. It
	// is 0 for a rebalance the tracker saw but no evidence let it count, for
	// example one already running when the group was first seen.
	Rebalances uint64 `json:"rebalances"`

	// Generation before and after, -1 when unknown.
	GenerationFrom   int32  `json:"generation_from"`
	GenerationTo     int32  `json:"generation_to"`
	GenerationSource string `json:"generation_source"` // source of GenerationTo, else of GenerationFrom; "" when neither is known

	// Members that joined, left, or (static members only) came back under
	// a new member ID. Each list holds at most MaxMemberRefs entries; the
	// counts are exact.
	Joined        []MemberRef `json:"joined"`
	Left          []MemberRef `json:"left"`
	Rejoined      []MemberRef `json:"rejoined"`
	JoinedCount   int         `json:"joined_count"`
	LeftCount     int         `json:"left_count"`
	RejoinedCount int         `json:"rejoined_count"`

	PartitionsMoved uint64 `json:"partitions_moved"` // see GroupStats.PartitionOwnerChanges

	// Started is the first poll that saw the group rebalancing; zero when
	// the rebalance completed between polls, or was already running when
	// the tracker first saw the group.
	Started time.Time `json:"started"`
	// Ended is the first poll that saw the group settled again; zero while
	// InProgress.
	Ended         time.Time     `json:"ended"`
	Duration      time.Duration `json:"-"` // Ended-Started, valid when DurationKnown
	DurationKnown bool          `json:"duration_known"`
	InProgress    bool          `json:"in_progress"`
}

// MarshalJSON adds the duration in seconds, which is what an operator
// reads; the Duration field itself would be nanoseconds.
func (e Event) MarshalJSON() ([]byte, error) {
	type plain Event
	v := struct {
		plain
		DurationSeconds *float64 `json:"duration_seconds,omitempty"`
	}{plain: plain(e)}
	if e.DurationKnown {
		d := e.Duration.Seconds()
		v.DurationSeconds = &d
	}
	return json.Marshal(v)
}

// DurationHistogram is cumulative histogram data in the shape Prometheus
// const histograms take.
type DurationHistogram struct {
	UpperBounds []float64 // seconds; DurationBuckets as of NewTracker, shared by every group
	// CumulativeCounts[i] counts durations <= UpperBounds[i]; the +Inf
	// bucket is Count.
	CumulativeCounts []uint64
	Count            uint64
	Sum              float64 // seconds
}

// BucketMap returns the buckets keyed by upper bound, as
// prometheus.NewConstHistogram wants them.
func (h DurationHistogram) BucketMap() map[float64]uint64 {
	m := make(map[float64]uint64, len(h.UpperBounds))
	for i, b := range h.UpperBounds {
		m[b] = h.CumulativeCounts[i]
	}
	return m
}

func newHistogram(bounds []float64) DurationHistogram {
	return DurationHistogram{
		UpperBounds:      append([]float64(nil), bounds...),
		CumulativeCounts: make([]uint64, len(bounds)),
	}
}

// with returns h with d observed, in new slices: h's are published.
func (h DurationHistogram) with(d time.Duration) DurationHistogram {
	s := d.Seconds()
	counts := slices.Clone(h.CumulativeCounts)
	// Bounds are sorted, so every bucket from the first that fits counts it.
	for i := sort.SearchFloat64s(h.UpperBounds, s); i < len(h.UpperBounds); i++ {
		counts[i]++
	}
	h.CumulativeCounts = counts
	h.Count++
	h.Sum += s
	return h
}

// GroupStats is what the tracker knows about one group. A value from
// Tracker.Stats never changes afterwards; its slices are shared (see
// Tracker.Stats) and must not be written to.
type GroupStats struct {
	Group      string
	ObservedAt time.Time // time of the latest observation that included the group

	// Generation is valid when GenerationKnown; GenerationSource names the
	// source that answered. It is the generation the tracker accounts for
	// in that source's numbering (see the package documentation), which is
	// the source's reading unless that reading is stale or claims more
	// than the members corroborate. While a rebalance is in progress and
	// no source answers (classic groups mid-rebalance), the generation
	// read just before it is kept: it is the last generation the group
	// completed.
	Generation       int32
	GenerationKnown  bool
	GenerationSource string

	AssignmentEpoch      int32 // KIP-848 only, valid when AssignmentEpochKnown
	AssignmentEpochKnown bool

	Rebalances  uint64
	Rebalancing bool
	// RebalanceStarted is the first poll that saw the current rebalance;
	// zero when not Rebalancing.
	RebalanceStarted time.Time
	// LastRebalance is the latest poll that counted a rebalance or saw a
	// timed one complete; zero if neither ever happened.
	LastRebalance time.Time

	// Static members back under a new member ID are neither joins nor
	// leaves; events list them as Rejoined.
	MemberJoins           uint64
	MemberLeaves          uint64
	PartitionOwnerChanges uint64

	Durations DurationHistogram

	// Members is the latest observation's own member slice, not a copy.
	Members []cluster.Member
	History []Event // completed events, oldest first, at most Options.HistorySize
}

// RebalanceInProgress is how long the current rebalance has been seen,
// measured on the observation clock; 0 when none is in progress.
func (s *GroupStats) RebalanceInProgress() time.Duration {
	if !s.Rebalancing {
		return 0
	}
	return s.ObservedAt.Sub(s.RebalanceStarted)
}

func (e *Event) clone() Event {
	c := *e
	c.Joined = append([]MemberRef(nil), e.Joined...)
	c.Left = append([]MemberRef(nil), e.Left...)
	c.Rejoined = append([]MemberRef(nil), e.Rejoined...)
	return c
}
