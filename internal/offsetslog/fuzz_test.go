package offsetslog

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// FuzzDecode feeds arbitrary keys and values to Decode and to the control
// record decoder. The seeds are in testdata/fuzz/FuzzDecode (every key
// and value version, tombstones, unknown keys, control keys; run by every
// go test) and below. Properties:
//   - kmsg never panics on them (Decode would recover a panic; a recovered
//     one fails here, since it is a decoder bug to report);
//   - a decoded record is consistent: its kind matches its key version,
//     a tombstone is exactly a nil value, GroupMetadata has metadata;
//   - decoding is stable: a decoded record, encoded again by kmsg at the
//     same versions and decoded, is the same record.
//
// Run it with: go test -run '^$' -fuzz FuzzDecode -fuzztime 30s ./internal/offsetslog/
func FuzzDecode(f *testing.F) {
	f.Add(offsetCommitKey(1, "g", "t", 3), offsetCommitValue(3, 42, commitTime), false)
	f.Add(groupMetadataKey("g"), groupMetadataValue(4, "consumer", 5, strp("range"), strp("m"), stateTime,
		fixtureMember{id: "m", instance: "i", client: "c", host: "h", session: time.Second, rebalance: time.Minute}), false)
	f.Add(groupMetadataKey("g"), []byte(nil), true)
	f.Fuzz(func(t *testing.T, key, value []byte, tombstone bool) {
		if tombstone {
			value = nil
		} else if value == nil {
			value = []byte{}
		}
		rec, err := Decode(key, value)
		if err != nil && strings.Contains(err.Error(), "decoder panic") {
			t.Fatalf("kmsg panicked: %v", err)
		}
		if _, _, cerr := decodeControl(key); cerr != nil && strings.Contains(cerr.Error(), "decoder panic") {
			t.Fatalf("kmsg panicked on a control key: %v", cerr)
		}
		if err != nil {
			return
		}
		switch {
		case rec.KeyVersion <= 1 && rec.Kind != KindOffsetCommit,
			rec.KeyVersion == 2 && rec.Kind != KindGroupMetadata,
			rec.KeyVersion >= 3 && rec.Kind != KindOther:
			t.Fatalf("key version %d decoded as %v", rec.KeyVersion, rec.Kind)
		case rec.Kind != KindOther && rec.Tombstone != (value == nil):
			t.Fatalf("tombstone %v for value %v", rec.Tombstone, value)
		case rec.Kind == KindGroupMetadata && !rec.Tombstone && rec.Metadata == nil:
			t.Fatal("GroupMetadata without metadata")
		}
		if rec.Kind == KindOther {
			return
		}
		k2, v2 := reencode(rec)
		again, err := Decode(k2, v2)
		if err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		if !reflect.DeepEqual(rec, again) {
			t.Fatalf("decoding is not stable:\n first %+v\nsecond %+v", rec, again)
		}
	})
}

// reencode writes rec back with kmsg's encoders at its own versions.
func reencode(rec Record) (key, value []byte) {
	nullable := func(s string) *string {
		if s == "" {
			return nil
		}
		return &s
	}
	switch rec.Kind {
	case KindOffsetCommit:
		k := kmsg.NewOffsetCommitKey()
		k.Version, k.Group, k.Topic, k.Partition = rec.KeyVersion, rec.Group, rec.Topic, rec.Partition
		key = k.AppendTo(nil)
		if !rec.Tombstone {
			v := kmsg.NewOffsetCommitValue()
			v.Version, v.Offset, v.CommitTimestamp = rec.ValueVersion, rec.Offset, rec.CommitTime.UnixMilli()
			value = v.AppendTo(nil)
		}
	case KindGroupMetadata:
		k := kmsg.NewGroupMetadataKey()
		k.Version, k.Group = rec.KeyVersion, rec.Group
		key = k.AppendTo(nil)
		if md := rec.Metadata; md != nil {
			v := kmsg.NewGroupMetadataValue()
			v.Version, v.ProtocolType, v.Generation = rec.ValueVersion, md.ProtocolType, md.Generation
			v.Protocol, v.Leader = nullable(md.Protocol), nullable(md.Leader)
			if !md.StateTime.IsZero() {
				v.CurrentStateTimestamp = md.StateTime.UnixMilli()
			}
			for _, m := range md.Members {
				mm := kmsg.NewGroupMetadataValueMember()
				mm.MemberID, mm.InstanceID, mm.ClientID, mm.ClientHost = m.MemberID, nullable(m.InstanceID), m.ClientID, m.ClientHost
				mm.SessionTimeoutMillis = int32(m.SessionTimeout / time.Millisecond)
				mm.RebalanceTimeoutMillis = int32(m.RebalanceTimeout / time.Millisecond)
				v.Members = append(v.Members, mm)
			}
			value = v.AppendTo(nil)
		}
	}
	return key, value
}
