package web

import (
	"maps"
	"slices"
	"time"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/cluster"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/offsetslog"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/rebalance"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/store"
)

// GroupView is the JSON shape of one group in /api/v1/groups.
type GroupView struct {
	Name        string `json:"name"`
	Type        string `json:"type"`
	State       string `json:"state"`
	Assignor    string `json:"assignor"`
	Coordinator int32  `json:"coordinator"`
	// ObservedAt is when the coordinator last described the group: older
	// than the poll when the coordinator did not answer and the group is
	// served from its last answer.
	ObservedAt time.Time `json:"observed_at"`
	// OffsetsObservedAt is when the group's committed offsets were read.
	OffsetsObservedAt *time.Time   `json:"offsets_observed_at,omitempty"`
	Members           []MemberView `json:"members"`
	// Lag per topic, from the latest offsets poll: the same figure as
	// kafka_consumergroup_lag_sum, absent where that is (a log end unknown).
	Lag           map[string]int64 `json:"lag,omitempty"`
	MaxLagSeconds *float64         `json:"max_lag_seconds,omitempty"`
	Status        string           `json:"status,omitempty"`
	StatusReason  string           `json:"status_reason,omitempty"`

	Generation       *int32            `json:"generation,omitempty"`
	GenerationSource string            `json:"generation_source,omitempty"`
	Rebalances       uint64            `json:"rebalances"`
	Rebalancing      bool              `json:"rebalancing"`
	RebalanceStarted *time.Time        `json:"rebalance_started,omitempty"`
	LastRebalance    *time.Time        `json:"last_rebalance,omitempty"`
	MemberJoins      uint64            `json:"member_joins"`
	MemberLeaves     uint64            `json:"member_leaves"`
	History          []rebalance.Event `json:"recent_rebalances"`

	// OffsetsLog is what the coordinator's own log (__consumer_offsets,
	// KRE_OFFSETS_LOG_ENABLED) says of the group; absent when the source
	// is off or has read nothing of it.
	OffsetsLog *OffsetsLogView `json:"offsets_log,omitempty"`
}

// OffsetsLogView is a group's latest state in __consumer_offsets.
type OffsetsLogView struct {
	Partition int32 `json:"partition"`
	// Live: that partition is read and caught up, so Generation is the
	// group's current one.
	Live bool `json:"live"`
	// From the latest GroupMetadata record; absent when none was read
	// since the start position (or it could not be decoded).
	Generation   *int32     `json:"generation,omitempty"`
	ProtocolType string     `json:"protocol_type,omitempty"`
	Protocol     string     `json:"protocol,omitempty"`
	Leader       string     `json:"leader,omitempty"`
	StateTime    *time.Time `json:"state_time,omitempty"`
	MetadataTime *time.Time `json:"metadata_time,omitempty"`
	// Commits read since the start position, and the latest commit's time.
	Commits    uint64     `json:"commits"`
	LastCommit *time.Time `json:"last_commit,omitempty"`
}

// MemberView is one member in GroupView.
type MemberView struct {
	MemberID         string             `json:"member_id"`
	InstanceID       string             `json:"instance_id,omitempty"`
	ClientID         string             `json:"client_id"`
	ClientHost       string             `json:"client_host"`
	Assignment       cluster.Assignment `json:"assignment"`
	Generation       *int32             `json:"kip792_generation,omitempty"`
	MemberEpoch      *int32             `json:"member_epoch,omitempty"`
	TargetAssignment cluster.Assignment `json:"target_assignment,omitempty"`
	// The member's timeouts as it sent them in JoinGroup, from the latest
	// GroupMetadata in __consumer_offsets (KRE_OFFSETS_LOG_ENABLED); absent
	// when the log does not list the member.
	SessionTimeoutMs   *int64 `json:"session_timeout_ms,omitempty"`
	RebalanceTimeoutMs *int64 `json:"rebalance_timeout_ms,omitempty"`
}

// Groups is the default GroupAPI over the state snapshot.
type Groups struct{}

// List implements GroupAPI.
func (Groups) List(s *store.Snapshot) any {
	out := []GroupView{}
	if s.Groups == nil {
		return out
	}
	for _, n := range slices.Sorted(maps.Keys(s.Groups.Groups)) {
		out = append(out, view(s, s.Groups.Groups[n]))
	}
	return out
}

