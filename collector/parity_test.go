package collector_test

import (
	"context"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/collector"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/kafkatest"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/testkit"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/web"
)

// kafkaExporterFamilies is every family danielqsj/kafka_exporter documents
// (its README's Metrics section: Brokers, Topics, Consumer Groups) with
// the label names its collector gives each (besides --kafka.labels'
// constant labels). absent says why a family is deliberately not exported;
// docs/migrating-from-kafka_exporter.md lists the same.
var kafkaExporterFamilies = []struct {
	name   string
	labels []string
	absent string
}{
	{name: "kafka_brokers"},
	{name: "kafka_broker_info", labels: []string{"id", "address"}},
	{name: "kafka_topic_partitions", labels: []string{"topic"}},
	{name: "kafka_topic_partition_current_offset", labels: []string{"topic", "partition"}},
	{name: "kafka_topic_partition_oldest_offset", labels: []string{"topic", "partition"}},
	{name: "kafka_topic_partition_in_sync_replica", labels: []string{"topic", "partition"}},
	{name: "kafka_topic_partition_leader", labels: []string{"topic", "partition"}},
	{name: "kafka_topic_partition_leader_is_preferred", labels: []string{"topic", "partition"}},
	{name: "kafka_topic_partition_replicas", labels: []string{"topic", "partition"}},
	{name: "kafka_topic_partition_under_replicated_partition", labels: []string{"topic", "partition"}},
	{name: "kafka_consumergroup_current_offset", labels: []string{"consumergroup", "topic", "partition"}},
	{name: "kafka_consumergroup_current_offset_sum", labels: []string{"consumergroup", "topic"}},
	{name: "kafka_consumergroup_lag", labels: []string{"consumergroup", "topic", "partition"}},
	{name: "kafka_consumergroup_lag_sum", labels: []string{"consumergroup", "topic"}},
	{name: "kafka_consumergroup_members", labels: []string{"consumergroup"}},
	{name: "kafka_consumergroupzookeeper_lag_zookeeper", labels: []string{"consumergroup", "topic", "partition"},
		absent: "offsets stored in ZooKeeper are not read"},
}

