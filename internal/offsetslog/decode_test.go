package offsetslog

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// The fixtures are encoded by kmsg's encoders (AppendTo), field by field
// from the values the tests then expect: the decoder is checked against an
// encoder, not against itself.

func offsetCommitKey(version int16, group, topic string, partition int32) []byte {
	k := kmsg.NewOffsetCommitKey()
	k.Version, k.Group, k.Topic, k.Partition = version, group, topic, partition
	return k.AppendTo(nil)
}

func offsetCommitValue(version int16, offset int64, commit time.Time) []byte {
	v := kmsg.NewOffsetCommitValue()
	v.Version, v.Offset, v.Metadata, v.CommitTimestamp = version, offset, "client metadata", commit.UnixMilli()
	v.LeaderEpoch = 7                                          // v3+
	v.ExpireTimestamp = commit.Add(24 * time.Hour).UnixMilli() // v1 only
	if version >= 4 {
		v.TopicID = [16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16} // tag 0
	}
	return v.AppendTo(nil)
}

func groupMetadataKey(group string) []byte {
	k := kmsg.NewGroupMetadataKey()
	k.Version, k.Group = 2, group
	return k.AppendTo(nil)
}

func strp(s string) *string { return &s }

// fixtureMember is a member as the encoder gets it.
type fixtureMember struct {
	id, instance, client, host string
	session, rebalance         time.Duration
}

func groupMetadataValue(version int16, protocolType string, generation int32, protocol, leader *string, state time.Time,
	members ...fixtureMember) []byte {
	v := kmsg.NewGroupMetadataValue()
	v.Version, v.ProtocolType, v.Generation, v.Protocol, v.Leader = version, protocolType, generation, protocol, leader
	v.CurrentStateTimestamp = state.UnixMilli()
	for _, m := range members {
		mm := kmsg.NewGroupMetadataValueMember()
		mm.MemberID, mm.ClientID, mm.ClientHost = m.id, m.client, m.host
		if m.instance != "" {
			mm.InstanceID = strp(m.instance)
		}
		mm.SessionTimeoutMillis = int32(m.session.Milliseconds())
		mm.RebalanceTimeoutMillis = int32(m.rebalance.Milliseconds())
		mm.Subscription = []byte{0, 1, 0, 0, 0, 1, 0, 6, 'o', 'r', 'd', 'e', 'r', 's', 0, 0, 0, 0}
		mm.Assignment = []byte{0, 1, 0, 0, 0, 1, 0, 6, 'o', 'r', 'd', 'e', 'r', 's', 0, 0, 0, 1, 0, 0, 0, 3, 0, 0, 0, 0}
		v.Members = append(v.Members, mm)
	}
	return v.AppendTo(nil)
}

var (
	commitTime = time.UnixMilli(1_750_000_000_123)
	stateTime  = time.UnixMilli(1_750_000_000_456)
)

func TestDecodeOffsetCommitEveryVersion(t *testing.T) {
	for kv := int16(0); kv <= 1; kv++ {
		for vv := int16(0); vv <= MaxOffsetCommitValueVersion; vv++ {
			key := offsetCommitKey(kv, "payments", "orders", 11)
			rec, err := Decode(key, offsetCommitValue(vv, 4242, commitTime))
			if err != nil {
				t.Fatalf("key v%d value v%d: %v", kv, vv, err)
			}
			want := Record{Kind: KindOffsetCommit, KeyVersion: kv, ValueVersion: vv, Group: "payments", Topic: "orders",
				Partition: 11, Offset: 4242, CommitTime: commitTime}
			if !reflect.DeepEqual(rec, want) {
				t.Errorf("key v%d value v%d:\n got %+v\nwant %+v", kv, vv, rec, want)
			}
		}
		rec, err := Decode(offsetCommitKey(kv, "payments", "orders", 11), nil)
		if err != nil {
			t.Fatalf("key v%d tombstone: %v", kv, err)
		}
		want := Record{Kind: KindOffsetCommit, KeyVersion: kv, ValueVersion: -1, Group: "payments", Topic: "orders", Partition: 11, Tombstone: true}
		if !reflect.DeepEqual(rec, want) {
			t.Errorf("key v%d tombstone:\n got %+v\nwant %+v", kv, rec, want)
		}
	}
}

