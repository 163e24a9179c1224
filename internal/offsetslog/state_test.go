package offsetslog

import (
	"reflect"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/cluster"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/testkit"
)

var t0 = time.UnixMilli(1_760_000_000_000)

func classicGroup(name string) *cluster.Group {
	return &cluster.Group{Name: name, Type: cluster.GroupTypeClassic, State: "Stable"}
}

// metric reads one series of the reader's metrics.
func metric(t *testing.T, r *Reader, name string, labels ...string) float64 {
	t.Helper()
	v, ok := testkit.Collect(t, r.Metrics()).Get(MetricPrefix+name, labels...)
	if !ok {
		t.Fatalf("no series %s%s %v", MetricPrefix, name, labels)
	}
	return v
}

// Each GroupMetadata record replaces the group's state: the latest
// generation, members and timeouts, no history.
func TestLatestGroupMetadataWins(t *testing.T) {
	o := newOffline(t, 0)
	v := o.answer(0, 3, batch(0, t0, metaKV("pay", 1, "a"), metaKV("pay", 2, "a", "b"), metaKV("pay", 3, "b", "c", "d")))
	g, ok := v.Group("pay")
	if !ok || g.Metadata == nil {
		t.Fatalf("group missing: %+v", v.Groups)
	}
	md := g.Metadata
	if md.Generation != 3 || md.Leader != "b" || md.Protocol != "range" || md.ProtocolType != "consumer" || len(md.Members) != 3 {
		t.Fatalf("metadata %+v", md)
	}
	if g.MetadataOffset != 2 || g.Partition != 0 || !g.MetadataTime.Equal(t0) {
		t.Errorf("record position %d/%d at %s", g.Partition, g.MetadataOffset, g.MetadataTime)
	}
	m, ok := g.Member("c")
	if !ok || m.ClientID != "client-c" || m.SessionTimeout != 11*time.Second || m.RebalanceTimeout != 61*time.Second {
		t.Errorf("member c: %+v", m)
	}
	if _, ok := g.Member("a"); ok {
		t.Error("member a of an earlier generation is still listed")
	}
	if got := metric(t, o.r, "records_total", "type", "group_metadata"); got != 3 {
		t.Errorf("records_total{group_metadata} = %v, want 3", got)
	}
}

func TestGroupTombstoneRemovesGroup(t *testing.T) {
	o := newOffline(t, 0)
	o.answer(0, 3, batch(0, t0, metaKV("gone", 4, "a"), commitKV("gone", "t", 0, 10, t0), metaKV("kept", 1, "x")))
	v := o.answer(0, 4, batch(3, t0, metaTombstoneKV("gone")))
	if _, ok := v.Group("gone"); ok {
		t.Fatal("group still there after its tombstone")
	}
	if _, ok := v.Group("kept"); !ok {
		t.Fatal("another group went with it")
	}
	// Recreated with the same name: starts over.
	v = o.answer(0, 5, batch(4, t0, metaKV("gone", 1, "z")))
	if g, _ := v.Group("gone"); g == nil || g.Metadata.Generation != 1 || g.Commits != 0 {
		t.Fatalf("recreated group: %+v", g)
	}
	if got := metric(t, o.r, "records_total", "type", "group_metadata_tombstone"); got != 1 {
		t.Errorf("tombstones counted %v, want 1", got)
	}
}

