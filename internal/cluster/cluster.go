// Package cluster defines the observed cluster: the plain data the poller
// observes (groups, members, topics, offsets) and the facts derived from it
// that every reader must agree on, lag above all (Lag, TopicLag).
// Everything here is immutable once it has been published: producers build
// new values, consumers only read them.
package cluster

import "time"

// Loop names: the groups loop produces GroupsObservations, the offsets loop
// OffsetsObservations. They are the loop label of the self-metrics.
const (
	LoopGroups  = "groups"
	LoopOffsets = "offsets"
)

// Loops lists the poll loops in export order.
var Loops = []string{LoopGroups, LoopOffsets}

// Group types as ListGroups v5 reports them.
const (
	GroupTypeClassic  = "classic"
	GroupTypeConsumer = "consumer" // KIP-848
)

// ClassicStates and ConsumerStates are the state names the broker reports
// for each group type. The collector exports one 0/1 series per name in
// AllStates so that a state that is absent still has a series at 0.
var (
	ClassicStates  = []string{"Empty", "PreparingRebalance", "CompletingRebalance", "Stable", "Dead"}
	ConsumerStates = []string{"Empty", "Assigning", "Reconciling", "Stable", "Dead"}
	AllStates      = []string{"Empty", "PreparingRebalance", "CompletingRebalance", "Assigning", "Reconciling", "Stable", "Dead", "Unknown"}
)

// Rebalancing reports whether a group state name means a rebalance is in
// progress, for either group type.
func Rebalancing(state string) bool {
	switch state {
	case "PreparingRebalance", "CompletingRebalance", "Assigning", "Reconciling":
		return true
	}
	return false
}

// TopicPartition names one partition of one topic.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// Assignment maps topic -> sorted partition IDs.
type Assignment map[string][]int32

// Member is one member of a consumer group as the coordinator describes it.
type Member struct {
	MemberID   string
	InstanceID string // static membership (group.instance.id); empty when not set
	ClientID   string
	ClientHost string
	Assignment Assignment

	// Generation is the KIP-792 generation carried in the member's
	// subscription metadata (v2+): the generation the member held when it
	// last joined. -1 when the member does not send it.
	Generation int32

	// KIP-848 only.
	MemberEpoch      int32
	TargetAssignment Assignment
}

// Group is one consumer group as seen by one describe poll.
type Group struct {
	Name         string
	Type         string // GroupTypeClassic or GroupTypeConsumer
	ProtocolType string // "consumer" for consumer groups; other values for connect etc.
	State        string
	Assignor     string // classic: the chosen protocol; KIP-848: the server assignor
	Coordinator  int32  // broker ID, -1 when unknown
	Members      []Member

	// KIP-848 only: exact epochs reported by ConsumerGroupDescribe.
	GroupEpoch      int32
	AssignmentEpoch int32

	// ObservedAt is when the coordinator described the group. It is older
	// than the observation's Time when the coordinator did not answer this
	// poll and the group was carried forward.
	ObservedAt time.Time
}

// GroupsObservation is the result of one describe poll: every group the
// exporter could see, keyed by name.
type GroupsObservation struct {
	Time   time.Time
	Groups map[string]*Group
}

// Partition holds a topic partition's leader, replicas and log offsets.
type Partition struct {
	Leader int32 // broker ID; -1 when the partition has no leader
	Newest int64 // log end offset (high watermark); -1 if unknown
	Oldest int64 // log start offset; -1 if unknown

	// Replicas are the broker IDs of the partition's replicas in
	// assignment order, the first being the preferred leader; ISR those
	// in sync with the leader. Both are from the metadata the offsets poll
	// refreshes; Replicas is empty when the metadata did not list them.
	Replicas []int32
	ISR      []int32
}

// Broker is one broker of the cluster metadata.
type Broker struct {
	ID   int32
	Addr string // host:port as the broker advertises it
	Rack string // broker.rack; empty when not set
}

// Topic is one topic with its partitions, indexed by partition ID.
type Topic struct {
	Name       string
	Partitions map[int32]Partition
}

// OffsetsObservation is the result of one offsets poll: cluster metadata,
// log offsets of every partition, and committed offsets of every group.
type OffsetsObservation struct {
	Time    time.Time
	Brokers int
	// BrokerList is every broker of the metadata, sorted by ID.
	BrokerList []Broker
	Topics     map[string]*Topic
	// Committed maps group -> topic -> partition -> committed offset. Only
	// partitions with a commit appear.
	Committed map[string]map[string]map[int32]int64
	// CommittedAt is when each group's committed offsets were read: older
	// than Time when its coordinator did not answer this poll.
	CommittedAt map[string]time.Time
	// RecordTimes holds, with exact lag in seconds on (KRE_LAG_EXACT), the
	// timestamp of the record at each committed offset that is behind the
	// log end, as read by the offsets poll. Lookups that failed are absent.
	RecordTimes map[Record]time.Time
}

// Record names one offset of one partition.
type Record struct {
	Topic     string
	Partition int32
	Offset    int64
}

// Lag is the offset lag of a committed offset in a partition of t: log end
// minus committed, clamped at zero. ok is false when the log end is
// unknown (t is nil, the partition is not listed, or its leader did not
// answer this poll); such a partition has no lag rather than a guess.
// This is the one definition of lag: metrics, the JSON API, the status
// verdict and lag in seconds all use it.
func Lag(t *Topic, partition int32, committed int64) (lag int64, ok bool) {
	p, found := t.Partition(partition)
	if !found || p.Newest < 0 || committed < 0 {
		return 0, false
	}
	return max(p.Newest-committed, 0), true
}

// TopicLag sums Lag over a group's committed partitions of topic t. ok is
// false when any of them has no lag: a sum over some partitions would read
// as a drop in lag, so there is none.
func TopicLag(t *Topic, committed map[int32]int64) (sum int64, ok bool) {
	for id, off := range committed {
		lag, known := Lag(t, id, off)
		if !known {
			return 0, false
		}
		sum += lag
	}
	return sum, true
}

// Partition returns partition id of t; t may be nil (a topic the
// observation does not list).
func (t *Topic) Partition(id int32) (Partition, bool) {
	if t == nil {
		return Partition{}, false
	}
	p, ok := t.Partitions[id]
	return p, ok
}
