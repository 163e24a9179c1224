package collector_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/collector"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/kafkatest"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/testkit"
)

// world is a quiesced cluster with known production and consumption, so
// the expected lag of every partition follows from the scenario.
type world struct {
	addrs []string
	// produced[topic][partition] = records written, which is the log end.
	produced map[string]map[int32]int64
	// committed[group][topic][partition]
	committed map[string]map[string]map[int32]int64
}

func (w *world) produce(t *testing.T, topic string, parts []int32, n int) {
	kafkatest.Produce(t, w.addrs, topic, parts, n)
	for _, p := range parts {
		w.produced[topic][p] += int64(n)
	}
}

// consume drains topics with a real sarama group; partitions that hold
// records get a commit at their log end.
func (w *world) consume(t *testing.T, group string, topics ...string) {
	kafkatest.ConsumeAll(t, w.addrs, group, topics)
	if w.committed[group] == nil {
		w.committed[group] = map[string]map[int32]int64{}
	}
	for _, topic := range topics {
		for p, end := range w.produced[topic] {
			if end == 0 {
				continue
			}
			if w.committed[group][topic] == nil {
				w.committed[group][topic] = map[int32]int64{}
			}
			w.committed[group][topic][p] = end
		}
	}
}

func newWorld(t *testing.T, opts ...kfake.Opt) *world {
	c := kafkatest.NewCluster(t, opts...)
	w := &world{addrs: c.ListenAddrs(), produced: map[string]map[int32]int64{}, committed: map[string]map[string]map[int32]int64{}}
	for topic, n := range map[string]int32{"orders": 3, "payments": 2, "silent": 1} {
		kafkatest.CreateTopic(t, w.addrs, topic, n)
		w.produced[topic] = map[int32]int64{}
		for p := int32(0); p < n; p++ {
			w.produced[topic][p] = 0
		}
	}
	w.produce(t, "orders", []int32{0, 1, 2}, 10)
	w.produce(t, "payments", []int32{0, 1}, 5)
	w.consume(t, "billing", "orders", "payments", "silent")
	w.produce(t, "orders", []int32{0, 1}, 7)
	w.consume(t, "shipping", "orders")
	w.produce(t, "orders", []int32{0}, 3)
	w.produce(t, "payments", []int32{1}, 4)
	w.consume(t, "audit", "payments")
	w.produce(t, "payments", []int32{0}, 2)
	return w
}

// expectedLag renders the lag series the scenario implies.
func (w *world) expectedLag(groups ...string) string {
	var b strings.Builder
	b.WriteString("# HELP kafka_consumergroup_lag Messages the consumer group is behind: log end offset minus committed offset, never negative. Only partitions with a committed offset.\n# TYPE kafka_consumergroup_lag gauge\n")
	var lines []string
	for _, g := range groups {
		for topic, parts := range w.committed[g] {
			for p, c := range parts {
				lines = append(lines, fmt.Sprintf("kafka_consumergroup_lag{consumergroup=%q,partition=\"%d\",topic=%q} %d\n", g, p, topic, w.produced[topic][p]-c))
			}
		}
	}
	sort.Strings(lines)
	b.WriteString(strings.Join(lines, ""))
	return b.String()
}