// liveScrape serves e's store as cmd/exporter does (the per-snapshot
// rendering plus the live registry with the poller's, build, Go and
// process metrics) and scrapes /metrics once.
func liveScrape(t *testing.T, e *kafkatest.Exporter, opts collector.Options) testkit.Series {
	t.Helper()
	live, err := collector.LiveRegistry(e.Store, opts, e.Poller.Metrics(), versioncollector.NewCollector("kafka_rebalance_exporter"),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(web.Handler(web.Options{TelemetryPath: "/metrics", Source: e.Store, Log: zerolog.Nop(),
		Metrics: web.MetricsOptions{Render: collector.SnapshotRenderer(opts), Live: live, MaxInFlight: 4, Log: zerolog.Nop()}}))
	defer srv.Close()
	s, err := testkit.Scrape(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// replicatedWorld is a three-broker cluster with topic orders (three
// partitions, three replicas each, 10 records per partition) and group
// billing, committed on partitions 0 (4) and 1 (10) but not 2.
func replicatedWorld(t *testing.T) (*kfake.Cluster, *kadm.Client) {
	c := kafkatest.NewCluster(t)
	adm := kafkatest.Admin(t, c.ListenAddrs())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if resp, err := adm.CreateTopic(ctx, 3, 3, nil, "orders"); err != nil || resp.Err != nil {
		t.Fatalf("create orders: %v %v", err, resp.Err)
	}
	kafkatest.Produce(t, c.ListenAddrs(), "orders", []int32{0, 1, 2}, 10)
	var offs kadm.Offsets
	offs.AddOffset("orders", 0, 4, -1)
	offs.AddOffset("orders", 1, 10, -1)
	kafkatest.CommitOffsets(t, adm, "billing", offs)
	return c, adm
}

// Every family kafka_exporter documents is in a live scrape with exactly
// its label names, holding what kafka_exporter means by it, except the
// documented deliberate differences.
func TestKafkaExporterFamiliesInLiveScrape(t *testing.T) {
	c, adm := replicatedWorld(t)
	e := kafkatest.NewExporter(t, kafkatest.Config(t, c.ListenAddrs(), nil))
	e.Poll(t)
	e.Poll(t)
	scraped := liveScrape(t, e, collector.Options{})

	for _, f := range kafkaExporterFamilies {
		series := scraped.Family(f.name)
		if f.absent != "" {
			if len(series) != 0 {
				t.Errorf("%s is exported, but is documented as absent (%s)", f.name, f.absent)
			}
			continue
		}
		if len(series) == 0 {
			t.Errorf("%s: no series in the scrape", f.name)
		}
		want := slices.Sorted(slices.Values(f.labels))
		for key := range series {
			_, labels, _ := testkit.SplitKey(key)
			var got []string
			for l := range labels {
				got = append(got, l)
			}
			if slices.Sort(got); !slices.Equal(got, want) {
				t.Errorf("%s: labels %v, kafka_exporter's are %v", key, got, want)
			}
		}
	}

	// What the families hold, against franz-go's view of the metadata.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	meta, err := adm.Metadata(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{
		testkit.Key("kafka_brokers"):                             float64(len(meta.Brokers)),
		testkit.Key("kafka_topic_partitions", "topic", "orders"): 3,
		testkit.Key("kafka_consumergroup_current_offset_sum", "consumergroup", "billing", "topic", "orders"):    14,
		testkit.Key("kafka_consumergroup_lag", "consumergroup", "billing", "partition", "0", "topic", "orders"): 6,
		testkit.Key("kafka_consumergroup_lag", "consumergroup", "billing", "partition", "1", "topic", "orders"): 0,
		testkit.Key("kafka_consumergroup_members", "consumergroup", "billing"):                                  0,
	}
	for _, b := range meta.Brokers {
		want[testkit.Key("kafka_broker_info", "address", net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port))), "id", strconv.Itoa(int(b.NodeID)))] = 1
	}
	for id, p := range meta.Topics["orders"].Partitions {
		part := strconv.Itoa(int(id))
		preferred := 0.0
		if p.Leader == p.Replicas[0] {
			preferred = 1
		}
		for fam, v := range map[string]float64{
			"kafka_topic_partition_leader":                     float64(p.Leader),
			"kafka_topic_partition_replicas":                   float64(len(p.Replicas)),
			"kafka_topic_partition_in_sync_replica":            float64(len(p.ISR)),
			"kafka_topic_partition_leader_is_preferred":        preferred,
			"kafka_topic_partition_under_replicated_partition": 0,
			"kafka_topic_partition_current_offset":             10,
			"kafka_topic_partition_oldest_offset":              0,
		} {
			want[testkit.Key(fam, "partition", part, "topic", "orders")] = v
		}
		if len(p.Replicas) != 3 {
			t.Fatalf("orders/%d has replicas %v; the scenario needs three", id, p.Replicas)
		}
	}
	for key, v := range want {
		if got, ok := scraped[key]; !ok || got != v {
			t.Errorf("%s = %v (present %v), want %v", key, got, ok, v)
		}
	}
	if n := len(scraped.Family("kafka_broker_info")); n != len(meta.Brokers) {
		t.Errorf("%d kafka_broker_info series for %d brokers", n, len(meta.Brokers))
	}

	// Deliberate difference: partition 2 has no commit, so no group series
	// (kafka_exporter writes current_offset -1 and lag -1 there).
	for _, fam := range []string{"kafka_consumergroup_current_offset", "kafka_consumergroup_lag"} {
		if v, ok := scraped.Get(fam, "consumergroup", "billing", "partition", "2", "topic", "orders"); ok {
			t.Errorf("%s for a partition without a commit: %v", fam, v)
		}
	}
	// Deliberate difference: lag is never negative.
	for key, v := range scraped.Family("kafka_consumergroup_lag") {
		if v < 0 {
			t.Errorf("%s = %v", key, v)
		}
	}
	// Whatever the exporter labels, KRE_CONST_LABELS may not clash with.
	assertReservedLabels(t, scraped)
}