func TestCommitCounting(t *testing.T) {
	o := newOffline(t, 0, 1)
	o.answer(0, 4, batch(0, t0,
		commitKV("pay", "orders", 0, 10, t0.Add(1*time.Second)),
		commitKV("pay", "orders", 1, 12, t0.Add(1*time.Second)),
		commitKV("pay", "orders", 0, 20, t0.Add(3*time.Second)),
		commitTombstoneKV("pay", "orders", 1)))
	v := o.answer(1, 2, batch(0, t0,
		commitKV("ship", "orders", 0, 1, t0.Add(9*time.Second)),
		// out of order commit times: the latest is kept
		commitKV("ship", "orders", 0, 2, t0.Add(5*time.Second))))
	pay, ship := v.Groups["pay"], v.Groups["ship"]
	if pay == nil || pay.Commits != 3 || !pay.LastCommit.Equal(t0.Add(3*time.Second)) || pay.Metadata != nil {
		t.Errorf("pay: %+v", pay)
	}
	if ship == nil || ship.Commits != 2 || !ship.LastCommit.Equal(t0.Add(9*time.Second)) || ship.Partition != 1 {
		t.Errorf("ship: %+v", ship)
	}
	if got := metric(t, o.r, "records_total", "type", "offset_commit"); got != 5 {
		t.Errorf("commits counted %v, want 5", got)
	}
	if got := metric(t, o.r, "records_total", "type", "offset_commit_tombstone"); got != 1 {
		t.Errorf("commit tombstones counted %v, want 1", got)
	}
}

// Offset commits in a transaction count when its commit marker is read,
// and never when it aborts; other producers' transactions are apart.
func TestTransactionalCommits(t *testing.T) {
	o := newOffline(t, 0)
	txn := func(first int64, producer int64, recs ...kv) *sarama.RecordBatch {
		b := batch(first, t0, recs...)
		b.IsTransactional, b.ProducerID = true, producer
		return b
	}
	v := o.answer(0, 5,
		txn(0, 7, commitKV("streams", "in", 0, 5, t0.Add(time.Second)), commitKV("streams", "in", 1, 6, t0.Add(time.Second))),
		txn(2, 8, commitKV("streams", "in", 2, 9, t0.Add(2*time.Second))),
		batch(3, t0, commitKV("plain", "in", 0, 1, t0)),
		markerBatch(4, 7, true))
	if g := v.Groups["streams"]; g == nil || g.Commits != 2 || !g.LastCommit.Equal(t0.Add(time.Second)) {
		t.Fatalf("after producer 7 committed: %+v", g)
	}
	if g := v.Groups["plain"]; g == nil || g.Commits != 1 {
		t.Fatalf("non-transactional commit: %+v", g)
	}
	v = o.answer(0, 6, markerBatch(5, 8, false))
	if g := v.Groups["streams"]; g.Commits != 2 {
		t.Fatalf("aborted commit counted: %+v", g)
	}
	if got := metric(t, o.r, "records_skipped_total", "reason", "aborted"); got != 1 {
		t.Errorf("aborted commits %v, want 1", got)
	}
	if got := metric(t, o.r, "records_skipped_total", "reason", "control"); got != 2 {
		t.Errorf("markers %v, want 2", got)
	}
	if len(o.r.st.pending) != 0 {
		t.Errorf("pending transactions left: %v", o.r.st.pending)
	}
	if p := o.r.parts[0]; p.next != 6 {
		t.Errorf("position %d after the markers, want 6", p.next)
	}
}

// A GroupMetadata record that cannot be decoded withdraws the group's
// generation rather than leaving the superseded one on offer.
func TestUndecodableMetadataWithdrawsGeneration(t *testing.T) {
	o := newOffline(t, 0)
	src := o.r.Source()
	o.answer(0, 1, batch(0, t0, metaKV("pay", 5, "a")))
	if gen, ok := src.Generation(classicGroup("pay")); !ok || gen != 5 {
		t.Fatalf("generation %d %v, want 5", gen, ok)
	}
	future := kv{groupMetadataKey("pay"), groupMetadataValue(5, "consumer", 6, nil, nil, t0)}
	v := o.answer(0, 2, batch(1, t0, future))
	g := v.Groups["pay"]
	if g == nil || g.Metadata != nil || !g.MetadataUnreadable || g.MetadataOffset != 1 {
		t.Fatalf("after an unreadable record: %+v", g)
	}
	if gen, ok := src.Generation(classicGroup("pay")); ok {
		t.Fatalf("offered generation %d from a superseded record", gen)
	}
	if got := metric(t, o.r, "decode_errors_total", "part", PartGroupMetadataValue); got != 1 {
		t.Errorf("decode errors %v, want 1", got)
	}
	v = o.answer(0, 3, batch(2, t0, metaKV("pay", 7, "a")))
	if gen, ok := src.Generation(classicGroup("pay")); !ok || gen != 7 || v.Groups["pay"].MetadataUnreadable {
		t.Fatalf("after a readable record again: %d %v %+v", gen, ok, v.Groups["pay"])
	}
}