// Get implements GroupAPI.
func (Groups) Get(s *store.Snapshot, name string) (any, bool) {
	if s.Groups == nil {
		return nil, false
	}
	g, ok := s.Groups.Groups[name]
	if !ok {
		return nil, false
	}
	return view(s, g), true
}

func view(s *store.Snapshot, g *cluster.Group) GroupView {
	v := GroupView{Name: g.Name, Type: g.Type, State: g.State, Assignor: g.Assignor, Coordinator: g.Coordinator,
		ObservedAt: g.ObservedAt, Members: []MemberView{}}
	if v.ObservedAt.IsZero() {
		v.ObservedAt = s.Groups.Time
	}
	lg, _ := s.OffsetsLog.Group(g.Name)
	for _, m := range g.Members {
		mv := MemberView{MemberID: m.MemberID, InstanceID: m.InstanceID, ClientID: m.ClientID, ClientHost: m.ClientHost,
			Assignment: m.Assignment, TargetAssignment: m.TargetAssignment}
		if m.Generation >= 0 {
			gen := m.Generation
			mv.Generation = &gen
		}
		if g.Type == cluster.GroupTypeConsumer {
			epoch := m.MemberEpoch
			mv.MemberEpoch = &epoch
		}
		if lm, ok := lg.Member(m.MemberID); ok {
			mv.SessionTimeoutMs = ptr(lm.SessionTimeout.Milliseconds())
			if lm.RebalanceTimeout > 0 {
				mv.RebalanceTimeoutMs = ptr(lm.RebalanceTimeout.Milliseconds())
			}
		}
		v.Members = append(v.Members, mv)
	}
	if lg != nil {
		v.OffsetsLog = offsetsLogView(s.OffsetsLog, lg)
	}
	if st, ok := s.Rebalance[g.Name]; ok {
		if st.GenerationKnown {
			gen := st.Generation
			v.Generation = &gen
		}
		v.GenerationSource = st.GenerationSource
		v.Rebalances, v.Rebalancing = st.Rebalances, st.Rebalancing
		v.MemberJoins, v.MemberLeaves = st.MemberJoins, st.MemberLeaves
		if st.Rebalancing {
			t := st.RebalanceStarted
			v.RebalanceStarted = &t
		}
		if !st.LastRebalance.IsZero() {
			t := st.LastRebalance
			v.LastRebalance = &t
		}
		v.History = st.History
	}
	if v.History == nil {
		v.History = []rebalance.Event{}
	}
	if r, ok := s.Status[g.Name]; ok {
		v.Status, v.StatusReason = r.Status, r.Reason
	}
	if gl, ok := s.LagSeconds.Group(g.Name); ok {
		m := gl.MaxSeconds
		v.MaxLagSeconds = &m
	}
	if s.Offsets != nil {
		if at, ok := s.Offsets.CommittedAt[g.Name]; ok {
			v.OffsetsObservedAt = &at
		}
		for topic, parts := range s.Offsets.Committed[g.Name] {
			if sum, ok := cluster.TopicLag(s.Offsets.Topics[topic], parts); ok {
				if v.Lag == nil {
					v.Lag = map[string]int64{}
				}
				v.Lag[topic] = sum
			}
		}
	}
	return v
}

func offsetsLogView(lv *offsetslog.View, lg *offsetslog.Group) *OffsetsLogView {
	o := &OffsetsLogView{Partition: lg.Partition, Live: lv.Live(lg.Partition), Commits: lg.Commits}
	if !lg.LastCommit.IsZero() {
		o.LastCommit = ptr(lg.LastCommit)
	}
	if md := lg.Metadata; md != nil {
		o.Generation, o.ProtocolType, o.Protocol, o.Leader = ptr(md.Generation), md.ProtocolType, md.Protocol, md.Leader
		if !md.StateTime.IsZero() {
			o.StateTime = ptr(md.StateTime)
		}
		if !lg.MetadataTime.IsZero() {
			o.MetadataTime = ptr(lg.MetadataTime)
		}
	}
	return o
}

func ptr[T any](v T) *T { return &v }
