package offsetslog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Kind is what a __consumer_offsets record is, as the version its key
// starts with says.
type Kind uint8

const (
	// KindOffsetCommit is a committed offset (key versions 0 and 1).
	KindOffsetCommit Kind = iota + 1
	// KindGroupMetadata is a classic group's state at its latest
	// generation (key version 2).
	KindGroupMetadata
	// KindOther is every record with a key version of 3 or more: the
	// KIP-848 consumer group records, share and streams group records and
	// whatever later Kafka versions add. They are not decoded.
	KindOther
)

func (k Kind) String() string {
	switch k {
	case KindOffsetCommit:
		return "offset_commit"
	case KindGroupMetadata:
		return "group_metadata"
	case KindOther:
		return "other"
	}
	return "unknown"
}

// The value versions kmsg carries schemas for. A later version is not
// guessed at: its record is a decode error.
const (
	MaxGroupMetadataValueVersion = 4
	MaxOffsetCommitValueVersion  = 4
)

// Parts of a record, as DecodeError and the decode_errors_total metric
// name them.
const (
	PartKey                = "key"
	PartOffsetCommitValue  = "offset_commit_value"
	PartGroupMetadataValue = "group_metadata_value"
	PartControl            = "control"
)

var decodeParts = []string{PartKey, PartOffsetCommitValue, PartGroupMetadataValue, PartControl}

// DecodeError is a record that could not be decoded, and the part that
// failed.
type DecodeError struct {
	Part string
	Err  error
}

func (e *DecodeError) Error() string { return fmt.Sprintf("decoding %s: %v", e.Part, e.Err) }

func (e *DecodeError) Unwrap() error { return e.Err }

// Record is one decoded record of __consumer_offsets. Every string and
// slice in it is its own copy: nothing refers to the bytes it came from.
type Record struct {
	Kind       Kind
	KeyVersion int16
	// Group is the group the record is about; empty for KindOther.
	Group string
	// Tombstone: the record has no value. For KindGroupMetadata the group
	// was removed; for KindOffsetCommit the committed offset was deleted.
	Tombstone bool
	// ValueVersion is the version the value starts with; -1 for
	// tombstones and KindOther.
	ValueVersion int16

	// KindOffsetCommit: the committed partition, offset and commit time
	// (the coordinator's clock when it accepted the commit). Offset and
	// CommitTime are zero for tombstones.
	Topic      string
	Partition  int32
	Offset     int64
	CommitTime time.Time

	// Metadata is the decoded GroupMetadata value; nil for tombstones and
	// other kinds.
	Metadata *GroupMetadata
}

// GroupMetadata is a classic group as its coordinator stored it when its
// latest generation began, or when it went Empty.
type GroupMetadata struct {
	ProtocolType string // "consumer" for consumer groups; "connect" etc.
	Generation   int32
	Protocol     string // the chosen assignor; "" when none (an Empty group)
	Leader       string // member ID of the leader; "" when none
	// StateTime is the group's CurrentStateTimestamp (value version 2+):
	// when it entered its current state. Zero when not recorded.
	StateTime time.Time
	Members   []Member
}

// Member is one member of a GroupMetadata value. The subscription and
// assignment bytes are not kept.
type Member struct {
	MemberID   string
	InstanceID string // group.instance.id (value version 3+); "" when not set
	ClientID   string
	ClientHost string
	// SessionTimeout and RebalanceTimeout are the member's timeouts as it
	// sent them in JoinGroup. RebalanceTimeout is 0 when not recorded
	// (value version 0).
	SessionTimeout   time.Duration
	RebalanceTimeout time.Duration
}

// Decode decodes one record of __consumer_offsets from its key and value.
// It never panics: a panic of the decoder on hostile or corrupt bytes is
// returned as a DecodeError. When the key decodes and the value does not,
// the returned Record still names the kind and group (and, for offset
// commits, the partition), so that a caller can tell which group's latest
// state is unreadable.
func Decode(key, value []byte) (rec Record, err error) {
	part := PartKey
	defer func() {
		if p := recover(); p != nil {
			err = &DecodeError{Part: part, Err: fmt.Errorf("decoder panic: %v", p)}
		}
	}()
	rec.ValueVersion = -1
	if len(key) < 2 {
		return rec, &DecodeError{Part: PartKey, Err: fmt.Errorf("key of %d bytes has no version", len(key))}
	}
	rec.KeyVersion = int16(binary.BigEndian.Uint16(key))
	switch v := rec.KeyVersion; {
	case v < 0:
		return rec, &DecodeError{Part: PartKey, Err: fmt.Errorf("negative key version %d", v)}
	case v <= 1:
		rec.Kind = KindOffsetCommit
		var k kmsg.OffsetCommitKey
		if err := k.UnsafeReadFrom(key); err != nil {
			return rec, &DecodeError{Part: PartKey, Err: err}
		}
		rec.Group, rec.Topic, rec.Partition = strings.Clone(k.Group), strings.Clone(k.Topic), k.Partition
		if value == nil {
			rec.Tombstone = true
			return rec, nil
		}
		part = PartOffsetCommitValue
		return rec, decodeOffsetCommitValue(&rec, value)
	case v == 2:
		rec.Kind = KindGroupMetadata
		var k kmsg.GroupMetadataKey
		if err := k.UnsafeReadFrom(key); err != nil {
			return rec, &DecodeError{Part: PartKey, Err: err}
		}
		rec.Group = strings.Clone(k.Group)
		if value == nil {
			rec.Tombstone = true
			return rec, nil
		}
		part = PartGroupMetadataValue
		return rec, decodeGroupMetadataValue(&rec, value)
	default:
		rec.Kind = KindOther
		return rec, nil
	}
}