// Unknown keys and undecodable records are counted and skipped; reading
// goes on past them.
func TestUnknownAndBrokenRecordsAreSkipped(t *testing.T) {
	o := newOffline(t, 0)
	v := o.answer(0, 6, batch(0, t0,
		otherKV("kip848"),
		kv{[]byte{0}, []byte{1, 2}},
		kv{nil, nil},
		kv{offsetCommitKey(1, "g", "t", 0), []byte{0, 9, 1}}, // value version 9
		kv{offsetCommitKey(1, "g", "t", 0), []byte{0, 3, 1}}, // truncated v3
		metaKV("after", 2, "a")))
	if len(v.Groups) != 1 || v.Groups["after"] == nil {
		t.Fatalf("groups %+v, want only the one after the broken records", v.Groups)
	}
	if o.r.parts[0].next != 6 {
		t.Errorf("position %d, want 6", o.r.parts[0].next)
	}
	for _, c := range []struct {
		name, label, value string
		want               float64
	}{
		{"records_skipped_total", "reason", "unknown_key", 1},
		{"decode_errors_total", "part", PartKey, 2},
		{"decode_errors_total", "part", PartOffsetCommitValue, 2},
		{"records_total", "type", "group_metadata", 1},
	} {
		if got := metric(t, o.r, c.name, c.label, c.value); got != c.want {
			t.Errorf("%s{%s=%q} = %v, want %v", c.name, c.label, c.value, got, c.want)
		}
	}
}

// A partition is live when its latest fetch succeeded and reached the
// high watermark; the source answers for a group only then, and only for
// the group's own partition.
func TestCatchUpAndLiveness(t *testing.T) {
	o := newOffline(t, 0, 1)
	src := o.r.Source()
	v := o.answer(0, 10, batch(0, t0, metaKV("pay", 3, "a"), metaKV("pay", 4, "a")))
	if v.Live(0) || v.CaughtUp() || v.Partitions[0].Behind() != 8 {
		t.Fatalf("partition 0 behind by %d reads live", v.Partitions[0].Behind())
	}
	if _, ok := src.Generation(classicGroup("pay")); ok {
		t.Fatal("answered while its partition is behind")
	}
	if got := metric(t, o.r, "records_behind", "partition", "0"); got != 8 {
		t.Errorf("records_behind{0} = %v, want 8", got)
	}
	v = o.answer(0, 10, batch(2, t0, make([]kv, 8)...))
	if !v.Live(0) || v.CaughtUp() {
		t.Fatalf("partition 0 live %v, all caught up %v (partition 1 never fetched)", v.Live(0), v.CaughtUp())
	}
	if gen, ok := src.Generation(classicGroup("pay")); !ok || gen != 4 {
		t.Fatalf("generation %d %v once caught up, want 4", gen, ok)
	}
	if got := metric(t, o.r, "partitions_behind"); got != 1 {
		t.Errorf("partitions_behind = %v, want 1", got)
	}
	v = o.answer(1, 0)
	if !v.CaughtUp() || metric(t, o.r, "caught_up") != 1 || metric(t, o.r, "readable") != 1 {
		t.Fatalf("not caught up with both partitions at their high watermark: %+v", v.Partitions)
	}
	// The partition's leader goes away: no longer live, no answer.
	v = o.apply(0, &sarama.FetchResponseBlock{Err: sarama.ErrNotLeaderForPartition})
	if v.Live(0) || v.Partitions[0].Error != ReasonNoLeader {
		t.Fatalf("partition 0 after NOT_LEADER: %+v", v.Partitions[0])
	}
	if _, ok := src.Generation(classicGroup("pay")); ok {
		t.Fatal("answered while its partition cannot be read")
	}
	if metric(t, o.r, "readable") != 0 || metric(t, o.r, "read_errors_total", "reason", ReasonNoLeader) != 1 {
		t.Error("readable/read_errors_total do not show the failure")
	}
	// A KIP-848 group of the same name is never answered for.
	o.answer(0, 10)
	g := classicGroup("pay")
	g.Type = cluster.GroupTypeConsumer
	if _, ok := src.Generation(g); ok {
		t.Error("answered for a KIP-848 group")
	}
	if _, ok := src.Generation(classicGroup("unknown")); ok {
		t.Error("answered for a group the log never mentioned")
	}
}