func TestLagEqualsLogEndMinusCommitted(t *testing.T) {
	w := newWorld(t)
	e := kafkatest.NewExporter(t, kafkatest.Config(t, w.addrs, nil))
	e.Poll(t)
	c := collector.New(e.Store, collector.Options{})

	if err := testutil.CollectAndCompare(c, strings.NewReader(w.expectedLag("audit", "billing", "shipping")), "kafka_consumergroup_lag"); err != nil {
		t.Fatal(err)
	}
	// A partition nobody committed to has no lag series: the "silent"
	// topic got no records, so billing never committed there.
	series := testkit.Collect(t, c)
	for key := range series.Match("", "topic", "silent") {
		if strings.HasPrefix(key, "kafka_consumergroup_") {
			t.Errorf("group series for a partition without a committed offset: %s", key)
		}
	}
	for key, want := range map[string]float64{
		`kafka_consumergroup_lag_sum{consumergroup="billing",topic="orders"}`:                       17,
		`kafka_consumergroup_current_offset{consumergroup="shipping",partition="0",topic="orders"}`: 17,
		`kafka_topic_partition_current_offset{partition="0",topic="orders"}`:                        20,
		`kafka_topic_partition_oldest_offset{partition="0",topic="orders"}`:                         0,
		`kafka_topic_partitions{topic="orders"}`:                                                    3,
		`kafka_brokers`:                                                                             3,
		`kafka_consumergroup_members{consumergroup="billing"}`:                                      0,
		`kafka_consumergroup_state{consumergroup="billing",state="Empty"}`:                          1,
		`kafka_consumergroup_state{consumergroup="billing",state="Stable"}`:                         0,
		`kafka_rebalance_exporter_up`:                                                               1,
	} {
		if got, ok := series[key]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", key, got, ok, want)
		}
	}
	assertLintClean(t, c)
}

