package offsetslog

import (
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// kv is one record's key and value as the coordinator would write it.
type kv struct {
	key, value []byte
}

// commitKV is an OffsetCommit record (key v1, value v3: what Kafka 2.1 to
// 4.0 write).
func commitKV(group, topic string, partition int32, offset int64, at time.Time) kv {
	return kv{offsetCommitKey(1, group, topic, partition), offsetCommitValue(3, offset, at)}
}

func commitTombstoneKV(group, topic string, partition int32) kv {
	return kv{offsetCommitKey(1, group, topic, partition), nil}
}

// metaKV is a GroupMetadata record (value v3) of a consumer group at
// generation gen with the given member IDs; the first leads.
func metaKV(group string, gen int32, memberIDs ...string) kv {
	var ms []fixtureMember
	for i, id := range memberIDs {
		ms = append(ms, fixtureMember{id: id, client: "client-" + id, host: "/10.0.0.1", session: time.Duration(10+i) * time.Second,
			rebalance: time.Duration(60+i) * time.Second})
	}
	var protocol, leader *string
	if len(memberIDs) > 0 {
		protocol, leader = strp("range"), strp(memberIDs[0])
	}
	return kv{groupMetadataKey(group), groupMetadataValue(3, "consumer", gen, protocol, leader, stateTime, ms...)}
}

func metaTombstoneKV(group string) kv { return kv{groupMetadataKey(group), nil} }

// otherKV is a KIP-848 ConsumerGroupMetadata record (key version 3).
func otherKV(group string) kv {
	k := kmsg.NewGroupMetadataKey()
	k.Version, k.Group = 3, group
	return kv{k.AppendTo(nil), []byte{0, 0, 0, 0, 0, 5}}
}

// batch builds a record batch starting at offset first, as sarama decodes
// one from a fetch.
func batch(first int64, at time.Time, recs ...kv) *sarama.RecordBatch {
	rb := &sarama.RecordBatch{FirstOffset: first, FirstTimestamp: at, MaxTimestamp: at, Version: 2,
		LastOffsetDelta: int32(len(recs) - 1), ProducerID: -1}
	for i, r := range recs {
		rb.Records = append(rb.Records, &sarama.Record{OffsetDelta: int64(i), Key: r.key, Value: r.value})
	}
	return rb
}

// markerBatch is a control batch ending producer's transaction.
func markerBatch(offset int64, producer int64, commit bool) *sarama.RecordBatch {
	typ := kmsg.ControlRecordKeyTypeAbort
	if commit {
		typ = kmsg.ControlRecordKeyTypeCommit
	}
	k := kmsg.ControlRecordKey{Version: 0, Type: typ}
	m := kmsg.EndTxnMarker{Version: 0, CoordinatorEpoch: 1}
	rb := batch(offset, time.Now(), kv{k.AppendTo(nil), m.AppendTo(nil)})
	rb.Control, rb.IsTransactional, rb.ProducerID = true, true, producer
	return rb
}

// testOptions are valid Options for brokers, fast enough for tests.
func testOptions(brokers []string, topic string) Options {
	sc := sarama.NewConfig()
	sc.Version = sarama.V3_0_0_0
	sc.Net.DialTimeout, sc.Net.ReadTimeout, sc.Net.WriteTimeout = 5*time.Second, 5*time.Second, 5*time.Second
	sc.Metadata.Retry.Max = 1
	sc.Metadata.Retry.Backoff = 10 * time.Millisecond
	return Options{
		Brokers: brokers, Sarama: sc, Topic: topic, Start: Start{Mode: StartEarliest},
		FetchMaxWait: 100 * time.Millisecond, FetchMaxBytes: 1 << 20, PartitionMaxBytes: 256 << 10,
		RetryBackoffMin: 20 * time.Millisecond, RetryBackoffMax: 200 * time.Millisecond,
		MetadataRefresh: time.Second, PublishInterval: 20 * time.Millisecond, ProgressInterval: 50 * time.Millisecond,
		Logger: zerolog.Nop(),
	}
}

// offline is a Reader that is never run: tests feed it fetch answers.
type offline struct {
	t *testing.T
	r *Reader
}

func newOffline(t *testing.T, partitions ...int32) *offline {
	t.Helper()
	r, err := New(testOptions([]string{"127.0.0.1:1"}, "offsets"))
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range partitions {
		r.parts[id] = &partition{id: id, next: 0, hwm: -1, resetFrom: -1, fetchBytes: r.opts.PartitionMaxBytes}
		r.ids = append(r.ids, id)
	}
	r.metaSeen = true
	return &offline{t: t, r: r}
}

// answer applies a fetch answer for partition with high watermark hwm
// holding batches, and publishes.
func (o *offline) answer(partition int32, hwm int64, batches ...*sarama.RecordBatch) *View {
	o.t.Helper()
	blk := &sarama.FetchResponseBlock{HighWaterMarkOffset: hwm}
	for _, b := range batches {
		blk.RecordsSet = append(blk.RecordsSet, &sarama.Records{RecordBatch: b})
	}
	return o.apply(partition, blk)
}

func (o *offline) apply(partition int32, blk *sarama.FetchResponseBlock) *View {
	o.t.Helper()
	p, ok := o.r.parts[partition]
	if !ok {
		o.t.Fatalf("no partition %d", partition)
	}
	now := time.Now()
	o.r.fetched(p, blk, now)
	o.r.publish(now)
	return o.r.View()
}
