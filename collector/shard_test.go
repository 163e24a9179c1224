package collector_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/collector"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/kafkatest"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/testkit"
)

// consumerSeries is every series but the exporter's own health metrics,
// which each instance has for itself.
func consumerSeries(s testkit.Series) testkit.Series {
	out := testkit.Series{}
	for k, v := range s {
		if !strings.HasPrefix(k, collector.SelfPrefix) {
			out[k] = v
		}
	}
	return out
}

// Replicas that split the groups export together exactly the series of a
// single instance, with no group on two shards and the topic series on
// shard 0 alone.
func TestShardsTogetherEqualOneInstance(t *testing.T) {
	c := kafkatest.NewCluster(t)
	addrs := c.ListenAddrs()
	kafkatest.CreateTopic(t, addrs, "orders", 4)
	kafkatest.Produce(t, addrs, "orders", []int32{0, 1, 2, 3}, 5)
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	const groups = 40
	for g := range groups {
		var offs kadm.Offsets
		for p := range int32(4) {
			offs.AddOffset("orders", p, int64(g%5), -1)
		}
		if _, err := adm.CommitOffsets(context.Background(), fmt.Sprintf("shard-group-%02d", g), offs); err != nil {
			t.Fatal(err)
		}
	}

	scrape := func(env map[string]string, opts collector.Options) testkit.Series {
		e := kafkatest.NewExporter(t, kafkatest.Config(t, addrs, env))
		e.Poll(t)
		e.Poll(t) // a second poll, so lag in seconds and status are there too
		return consumerSeries(testkit.Collect(t, collector.NewSnapshot(e.Store.Current(), opts)))
	}
	single := scrape(nil, collector.Options{})
	if n := len(single.Family("kafka_consumergroup_lag")); n != groups*4 {
		t.Fatalf("single instance: %d lag series, want %d", n, groups*4)
	}
	const shards = 3
	union := testkit.Series{}
	owner := map[string]int{}
	for i := range shards {
		part := scrape(map[string]string{"SHARDS": strconv.Itoa(shards), "SHARD": strconv.Itoa(i)}, collector.Options{SkipTopicSeries: i != 0})
		groupsHere := 0
		for k, v := range part {
			if _, dup := union[k]; dup {
				t.Errorf("series %s on two shards", k)
			}
			union[k] = v
			if strings.HasPrefix(k, "kafka_topic_") || k == "kafka_brokers" {
				if i != 0 {
					t.Errorf("shard %d exports topic series %s", i, k)
				}
			}
			if g, ok := strings.CutPrefix(k, `kafka_consumergroup_members{consumergroup="`); ok {
				owner[g] = i
				groupsHere++
			}
		}
		if groupsHere == 0 {
			t.Errorf("shard %d exports no group", i)
		}
	}
	for k, v := range single {
		got, ok := union[k]
		switch {
		case !ok:
			t.Errorf("series %s missing from the shards", k)
		case strings.Contains(k, "lag_seconds{"):
			// Lag in seconds depends on each instance's own poll times:
			// which series exist is compared, not their values.
		case got != v:
			t.Errorf("series %s: shards %v, single %v", k, got, v)
		}
	}
	for k := range union {
		if _, ok := single[k]; !ok {
			t.Errorf("series %s only on the shards", k)
		}
	}
	perShard := make([]int, shards)
	for _, i := range owner {
		perShard[i]++
	}
	if len(owner) != groups {
		t.Errorf("%d groups on the shards, want %d", len(owner), groups)
	}
	t.Logf("groups per shard: %v", perShard)
}