func TestDecodeGroupMetadataEveryVersion(t *testing.T) {
	members := []fixtureMember{
		{id: "consumer-1-4b1c", instance: "pod-0", client: "consumer-1", host: "/10.0.0.7", session: 45 * time.Second, rebalance: 5 * time.Minute},
		{id: "consumer-2-9f3e", client: "consumer-2", host: "/10.0.0.8", session: 10 * time.Second, rebalance: 30 * time.Second},
	}
	for vv := int16(0); vv <= MaxGroupMetadataValueVersion; vv++ {
		rec, err := Decode(groupMetadataKey("payments"), groupMetadataValue(vv, "consumer", 17, strp("range"), strp("consumer-1-4b1c"), stateTime, members...))
		if err != nil {
			t.Fatalf("value v%d: %v", vv, err)
		}
		want := &GroupMetadata{ProtocolType: "consumer", Generation: 17, Protocol: "range", Leader: "consumer-1-4b1c"}
		for _, m := range members {
			dm := Member{MemberID: m.id, ClientID: m.client, ClientHost: m.host, SessionTimeout: m.session}
			if vv >= 1 { // the rebalance timeout came with v1
				dm.RebalanceTimeout = m.rebalance
			}
			if vv >= 3 { // static membership with v3
				dm.InstanceID = m.instance
			}
			want.Members = append(want.Members, dm)
		}
		if vv >= 2 { // the state timestamp with v2
			want.StateTime = stateTime
		}
		if rec.Kind != KindGroupMetadata || rec.KeyVersion != 2 || rec.ValueVersion != vv || rec.Group != "payments" || rec.Tombstone {
			t.Errorf("value v%d: record %+v", vv, rec)
		}
		if !reflect.DeepEqual(rec.Metadata, want) {
			t.Errorf("value v%d:\n got %+v\nwant %+v", vv, rec.Metadata, want)
		}
	}
}

// The coordinator stores an Empty group with no protocol, leader or
// members, and a new generation.
func TestDecodeEmptyGroup(t *testing.T) {
	for vv := int16(0); vv <= MaxGroupMetadataValueVersion; vv++ {
		rec, err := Decode(groupMetadataKey("idle"), groupMetadataValue(vv, "consumer", 9, nil, nil, stateTime))
		if err != nil {
			t.Fatalf("value v%d: %v", vv, err)
		}
		md := rec.Metadata
		if md == nil || md.Generation != 9 || md.Protocol != "" || md.Leader != "" || len(md.Members) != 0 {
			t.Errorf("value v%d: %+v", vv, md)
		}
	}
}

