package offsetslog

import (
	"maps"
	"slices"
	"time"
)

// View is what the log said up to the positions it records, published as
// one immutable value: neither the reader nor anyone else modifies a View,
// its maps, or anything they point to once it is published, so readers
// need no lock and must not write to it either.
type View struct {
	Topic string
	// Time is when the view was published.
	Time time.Time
	// Groups holds every group with a record read since the start
	// position, by name; a group whose GroupMetadata tombstone was read is
	// gone. Groups that did not change between two views are the same
	// *Group in both.
	Groups map[string]*Group
	// Partitions is the status of every partition of the topic the latest
	// metadata listed, by partition ID.
	Partitions []PartitionStatus
	// Error is the reason the topic as a whole cannot be read (connect,
	// metadata, denied, unknown_topic); "" when it could at the latest
	// attempt. Partition failures are in Partitions.
	Error string
}

// Group is one group's latest state in the log: bounded, not a history.
type Group struct {
	Name string
	// Partition is the partition of the log the group's latest record was
	// in (a group's records are all in one partition).
	Partition int32
	// Metadata is the latest GroupMetadata; nil when none was read since
	// the start position, or when the latest could not be decoded
	// (MetadataUnreadable): a superseded generation is never offered.
	Metadata *GroupMetadata
	// MetadataOffset and MetadataTime are the offset and timestamp of the
	// record Metadata was read from (or of the unreadable one); -1 and
	// zero when there was none.
	MetadataOffset     int64
	MetadataTime       time.Time
	MetadataUnreadable bool
	// Commits counts the OffsetCommit records read for the group since the
	// start position (one per partition committed; transactional commits
	// when their transaction committed). LastCommit is the latest commit
	// time among them; zero when none.
	Commits    uint64
	LastCommit time.Time
}

// Member returns the member of the group's latest GroupMetadata with that
// member ID.
func (g *Group) Member(memberID string) (Member, bool) {
	if g == nil || g.Metadata == nil {
		return Member{}, false
	}
	for _, m := range g.Metadata.Members {
		if m.MemberID == memberID {
			return m, true
		}
	}
	return Member{}, false
}

// PartitionStatus is how far one partition of the log has been read.
type PartitionStatus struct {
	Partition int32
	// Next is the next offset to read; -1 until the start position is
	// resolved.
	Next int64
	// HighWatermark is the partition's high watermark at the latest
	// successful read; -1 when unknown.
	HighWatermark int64
	// Error is the reason the latest attempt to read the partition failed
	// (see the read_errors_total reasons); "" when it succeeded.
	Error string
	// ReadAt is when the partition was last read successfully.
	ReadAt time.Time
}

// Behind is the number of offsets between Next and the high watermark;
// -1 when either is unknown.
func (p PartitionStatus) Behind() int64 {
	if p.Next < 0 || p.HighWatermark < 0 {
		return -1
	}
	return max(p.HighWatermark-p.Next, 0)
}

// Live reports whether the partition is live and caught up: its latest
// read succeeded and reached the high watermark that read returned.
func (p PartitionStatus) Live() bool {
	return p.Error == "" && p.Behind() == 0
}

// Group returns the group named name; v may be nil (no view yet).
func (v *View) Group(name string) (*Group, bool) {
	if v == nil {
		return nil, false
	}
	g, ok := v.Groups[name]
	return g, ok
}

// Live reports whether partition is live and caught up (see
// PartitionStatus.Live) and the topic readable.
func (v *View) Live(partition int32) bool {
	if v == nil || v.Error != "" {
		return false
	}
	i, found := slices.BinarySearchFunc(v.Partitions, partition, func(p PartitionStatus, id int32) int {
		return int(p.Partition) - int(id)
	})
	return found && v.Partitions[i].Live()
}

// CaughtUp reports whether every partition is live and caught up.
func (v *View) CaughtUp() bool {
	if v == nil || v.Error != "" || len(v.Partitions) == 0 {
		return false
	}
	for _, p := range v.Partitions {
		if !p.Live() {
			return false
		}
	}
	return true
}

// Readable reports whether the topic and every partition were read
// successfully at the latest attempt (caught up or not).
func (v *View) Readable() bool {
	if v == nil || v.Error != "" || len(v.Partitions) == 0 {
		return false
	}
	for _, p := range v.Partitions {
		if p.Error != "" {
			return false
		}
	}
	return true
}

// groupState is the reader's own, mutable record of one group.
type groupState struct {
	partition      int32
	meta           *GroupMetadata // shared with published Groups: never modified
	metaOffset     int64
	metaTime       time.Time
	metaUnreadable bool
	commits        uint64
	lastCommit     time.Time
	published      *Group // nil when changed since the latest publication
}