// valueVersion reads the version a value starts with, and checks that
// kmsg knows its schema.
func valueVersion(part string, value []byte, highest int16) (int16, error) {
	if len(value) < 2 {
		return -1, &DecodeError{Part: part, Err: fmt.Errorf("value of %d bytes has no version", len(value))}
	}
	v := int16(binary.BigEndian.Uint16(value))
	if v < 0 || v > highest {
		return v, &DecodeError{Part: part, Err: fmt.Errorf("%w: %d (known: 0 to %d)", ErrUnknownValueVersion, v, highest)}
	}
	return v, nil
}

// ErrUnknownValueVersion is a value version newer than kmsg's schemas:
// decoding it with an older schema could misread it, so it is not tried.
var ErrUnknownValueVersion = errors.New("unknown value version")

func decodeOffsetCommitValue(rec *Record, value []byte) error {
	v, err := valueVersion(PartOffsetCommitValue, value, MaxOffsetCommitValueVersion)
	rec.ValueVersion = v
	if err != nil {
		return err
	}
	var val kmsg.OffsetCommitValue
	if err := val.UnsafeReadFrom(value); err != nil {
		return &DecodeError{Part: PartOffsetCommitValue, Err: err}
	}
	rec.Offset = val.Offset
	rec.CommitTime = time.UnixMilli(val.CommitTimestamp)
	return nil
}

func decodeGroupMetadataValue(rec *Record, value []byte) error {
	v, err := valueVersion(PartGroupMetadataValue, value, MaxGroupMetadataValueVersion)
	rec.ValueVersion = v
	if err != nil {
		return err
	}
	var val kmsg.GroupMetadataValue
	if err := val.UnsafeReadFrom(value); err != nil {
		return &DecodeError{Part: PartGroupMetadataValue, Err: err}
	}
	md := &GroupMetadata{
		ProtocolType: strings.Clone(val.ProtocolType),
		Generation:   val.Generation,
		Protocol:     cloneNullable(val.Protocol),
		Leader:       cloneNullable(val.Leader),
	}
	if val.CurrentStateTimestamp >= 0 {
		md.StateTime = time.UnixMilli(val.CurrentStateTimestamp)
	}
	if len(val.Members) > 0 {
		md.Members = make([]Member, len(val.Members))
		for i, m := range val.Members {
			md.Members[i] = Member{
				MemberID:         strings.Clone(m.MemberID),
				InstanceID:       cloneNullable(m.InstanceID),
				ClientID:         strings.Clone(m.ClientID),
				ClientHost:       strings.Clone(m.ClientHost),
				SessionTimeout:   millis(m.SessionTimeoutMillis),
				RebalanceTimeout: millis(m.RebalanceTimeoutMillis),
			}
		}
	}
	rec.Metadata = md
	return nil
}

func cloneNullable(s *string) string {
	if s == nil {
		return ""
	}
	return strings.Clone(*s)
}

// millis converts a timeout in milliseconds; a negative one (kmsg's -1
// for a field the version does not carry) is 0, not recorded.
func millis(ms int32) time.Duration {
	if ms < 0 {
		return 0
	}
	return time.Duration(ms) * time.Millisecond
}

// decodeControl reads the key of a control record (a transaction
// marker): commit reports whether it commits (true) or aborts (false) the
// producer's transaction; known is false for a control type that is
// neither, which is skipped.
func decodeControl(key []byte) (commit, known bool, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = &DecodeError{Part: PartControl, Err: fmt.Errorf("decoder panic: %v", p)}
		}
	}()
	var k kmsg.ControlRecordKey
	if err := k.ReadFrom(key); err != nil {
		return false, false, &DecodeError{Part: PartControl, Err: err}
	}
	switch k.Type {
	case kmsg.ControlRecordKeyTypeCommit:
		return true, true, nil
	case kmsg.ControlRecordKeyTypeAbort:
		return false, true, nil
	}
	return false, false, nil
}
