package offsetslog

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/kfaketest"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/testkit"
)

// benchMix is a realistic stretch of __consumer_offsets, encoded by kmsg:
// per 100 records, 90 offset commits (key v1, value v3, the format of
// Kafka 2.1 to 4.0), 5 GroupMetadata records of groups of six members
// (value v3, with real consumer-protocol subscriptions and assignments),
// 2 offset tombstones, 2 KIP-848 records and 1 group tombstone, over 500
// groups committing on 12-partition topics.
func benchMix(n int) []kv {
	subscription := (&kmsg.ConsumerMemberMetadata{Version: 3, Topics: []string{"orders", "payments"}, Generation: 41}).AppendTo(nil)
	assignment := (&kmsg.ConsumerMemberAssignment{Version: 3, Topics: []kmsg.ConsumerMemberAssignmentTopic{
		{Topic: "orders", Partitions: []int32{0, 1}}, {Topic: "payments", Partitions: []int32{0, 1}}}}).AppendTo(nil)
	meta := func(group string, gen int32) kv {
		v := kmsg.NewGroupMetadataValue()
		v.Version, v.ProtocolType, v.Generation = 3, "consumer", gen
		v.Protocol, v.Leader, v.CurrentStateTimestamp = strp("cooperative-sticky"), strp(group+"-member-0"), stateTime.UnixMilli()
		for m := range 6 {
			mm := kmsg.NewGroupMetadataValueMember()
			mm.MemberID = fmt.Sprintf("%s-member-%d-6f1c0e2a-8d7b-4c3e-9a51-0b2f7d4e6c18", group, m)
			mm.ClientID, mm.ClientHost = fmt.Sprintf("consumer-%s-%d", group, m), fmt.Sprintf("/10.1.%d.%d", m, len(group))
			mm.SessionTimeoutMillis, mm.RebalanceTimeoutMillis = 45000, 300000
			mm.Subscription, mm.Assignment = subscription, assignment
			v.Members = append(v.Members, mm)
		}
		return kv{groupMetadataKey(group), v.AppendTo(nil)}
	}
	out := make([]kv, 0, n)
	for i := 0; len(out) < n; i++ {
		group := fmt.Sprintf("service-%03d-consumers", i%500)
		switch r := i % 100; {
		case r < 90:
			out = append(out, commitKV(group, "orders", int32(i%12), int64(i), commitTime.Add(time.Duration(i)*time.Millisecond)))
		case r < 95:
			out = append(out, meta(group, int32(i/100)))
		case r < 97:
			out = append(out, commitTombstoneKV(group, "orders", int32(i%12)))
		case r < 99:
			out = append(out, otherKV(group))
		default:
			out = append(out, metaTombstoneKV(group))
		}
	}
	return out
}

// BenchmarkDecodeMix is Decode alone over the mix.
func BenchmarkDecodeMix(b *testing.B) {
	recs := benchMix(10_000)
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for b.Loop() {
		for i := range recs {
			if _, err := Decode(recs[i].key, recs[i].value); err != nil {
				b.Fatal(err)
			}
		}
		n += len(recs)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkDecodeApply is the reader's whole per-record path: decode,
// count, fold into the state, and a publication every 10,000 records.
func BenchmarkDecodeApply(b *testing.B) {
	recs := benchMix(10_000)
	r, err := New(testOptions([]string{"127.0.0.1:1"}, DefaultTopic))
	if err != nil {
		b.Fatal(err)
	}
	r.ids, r.parts[0] = []int32{0}, &partition{id: 0, hwm: -1, resetFrom: -1}
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	off := int64(0)
	for b.Loop() {
		for i := range recs {
			r.record(0, off, t0, recs[i].key, recs[i].value, nil)
			off++
		}
		r.publish(time.Now())
		n += len(recs)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
	if len(r.View().Groups) == 0 {
		b.Fatal("no groups")
	}
}

// BenchmarkCatchUpKfake reads 50,000 records of the mix from a kfake
// cluster (three brokers, 6 partitions) from the log start until caught
// up: fetching from an in-process broker, sarama's batch decoding and
// the per-record path, on the same cores.
func BenchmarkCatchUpKfake(b *testing.B) {
	const total = 50_000
	c := kfaketest.NewCluster(b)
	addrs := c.ListenAddrs()
	const topic = "bench_consumer_offsets"
	kfaketest.CreateTopic(b, addrs, topic, 6)
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	recs := benchMix(total)
	var out []*kgo.Record
	for i, r := range recs {
		out = append(out, &kgo.Record{Topic: topic, Partition: int32(i % 6), Key: r.key, Value: r.value})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := cl.ProduceSync(ctx, out...).FirstErr(); err != nil {
		b.Fatal(err)
	}
	opts := testOptions(addrs, topic)
	opts.FetchMaxBytes, opts.PartitionMaxBytes = 16<<20, 1<<20
	opts.PublishInterval, opts.ProgressInterval = time.Second, time.Hour
	b.ResetTimer()
	n := 0
	for b.Loop() {
		r, err := New(opts)
		if err != nil {
			b.Fatal(err)
		}
		rctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); _ = r.Run(rctx) }()
		if err := testkit.Poll(time.Minute, time.Millisecond, func() error {
			if !caughtUpTo(r.View(), total/6) {
				return errors.New("not caught up")
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
		stop()
		<-done
		n += total
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
}

func caughtUpTo(v *View, perPartition int64) bool {
	if !v.CaughtUp() {
		return false
	}
	for _, p := range v.Partitions {
		if p.Next < perPartition {
			return false
		}
	}
	return true
}
