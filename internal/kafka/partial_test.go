package kafka_test

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/collector"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/cluster"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/kafkatest"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/testkit"
)

// One broker failing must not freeze the view of the others: a poll with
// a failing broker publishes fresh data from the brokers that answered,
// carries the failing broker's groups and commits forward, leaves the
// offsets of the partitions it leads unknown, and reports the failure.
func TestPartialPollWhenOneBrokerFails(t *testing.T) {
	c := kafkatest.NewCluster(t)
	addrs := c.ListenAddrs()
	const topic = "orders"
	kafkatest.CreateTopic(t, addrs, topic, 6)
	parts := []int32{0, 1, 2, 3, 4, 5}
	kafkatest.Produce(t, addrs, topic, parts, 10)

	adm := kafkatest.Admin(t, addrs)
	commit := func(group string, at int64) {
		t.Helper()
		var os kadm.Offsets
		for _, p := range parts {
			os.AddOffset(topic, p, at, -1)
		}
		kafkatest.CommitOffsets(t, adm, group, os)
	}
	// Enough groups that every broker coordinates some.
	coordinator := map[string]int32{}
	for i := 0; i < 12; i++ {
		g := fmt.Sprintf("group-%02d", i)
		commit(g, 5)
		coordinator[g] = c.CoordinatorFor(g)
	}
	victim := c.LeaderFor(topic, 0)
	var victimGroup, healthyGroup string
	for g, id := range coordinator {
		if id == victim && victimGroup == "" {
			victimGroup = g
		}
		if id != victim && healthyGroup == "" {
			healthyGroup = g
		}
	}
	if victimGroup == "" || healthyGroup == "" {
		t.Fatalf("groups not spread over brokers: %v", coordinator)
	}

	e := kafkatest.NewExporter(t, kafkatest.Config(t, addrs, nil))
	e.Poll(t)
	before := e.Store.Current()

	var failing atomic.Bool
	failing.Store(true)
	c.Control(func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if !failing.Load() || c.CurrentNode() != victim {
			return nil, nil, false
		}
		switch req.Key() {
		case kmsg.ListGroups.Int16(), kmsg.OffsetFetch.Int16(), kmsg.ListOffsets.Int16():
			return nil, errors.New("injected failure"), true
		}
		return nil, nil, false
	})
	commit(healthyGroup, 8)

	err := e.TryPoll()
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("broker %d", victim)) {
		t.Fatalf("poll error %v does not name broker %d", err, victim)
	}
	after := e.Store.Current()
	if after.Loops[cluster.LoopGroups].LastOK || after.Loops[cluster.LoopOffsets].LastOK {
		t.Fatal("a partial poll is reported as fully successful")
	}
	if after.Groups == before.Groups || after.Offsets == before.Offsets {
		t.Fatal("partial poll results were not published")
	}
	if len(after.Groups.Groups) != len(coordinator) {
		t.Fatalf("%d groups after the partial poll, want %d", len(after.Groups.Groups), len(coordinator))
	}
	if after.Groups.Groups[victimGroup] != before.Groups.Groups[victimGroup] {
		t.Fatal("the failing coordinator's group was not carried forward unchanged")
	}
	if got := after.Offsets.Committed[healthyGroup][topic][0]; got != 8 {
		t.Fatalf("healthy coordinator's fresh commit: %d, want 8", got)
	}
	if got := after.Offsets.Committed[victimGroup][topic][0]; got != 5 {
		t.Fatalf("failing coordinator's carried commit: %d, want 5", got)
	}
	unknown, known := 0, 0
	for id, p := range after.Offsets.Topics[topic].Partitions {
		if c.LeaderFor(topic, id) == victim {
			if p.Newest != -1 {
				t.Errorf("partition %d led by the failing broker has log end %d, want unknown", id, p.Newest)
			}
			unknown++
		} else {
			if p.Newest != 10 {
				t.Errorf("partition %d led by a healthy broker has log end %d, want 10", id, p.Newest)
			}
			known++
		}
	}
	if unknown == 0 || known == 0 {
		t.Fatalf("partitions not spread over brokers: %d unknown, %d known", unknown, known)
	}
	series := testkit.Collect(t, collector.New(e.Store, collector.Options{}))
	if got := series.Match("kafka_consumergroup_lag_sum", "consumergroup", healthyGroup); len(got) != 0 {
		t.Errorf("lag_sum exported over only the partitions whose log end is known: %v", got)
	}
	if v, ok := series.Get("kafka_consumergroup_lag", "consumergroup", healthyGroup, "partition", fmt.Sprint(firstHealthy(c, topic, victim)), "topic", topic); !ok || v != 2 {
		t.Errorf("no fresh lag 2 for a partition of a healthy leader: %v", series.Family("kafka_consumergroup_lag"))
	}

	failing.Store(false)
	testkit.Eventually(t, 20*time.Second, 25*time.Millisecond, "a poll without failures once the broker answers again", e.TryPoll)
	healed := e.Store.Current()
	if !healed.Loops[cluster.LoopGroups].LastOK || !healed.Loops[cluster.LoopOffsets].LastOK {
		t.Fatal("not recovered")
	}
	for id, p := range healed.Offsets.Topics[topic].Partitions {
		if p.Newest != 10 {
			t.Errorf("partition %d after recovery: log end %d", id, p.Newest)
		}
	}
}

func firstHealthy(c interface{ LeaderFor(string, int32) int32 }, topic string, victim int32) int32 {
	for p := int32(0); ; p++ {
		if c.LeaderFor(topic, p) != victim {
			return p
		}
	}
}