// The replica families follow the metadata: a partition whose in-sync
// replicas are fewer than its replicas is under-replicated, one led by a
// replica other than the first assigned is not on its preferred leader.
// kfake keeps every replica in sync and leads from the first, so the
// cluster's metadata is answered with an edited copy of its own.
func TestReplicaFamiliesFollowMetadata(t *testing.T) {
	c, _ := replicatedWorld(t)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	real, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl) // no topics: all of them
	if err != nil {
		t.Fatal(err)
	}
	edited := *real
	edited.Topics = slices.Clone(real.Topics)
	var leaders [3]int32
	for i := range edited.Topics {
		tp := &edited.Topics[i]
		if tp.Topic == nil || *tp.Topic != "orders" {
			continue
		}
		tp.Partitions = slices.Clone(tp.Partitions)
		for j := range tp.Partitions {
			p := &tp.Partitions[j]
			leaders[p.Partition] = p.Leader
			switch p.Partition {
			case 1: // one replica out of sync
				p.ISR = []int32{p.Leader}
			case 2: // the leader is now the last assigned replica
				p.Replicas = append(slices.DeleteFunc(slices.Clone(p.Replicas), func(r int32) bool { return r == p.Leader }), p.Leader)
			}
		}
	}
	var served atomic.Int64
	c.ControlKey(kmsg.Metadata.Int16(), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		served.Add(1)
		resp := edited
		resp.Version = req.GetVersion()
		return &resp, nil, true
	})

	e := kafkatest.NewExporter(t, kafkatest.Config(t, c.ListenAddrs(), nil))
	e.Poll(t)
	if served.Load() == 0 {
		t.Fatal("the exporter read no metadata from the edited answer")
	}
	scraped := liveScrape(t, e, collector.Options{})
	for _, w := range []struct {
		family    string
		partition string
		value     float64
	}{
		{"kafka_topic_partition_replicas", "1", 3},
		{"kafka_topic_partition_in_sync_replica", "1", 1},
		{"kafka_topic_partition_under_replicated_partition", "1", 1},
		{"kafka_topic_partition_leader_is_preferred", "1", 1},
		{"kafka_topic_partition_in_sync_replica", "2", 3},
		{"kafka_topic_partition_under_replicated_partition", "2", 0},
		{"kafka_topic_partition_leader_is_preferred", "2", 0},
		{"kafka_topic_partition_leader", "2", float64(leaders[2])},
		{"kafka_topic_partition_under_replicated_partition", "0", 0},
		{"kafka_topic_partition_leader_is_preferred", "0", 1},
	} {
		if got, ok := scraped.Get(w.family, "partition", w.partition, "topic", "orders"); !ok || got != w.value {
			t.Errorf("%s{partition=%q} = %v (present %v), want %v", w.family, w.partition, got, ok, w.value)
		}
	}
	// The lag still comes from the real leaders.
	if v, ok := scraped.Get("kafka_consumergroup_lag", "consumergroup", "billing", "partition", "0", "topic", "orders"); !ok || v != 6 {
		t.Errorf("lag of billing on orders/0 = %v (present %v), want 6", v, ok)
	}
}

// The partition metadata families cost no request of their own: a poll
// sends as many Metadata requests with 3 partitions as with 3 + 24.
func TestPartitionMetadataCostsNoRequests(t *testing.T) {
	c, adm := replicatedWorld(t)
	var metadata atomic.Int64
	c.ControlKey(kmsg.Metadata.Int16(), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		metadata.Add(1)
		return nil, nil, false // observed only; the cluster answers
	})
	e := kafkatest.NewExporter(t, kafkatest.Config(t, c.ListenAddrs(), nil))
	e.Poll(t) // connects
	perPoll := func() int64 {
		before := metadata.Load()
		e.Poll(t)
		return metadata.Load() - before
	}
	few := perPoll()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if resp, err := adm.CreateTopic(ctx, 24, 3, nil, "wide"); err != nil || resp.Err != nil {
		t.Fatalf("create wide: %v %v", err, resp.Err)
	}
	e.Poll(t) // sees the new topic
	if many := perPoll(); many != few || few == 0 {
		t.Errorf("Metadata requests per poll: %d with 27 partitions, %d with 3", many, few)
	}
	if n := len(testkit.Collect(t, collector.New(e.Store, collector.Options{})).Family("kafka_topic_partition_replicas")); n != 27 {
		t.Errorf("%d kafka_topic_partition_replicas series, want 27", n)
	}
}

// The migration guide's metrics table lists the same kafka_exporter
// families as the table above.
func TestMigrationGuideListsKafkaExporterFamilies(t *testing.T) {
	root, err := testkit.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	guide, err := os.ReadFile(filepath.Join(root, "docs", "migrating-from-kafka_exporter.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range kafkaExporterFamilies {
		labels := " "
		if len(f.labels) > 0 {
			labels = " " + strings.Join(f.labels, ", ") + " "
		}
		row := "| `" + f.name + "` |" + labels + "|"
		if !strings.Contains(string(guide), row) {
			t.Errorf("the migration guide has no row %q", row)
		}
	}
}