func (g *groupState) snapshot(name string) *Group {
	if g.published == nil {
		g.published = &Group{Name: name, Partition: g.partition, Metadata: g.meta, MetadataOffset: g.metaOffset,
			MetadataTime: g.metaTime, MetadataUnreadable: g.metaUnreadable, Commits: g.commits, LastCommit: g.lastCommit}
	}
	return g.published
}

// txnKey names one producer's transaction on one partition: its records
// and its marker are in that partition.
type txnKey struct {
	partition  int32
	producerID int64
}

// pendingCommits are a transaction's offset commits of one group, applied
// when its commit marker is read and dropped at its abort marker.
type pendingCommits struct {
	n      uint64
	latest time.Time
}

// state is the groups as the log says them. Only the reader's loop
// goroutine uses it; readers get Views.
type state struct {
	groups map[string]*groupState
	// changed holds the groups changed or removed since the latest
	// publication.
	changed map[string]struct{}
	// last is the groups map of the latest publication.
	last map[string]*Group
	// pending holds the offset commits of open transactions.
	pending map[txnKey]map[string]*pendingCommits
}

func newState() *state {
	return &state{groups: map[string]*groupState{}, changed: map[string]struct{}{}, last: map[string]*Group{},
		pending: map[txnKey]map[string]*pendingCommits{}}
}

// outcome is what applying a record did, for the metrics.
type outcome uint8

const (
	appliedRecord outcome = iota
	pendingRecord         // a transactional commit, waiting for its marker
	skippedRecord         // a kind the state does not follow
)

func (s *state) group(name string, partition int32) *groupState {
	g, ok := s.groups[name]
	if !ok {
		g = &groupState{metaOffset: -1}
		s.groups[name] = g
	}
	g.partition = partition
	g.published = nil
	s.changed[name] = struct{}{}
	return g
}

// apply folds one successfully decoded record in, read at offset of
// partition with timestamp ts. txn is the producer of the transactional
// batch the record came in, nil outside transactions.
func (s *state) apply(partition int32, offset int64, ts time.Time, rec *Record, txn *txnKey) outcome {
	switch rec.Kind {
	case KindGroupMetadata:
		if rec.Tombstone {
			if _, ok := s.groups[rec.Group]; ok {
				delete(s.groups, rec.Group)
				s.changed[rec.Group] = struct{}{}
			}
			return appliedRecord
		}
		g := s.group(rec.Group, partition)
		g.meta, g.metaOffset, g.metaTime, g.metaUnreadable = rec.Metadata, offset, ts, false
		return appliedRecord
	case KindOffsetCommit:
		if rec.Tombstone {
			return appliedRecord // a deleted offset is no commit
		}
		if txn != nil {
			byGroup := s.pending[*txn]
			if byGroup == nil {
				byGroup = map[string]*pendingCommits{}
				s.pending[*txn] = byGroup
			}
			p := byGroup[rec.Group]
			if p == nil {
				p = &pendingCommits{}
				byGroup[rec.Group] = p
			}
			p.n++
			p.latest = later(p.latest, rec.CommitTime)
			return pendingRecord
		}
		s.commit(rec.Group, partition, 1, rec.CommitTime)
		return appliedRecord
	}
	return skippedRecord
}

func (s *state) commit(name string, partition int32, n uint64, at time.Time) {
	g := s.group(name, partition)
	g.commits += n
	g.lastCommit = later(g.lastCommit, at)
}

// unreadable records that the latest GroupMetadata of a group could not
// be decoded: its earlier one is superseded and no longer offered.
func (s *state) unreadable(name string, partition int32, offset int64, ts time.Time) {
	g := s.group(name, partition)
	g.meta, g.metaOffset, g.metaTime, g.metaUnreadable = nil, offset, ts, true
}

// marker applies a transaction marker: the producer's pending commits on
// the partition are counted (commit) or dropped (abort). It returns how
// many commits it dropped.
func (s *state) marker(k txnKey, commit bool) (aborted uint64) {
	byGroup, ok := s.pending[k]
	if !ok {
		return 0
	}
	delete(s.pending, k)
	for name, p := range byGroup {
		if commit {
			s.commit(name, k.partition, p.n, p.latest)
		} else {
			aborted += p.n
		}
	}
	return aborted
}

// forgetPending drops the open transactions of a partition whose
// position jumped: their markers will not be read.
func (s *state) forgetPending(partition int32) {
	for k := range s.pending {
		if k.partition == partition {
			delete(s.pending, k)
		}
	}
}

// publish returns the groups map of a new view: the previous one when
// nothing changed, else a copy sharing every unchanged group.
func (s *state) publish() map[string]*Group {
	if len(s.changed) == 0 {
		return s.last
	}
	next := maps.Clone(s.last)
	if next == nil {
		next = map[string]*Group{}
	}
	for name := range s.changed {
		if g, ok := s.groups[name]; ok {
			next[name] = g.snapshot(name)
		} else {
			delete(next, name)
		}
	}
	clear(s.changed)
	s.last = next
	return next
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
