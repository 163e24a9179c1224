// Package kfaketest gives tests a real Kafka wire protocol to talk to: an
// in-process kfake cluster, plus helpers that produce records, commit
// offsets and drive real sarama and franz-go consumer groups against it.
// Polling a condition and reading metrics are testkit's; an exporter wired
// to a cluster is kafkatest's. It imports none of the exporter's packages,
// so that any of them can use it in its own tests.
package kfaketest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// NewCluster starts a kfake cluster that is closed when the test ends.
func NewCluster(t testing.TB, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	opts = append([]kfake.Opt{kfake.NumBrokers(3), kfake.GroupMinSessionTimeout(100 * time.Millisecond)}, opts...)
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatalf("start kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// Produce writes n records to each listed partition of topic and waits
// until they are acknowledged.
func Produce(t testing.TB, addrs []string, topic string, partitions []int32, n int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatalf("producer: %v", err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for _, p := range partitions {
		for i := 0; i < n; i++ {
			recs = append(recs, &kgo.Record{Topic: topic, Partition: p, Value: []byte(fmt.Sprintf("%d-%d", p, i))})
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce to %s: %v", topic, err)
	}
}

// CreateTopic creates a topic with the given partitions.
func CreateTopic(t testing.TB, addrs []string, topic string, partitions int32) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, partitions, 1
	req.Topics = append(req.Topics, rt)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
	if code := resp.Topics[0].ErrorCode; code != 0 {
		t.Fatalf("create topic %s: error code %d", topic, code)
	}
}

// Admin is an admin client for the cluster at addrs, closed when the test
// ends.
func Admin(t testing.TB, addrs []string) *kadm.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		t.Fatalf("admin client: %v", err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

// CommitOffsets commits offsets for group as an admin does (no member, no
// generation) and fails the test unless the commit and every partition in
// it succeed.
func CommitOffsets(t testing.TB, adm *kadm.Client, group string, offsets kadm.Offsets) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := adm.CommitOffsets(ctx, group, offsets)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Fatalf("commit offsets of group %s: %v", group, err)
	}
}

// SaramaConfig is a consumer configuration suited to fast tests.
func SaramaConfig(version sarama.KafkaVersion, strategy sarama.BalanceStrategy) *sarama.Config {
	c := sarama.NewConfig()
	c.Version = version
	c.ClientID = "kafkatest-consumer"
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	c.Consumer.Offsets.AutoCommit.Enable = false
	c.Consumer.Group.Session.Timeout = 6 * time.Second
	c.Consumer.Group.Heartbeat.Interval = 500 * time.Millisecond
	c.Consumer.Group.Rebalance.Timeout = 6 * time.Second
	c.Consumer.Group.Rebalance.Retry.Backoff = 100 * time.Millisecond
	c.Consumer.Return.Errors = true
	c.Metadata.RefreshFrequency = 0
	if strategy != nil {
		c.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{strategy}
	}
	return c
}

// ConsumeAll joins group with a real sarama consumer group, consumes topics
// until every partition's committed offset reaches its current log end,
// commits, and leaves the group cleanly.
func ConsumeAll(t testing.TB, addrs []string, group string, topics []string) {
	t.Helper()
	cfg := SaramaConfig(sarama.V3_0_0_0, nil)
	client, err := sarama.NewClient(addrs, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	targets := map[string]map[int32]int64{}
	for _, topic := range topics {
		parts, err := client.Partitions(topic)
		if err != nil {
			t.Fatal(err)
		}
		targets[topic] = map[int32]int64{}
		for _, p := range parts {
			end, err := client.GetOffset(topic, p, sarama.OffsetNewest)
			if err != nil {
				t.Fatal(err)
			}
			targets[topic][p] = end
		}
	}
	cg, err := sarama.NewConsumerGroupFromClient(group, client)
	if err != nil {
		t.Fatal(err)
	}
	h := &drainHandler{targets: targets, done: make(chan struct{})}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		for ctx.Err() == nil {
			if err := cg.Consume(ctx, topics, h); err != nil && !errors.Is(err, sarama.ErrClosedConsumerGroup) {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	select {
	case <-h.done:
	case <-ctx.Done():
		t.Fatalf("group %s did not reach the log end", group)
	}
	cancel()
	if err := <-errc; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("consume: %v", err)
	}
	if err := cg.Close(); err != nil {
		t.Fatalf("close group: %v", err)
	}
}

type drainHandler struct {
	targets map[string]map[int32]int64
	mu      sync.Mutex
	reached map[string]bool
	once    sync.Once
	done    chan struct{}
}

func (h *drainHandler) Setup(s sarama.ConsumerGroupSession) error {
	// Partitions with nothing to read still need a commit at the log end
	// so that the group's lag is defined everywhere.
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.reached == nil {
		h.reached = map[string]bool{}
	}
	for topic, parts := range s.Claims() {
		for _, p := range parts {
			if h.targets[topic][p] == 0 {
				h.reached[fmt.Sprintf("%s/%d", topic, p)] = true
			}
		}
	}
	h.check()
	return nil
}

func (h *drainHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }

func (h *drainHandler) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	target := h.targets[c.Topic()][c.Partition()]
	for msg := range c.Messages() {
		if msg.Offset >= target {
			continue
		}
		s.MarkMessage(msg, "")
		if msg.Offset+1 == target {
			s.Commit()
			h.mu.Lock()
			h.reached[fmt.Sprintf("%s/%d", c.Topic(), c.Partition())] = true
			h.check()
			h.mu.Unlock()
		}
	}
	return nil
}

func (h *drainHandler) check() {
	total := 0
	for _, parts := range h.targets {
		total += len(parts)
	}
	if len(h.reached) == total {
		h.once.Do(func() { close(h.done) })
	}
}