func TestDecodeGroupMetadataTombstone(t *testing.T) {
	rec, err := Decode(groupMetadataKey("gone"), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Record{Kind: KindGroupMetadata, KeyVersion: 2, ValueVersion: -1, Group: "gone", Tombstone: true}
	if !reflect.DeepEqual(rec, want) {
		t.Fatalf("got %+v, want %+v", rec, want)
	}
}

// Key versions 3 and up are the KIP-848 consumer group records (3 to 8),
// share group records (9 to 15) and later ones. Their keys start like a
// GroupMetadataKey (version, group), so kmsg's encoder writes them with
// the version changed; values are whatever follows.
func TestDecodeUnknownKeyVersionsAreOther(t *testing.T) {
	for _, v := range []int16{3, 4, 5, 6, 7, 8, 9, 12, 15, 16, 17, 100, 32767} {
		k := kmsg.NewGroupMetadataKey()
		k.Version, k.Group = v, "modern"
		for _, value := range [][]byte{nil, {0, 0, 0, 0, 0, 1}, {0xff}} {
			rec, err := Decode(k.AppendTo(nil), value)
			if err != nil {
				t.Fatalf("key v%d: %v", v, err)
			}
			if rec.Kind != KindOther || rec.KeyVersion != v || rec.Group != "" || rec.Metadata != nil {
				t.Errorf("key v%d: %+v", v, rec)
			}
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	okCommit := offsetCommitValue(3, 1, commitTime)
	okMeta := groupMetadataValue(3, "consumer", 1, strp("range"), strp("m"), stateTime, fixtureMember{id: "m", client: "c", host: "h", session: time.Second})
	for _, c := range []struct {
		name       string
		key, value []byte
		part       string
		kind       Kind
		group      string
	}{
		{name: "no key", key: nil, part: PartKey},
		{name: "one byte key", key: []byte{0}, part: PartKey},
		{name: "negative key version", key: []byte{0xff, 0xfe, 0, 1, 'g'}, part: PartKey},
		{name: "truncated commit key", key: offsetCommitKey(1, "g", "t", 0)[:7], value: okCommit, part: PartKey, kind: KindOffsetCommit},
		{name: "truncated group key", key: groupMetadataKey("group")[:5], value: okMeta, part: PartKey, kind: KindGroupMetadata},
		{name: "empty commit value", key: offsetCommitKey(1, "g", "t", 0), value: []byte{}, part: PartOffsetCommitValue, kind: KindOffsetCommit, group: "g"},
		{name: "commit value v5", key: offsetCommitKey(1, "g", "t", 0), value: offsetCommitValue(5, 1, commitTime), part: PartOffsetCommitValue, kind: KindOffsetCommit, group: "g"},
		{name: "negative commit value version", key: offsetCommitKey(1, "g", "t", 0), value: []byte{0x80, 0}, part: PartOffsetCommitValue, kind: KindOffsetCommit, group: "g"},
		{name: "group value v5", key: groupMetadataKey("g"), value: groupMetadataValue(5, "consumer", 1, nil, nil, stateTime), part: PartGroupMetadataValue, kind: KindGroupMetadata, group: "g"},
		{name: "empty group value", key: groupMetadataKey("g"), value: []byte{}, part: PartGroupMetadataValue, kind: KindGroupMetadata, group: "g"},
	} {
		rec, err := Decode(c.key, c.value)
		var de *DecodeError
		if !errors.As(err, &de) || de.Part != c.part {
			t.Errorf("%s: error %v, want a DecodeError of part %s", c.name, err, c.part)
			continue
		}
		if rec.Kind != c.kind || rec.Group != c.group {
			t.Errorf("%s: kind %v group %q, want %v %q", c.name, rec.Kind, rec.Group, c.kind, c.group)
		}
	}
	if _, err := Decode(groupMetadataKey("g"), groupMetadataValue(5, "consumer", 1, nil, nil, stateTime)); !errors.Is(err, ErrUnknownValueVersion) {
		t.Errorf("value v5: %v, want ErrUnknownValueVersion", err)
	}
}

// Every truncation of a valid value is an error, never a panic or a
// record that looks whole.
func TestDecodeTruncatedValues(t *testing.T) {
	m := fixtureMember{id: "member", instance: "pod", client: "client", host: "/10.1.1.1", session: time.Second, rebalance: time.Minute}
	for vv := int16(0); vv <= 4; vv++ {
		cases := map[string][2][]byte{
			"group metadata": {groupMetadataKey("g"), groupMetadataValue(vv, "consumer", 3, strp("range"), strp("member"), stateTime, m, m)},
			"offset commit":  {offsetCommitKey(1, "g", "t", 1), offsetCommitValue(vv, 5, commitTime)},
		}
		for name, kv := range cases {
			for n := 0; n < len(kv[1]); n++ {
				if _, err := Decode(kv[0], kv[1][:n]); err == nil {
					t.Fatalf("%s v%d truncated to %d of %d bytes decoded", name, vv, n, len(kv[1]))
				} else if strings.Contains(err.Error(), "panic") {
					t.Fatalf("%s v%d truncated to %d bytes: %v", name, vv, n, err)
				}
			}
		}
	}
}

// A Record owns its strings: the fetched bytes can be reused.
func TestDecodeCopiesOutOfTheInput(t *testing.T) {
	key := groupMetadataKey("payments")
	value := groupMetadataValue(3, "consumer", 4, strp("range"), strp("leader"), stateTime,
		fixtureMember{id: "leader", instance: "pod-1", client: "client", host: "/10.0.0.1", session: time.Second})
	rec, err := Decode(key, value)
	if err != nil {
		t.Fatal(err)
	}
	ckey := offsetCommitKey(1, "payments", "orders", 0)
	crec, err := Decode(ckey, offsetCommitValue(3, 1, commitTime))
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range [][]byte{key, value, ckey} {
		for i := range b {
			b[i] = 'X'
		}
	}
	md := rec.Metadata
	if rec.Group != "payments" || md.ProtocolType != "consumer" || md.Protocol != "range" || md.Leader != "leader" ||
		md.Members[0].MemberID != "leader" || md.Members[0].InstanceID != "pod-1" || md.Members[0].ClientID != "client" ||
		md.Members[0].ClientHost != "/10.0.0.1" || crec.Group != "payments" || crec.Topic != "orders" {
		t.Fatalf("decoded strings changed with the input: %+v %+v %+v", rec, md, crec)
	}
}

func TestDecodeControl(t *testing.T) {
	for _, c := range []struct {
		typ           kmsg.ControlRecordKeyType
		commit, known bool
	}{
		{kmsg.ControlRecordKeyTypeCommit, true, true},
		{kmsg.ControlRecordKeyTypeAbort, false, true},
		{kmsg.ControlRecordKeyType(2), false, false}, // leader change messages (KIP-595)
	} {
		k := kmsg.ControlRecordKey{Version: 0, Type: c.typ}
		commit, known, err := decodeControl(k.AppendTo(nil))
		if err != nil || commit != c.commit || known != c.known {
			t.Errorf("type %d: commit %v known %v err %v", c.typ, commit, known, err)
		}
	}
	if _, _, err := decodeControl([]byte{0}); err == nil {
		t.Error("a one-byte control key decoded")
	}
}
