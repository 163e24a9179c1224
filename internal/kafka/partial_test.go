package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/collector"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/cluster"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/kafkatest"
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

	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	commit := func(group string, at int64) {
		t.Helper()
		var os kadm.Offsets
		for _, p := range parts {
			os.AddOffset(topic, p, at, -1)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp, err := adm.CommitOffsets(ctx, group, os)
		if err == nil {
			err = resp.Error()
		}
		if err != nil {
			t.Fatalf("commit %s: %v", group, err)
		}
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

	err = e.TryPoll()
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
	text := scrape(t, collector.New(e.Store, collector.Options{}))
	if strings.Contains(text, fmt.Sprintf("kafka_consumergroup_lag_sum{consumergroup=%q", healthyGroup)) {
		t.Error("lag_sum exported over only the partitions whose log end is known")
	}
	if !strings.Contains(text, fmt.Sprintf(`kafka_consumergroup_lag{consumergroup=%q,partition="%d",topic=%q} 2`, healthyGroup, firstHealthy(c, topic, victim), topic)) {
		t.Errorf("no fresh lag for a partition of a healthy leader:\n%s", text)
	}

	failing.Store(false)
	kafkatest.Eventually(t, 20*time.Second, func() error { return e.TryPoll() })
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

func scrape(t *testing.T, c prometheus.Collector) string {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}