// A view never changes once published, and a group that did not change
// is the same value in the next view.
func TestViewsAreImmutableAndShareUnchangedGroups(t *testing.T) {
	o := newOffline(t, 0)
	v1 := o.answer(0, 2, batch(0, t0, metaKV("steady", 1, "a"), metaKV("busy", 1, "b")))
	steady1, busy1 := v1.Groups["steady"], v1.Groups["busy"]
	held := *busy1
	heldMeta := *busy1.Metadata
	v2 := o.answer(0, 4, batch(2, t0, metaKV("busy", 2, "b", "c"), commitKV("busy", "t", 0, 1, t0)))
	if v2.Groups["steady"] != steady1 {
		t.Error("unchanged group was copied")
	}
	if v2.Groups["busy"] == busy1 {
		t.Fatal("changed group is the same value")
	}
	if !reflect.DeepEqual(*busy1, held) || !reflect.DeepEqual(*busy1.Metadata, heldMeta) || len(v1.Groups) != 2 {
		t.Fatalf("published group changed: %+v", busy1)
	}
	v3 := o.answer(0, 5, batch(4, t0, metaTombstoneKV("steady")))
	if _, ok := v2.Groups["steady"]; !ok {
		t.Fatal("removal reached an earlier view")
	}
	if _, ok := v3.Groups["steady"]; ok {
		t.Fatal("removal missing from the new view")
	}
}

// Records before the position (a batch is fetched whole) are not applied
// again; an incomplete trailing batch is left for the next fetch, whose
// share grows when nothing complete came.
func TestPositionAndPartialBatches(t *testing.T) {
	o := newOffline(t, 0)
	o.answer(0, 2, batch(0, t0, commitKV("g", "t", 0, 1, t0), commitKV("g", "t", 0, 2, t0)))
	o.r.parts[0].next = 1 // as if offset 0 had been read already
	o.r.st = newState()
	v := o.answer(0, 2, batch(0, t0, commitKV("g", "t", 0, 1, t0), commitKV("g", "t", 0, 2, t0)))
	if g := v.Groups["g"]; g == nil || g.Commits != 1 {
		t.Fatalf("commits %+v, want only offset 1's", g)
	}
	partial := batch(2, t0, commitKV("g", "t", 0, 3, t0))
	partial.PartialTrailingRecord = true
	before := o.r.parts[0].fetchBytes
	v = o.answer(0, 5, partial)
	if p := o.r.parts[0]; p.next != 2 || p.fetchBytes != 2*before || v.Groups["g"].Commits != 1 {
		t.Fatalf("after a partial batch: next %d, fetch bytes %d (was %d), commits %d", p.next, p.fetchBytes, before, v.Groups["g"].Commits)
	}
	o.answer(0, 5, batch(2, t0, commitKV("g", "t", 0, 3, t0), commitKV("g", "t", 0, 4, t0), commitKV("g", "t", 0, 5, t0)))
	if p := o.r.parts[0]; p.next != 5 || p.fetchBytes != before {
		t.Fatalf("after a complete batch: next %d, fetch bytes %d", p.next, p.fetchBytes)
	}
	// Nothing complete even at FetchMaxBytes: the partition backs off
	// rather than being fetched in a loop.
	o.r.parts[0].fetchBytes = o.r.opts.FetchMaxBytes
	v = o.answer(0, 9)
	if p := o.r.parts[0]; p.err != ReasonOther || p.try.ready(time.Now()) || v.Live(0) {
		t.Fatalf("stuck partition: err %q, ready %v", p.err, p.try.ready(time.Now()))
	}
}