func TestOlderBrokerVersions(t *testing.T) {
	for _, v := range []struct {
		name string
		ver  *kversion.Versions
	}{{"2.8", kversion.V2_8_0()}, {"3.5", kversion.V3_5_0()}} {
		t.Run(v.name, func(t *testing.T) {
			w := newWorld(t, kfake.MaxVersions(v.ver))
			e := kafkatest.NewExporter(t, kafkatest.Config(t, w.addrs, nil))
			e.Poll(t)
			c := collector.New(e.Store, collector.Options{})
			if err := testutil.CollectAndCompare(c, strings.NewReader(w.expectedLag("audit", "billing", "shipping")), "kafka_consumergroup_lag"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestKIP848GroupMembersStateAndLag(t *testing.T) {
	c := kafkatest.NewCluster(t)
	addrs := c.ListenAddrs()
	kafkatest.CreateTopic(t, addrs, "events", 4)
	kafkatest.Produce(t, addrs, "events", []int32{0, 1, 2, 3}, 20)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var consumed sync.Map
	var wg sync.WaitGroup
	for i := 0; i < 2; i++ {
		cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ConsumerGroup("next-gen"), kgo.ConsumeTopics("events"),
			kgo.ServerSideBalancer(), kgo.DisableAutoCommit(), kgo.ClientID(fmt.Sprintf("ng-%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				fs := cl.PollFetches(ctx)
				fs.EachRecord(func(r *kgo.Record) {
					// Commit up to 15 of 20 per partition: lag 5 each.
					if r.Offset < 15 {
						consumed.Store(fmt.Sprintf("%d/%d", r.Partition, r.Offset), true)
						_ = cl.CommitRecords(ctx, r)
					}
				})
			}
		}()
	}
	e := kafkatest.NewExporter(t, kafkatest.Config(t, addrs, nil))
	col := collector.New(e.Store, collector.Options{})
	testkit.Eventually(t, 30*time.Second, 25*time.Millisecond, "next-gen exported as a Stable KIP-848 group with lag 20", func() error {
		if err := e.TryPoll(); err != nil {
			return err
		}
		series := testkit.Collect(t, col)
		for key, want := range map[string]float64{
			`kafka_consumergroup_members{consumergroup="next-gen"}`:                2,
			`kafka_consumergroup_state{consumergroup="next-gen",state="Stable"}`:   1,
			`kafka_consumergroup_lag_sum{consumergroup="next-gen",topic="events"}`: 20,
		} {
			if got, ok := series[key]; !ok || got != want {
				return fmt.Errorf("%s = %v (present %v), want %v", key, got, ok, want)
			}
		}
		if len(series.Match("", "group_type", "consumer")) == 0 {
			return fmt.Errorf("info lacks group_type consumer")
		}
		return nil
	})
	cancel()
	wg.Wait()
}

func TestDeletedGroupAndTopicVanish(t *testing.T) {
	w := newWorld(t)
	e := kafkatest.NewExporter(t, kafkatest.Config(t, w.addrs, nil))
	c := collector.New(e.Store, collector.Options{})
	e.Poll(t)
	series := testkit.Collect(t, c)
	if len(series.Match("", "consumergroup", "shipping")) == 0 || len(series.Match("", "topic", "payments")) == 0 {
		t.Fatal("scenario groups and topics not exported before deletion")
	}

	adm := kafkatest.Admin(t, w.addrs)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := adm.DeleteGroups(ctx, "shipping"); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.DeleteTopics(ctx, "payments"); err != nil {
		t.Fatal(err)
	}
	e.Poll(t)
	series = testkit.Collect(t, c)
	if len(series.Match("", "consumergroup", "shipping")) != 0 {
		t.Error("deleted group still exported")
	}
	if len(series.Match("", "topic", "payments")) != 0 {
		t.Error("deleted topic still exported")
	}
	if len(series.Match("", "consumergroup", "billing")) == 0 {
		t.Error("surviving group missing")
	}
}

func TestFilters(t *testing.T) {
	w := newWorld(t)
	e := kafkatest.NewExporter(t, kafkatest.Config(t, w.addrs, map[string]string{
		"GROUP_INCLUDE": "billing|shipping", "GROUP_EXCLUDE": "ship.*",
		"TOPIC_INCLUDE": ".*", "TOPIC_EXCLUDE": "pay.*",
	}))
	e.Poll(t)
	series := testkit.Collect(t, collector.New(e.Store, collector.Options{}))
	for _, absent := range [][2]string{{"consumergroup", "shipping"}, {"consumergroup", "audit"}, {"topic", "payments"}} {
		if len(series.Match("", absent[0], absent[1])) != 0 {
			t.Errorf("filtered %s=%q is exported", absent[0], absent[1])
		}
	}
	for _, present := range [][2]string{{"consumergroup", "billing"}, {"topic", "orders"}} {
		if len(series.Match("", present[0], present[1])) == 0 {
			t.Errorf("included %s=%q is missing", present[0], present[1])
		}
	}
}

// The exporter must never write to Kafka. Every request kfake receives
// after the test's own clients are done comes from the exporter.
func TestExporterSendsOnlyReadRequests(t *testing.T) {
	c := kafkatest.NewCluster(t)
	addrs := c.ListenAddrs()
	kafkatest.CreateTopic(t, addrs, "orders", 3)
	kafkatest.Produce(t, addrs, "orders", []int32{0, 1, 2}, 5)
	kafkatest.ConsumeAll(t, addrs, "billing", []string{"orders"})

	var mu sync.Mutex
	seen := map[int16]int{}
	c.Control(func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		mu.Lock()
		seen[req.Key()]++
		mu.Unlock()
		return nil, nil, false
	})
	e := kafkatest.NewExporter(t, kafkatest.Config(t, addrs, nil))
	for i := 0; i < 3; i++ {
		e.Poll(t)
	}
	read := map[int16]bool{
		kmsg.ApiVersions.Int16(): true, kmsg.Metadata.Int16(): true, kmsg.ListGroups.Int16(): true,
		kmsg.DescribeGroups.Int16(): true, kmsg.ConsumerGroupDescribe.Int16(): true,
		kmsg.OffsetFetch.Int16(): true, kmsg.ListOffsets.Int16(): true, kmsg.Fetch.Int16(): true,
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) == 0 {
		t.Fatal("no request observed")
	}
	for key, n := range seen {
		if !read[key] {
			t.Errorf("exporter sent %d %s requests, which is not a read", n, kmsg.NameForKey(key))
		}
	}
	for _, need := range []kmsg.Key{kmsg.ListGroups, kmsg.DescribeGroups, kmsg.OffsetFetch, kmsg.ListOffsets} {
		if seen[need.Int16()] == 0 {
			t.Errorf("no %s request seen; the recorder is not seeing the exporter", kmsg.NameForKey(need.Int16()))
		}
	}
}