// Logs written before Kafka 0.11 hold message sets, compressed ones with
// offsets relative to the wrapper's.
func TestLegacyMessageSets(t *testing.T) {
	o := newOffline(t, 0)
	m1, m2 := metaKV("old", 8, "a"), commitKV("old", "t", 0, 3, t0)
	inner := &sarama.MessageSet{Messages: []*sarama.MessageBlock{
		{Offset: 0, Msg: &sarama.Message{Version: 1, Key: m1.key, Value: m1.value, Timestamp: t0}},
		{Offset: 1, Msg: &sarama.Message{Version: 1, Key: m2.key, Value: m2.value, Timestamp: t0}},
	}}
	plain := commitKV("old", "t", 0, 4, t0)
	set := &sarama.MessageSet{Messages: []*sarama.MessageBlock{
		{Offset: 11, Msg: &sarama.Message{Version: 1, Codec: sarama.CompressionGZIP, Set: inner, Timestamp: t0}},
		{Offset: 12, Msg: &sarama.Message{Version: 0, Key: plain.key, Value: plain.value}},
	}}
	o.r.parts[0].next = 10
	v := o.apply(0, &sarama.FetchResponseBlock{HighWaterMarkOffset: 13, RecordsSet: []*sarama.Records{{MsgSet: set}}})
	g := v.Groups["old"]
	if g == nil || g.Metadata == nil || g.Metadata.Generation != 8 || g.MetadataOffset != 10 || g.Commits != 2 {
		t.Fatalf("group from message sets: %+v", g)
	}
	if p := o.r.parts[0]; p.next != 13 || !v.Live(0) {
		t.Fatalf("position %d, live %v; want 13, live", p.next, v.Live(0))
	}
}

func TestOffsetOutOfRangeStartsAReset(t *testing.T) {
	o := newOffline(t, 0)
	o.answer(0, 3, batch(0, t0, make([]kv, 3)...))
	v := o.apply(0, &sarama.FetchResponseBlock{Err: sarama.ErrOffsetOutOfRange})
	p := o.r.parts[0]
	if p.next != -1 || p.resetFrom != 3 || p.err != "" || v.Live(0) {
		t.Fatalf("after OFFSET_OUT_OF_RANGE: next %d, reset from %d, err %q", p.next, p.resetFrom, p.err)
	}
}

func TestNewChecksOptions(t *testing.T) {
	good := testOptions([]string{"127.0.0.1:1"}, "offsets")
	if _, err := New(good); err != nil {
		t.Fatalf("valid options: %v", err)
	}
	for name, mutate := range map[string]func(*Options){
		"Brokers":           func(o *Options) { o.Brokers = nil },
		"Sarama":            func(o *Options) { o.Sarama = nil },
		"Topic":             func(o *Options) { o.Topic = "" },
		"Start":             func(o *Options) { o.Start = Start{} },
		"look-back":         func(o *Options) { o.Start = Start{Mode: StartLookBack} },
		"FetchMaxWait":      func(o *Options) { o.FetchMaxWait = o.Sarama.Net.ReadTimeout },
		"FetchMaxBytes":     func(o *Options) { o.FetchMaxBytes = 0 },
		"PartitionMaxBytes": func(o *Options) { o.PartitionMaxBytes = o.FetchMaxBytes + 1 },
		"RetryBackoffMin":   func(o *Options) { o.RetryBackoffMax = o.RetryBackoffMin / 2 },
		"MetadataRefresh":   func(o *Options) { o.MetadataRefresh = 0 },
		"PublishInterval":   func(o *Options) { o.PublishInterval = 0 },
		"ProgressInterval":  func(o *Options) { o.ProgressInterval = 0 },
		"Sarama.Version":    func(o *Options) { o.Sarama.Version = sarama.V0_10_2_0 },
	} {
		o := testOptions([]string{"127.0.0.1:1"}, "offsets")
		mutate(&o)
		if _, err := New(o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// The caller's client configuration is not modified.
	if !good.Sarama.Metadata.Full {
		t.Error("New modified the caller's sarama configuration")
	}
}
