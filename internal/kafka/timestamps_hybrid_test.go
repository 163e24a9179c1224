package kafka_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/plain"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/cluster"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/kafka"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/kafkatest"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/testkit"
)

// tsBase is the CreateTime of offset 0 in these tests; offset o of any
// partition is stamped tsBase + o seconds, so a read timestamp tells which
// record it came from.
var tsBase = time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)

func tsOf(offset int64) time.Time { return tsBase.Add(time.Duration(offset) * time.Second) }

// tsProduce appends n records to each partition, stamped by tsOf from
// offset from on, with the client opts (seed brokers, SASL).
func tsProduce(t *testing.T, opts []kgo.Opt, topic string, partitions []int32, from int64, n int) {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.RecordPartitioner(kgo.ManualPartitioner())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for _, p := range partitions {
		for i := range int64(n) {
			recs = append(recs, &kgo.Record{Topic: topic, Partition: p, Value: []byte("v"), Timestamp: tsOf(from + i)})
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

func tsCommit(t *testing.T, adm *kadm.Client, topic string, group string, at map[int32]int64) {
	t.Helper()
	var os kadm.Offsets
	for p, o := range at {
		os.AddOffset(topic, p, o, -1)
	}
	kafkatest.CommitOffsets(t, adm, group, os)
}

func tsRequests(t *testing.T, e *kafkatest.Exporter, api string) float64 {
	t.Helper()
	v, _ := testkit.Collect(t, e.Poller.Metrics()).Get(kafka.SelfPrefix+"kafka_requests_total", "api", api)
	return v
}

// tsRead checks that every record time of the latest observation is the
// record's own timestamp and returns the records, sorted.
func tsRead(t *testing.T, e *kafkatest.Exporter) []cluster.Record {
	t.Helper()
	rt := e.Store.Current().Offsets.RecordTimes
	for r, at := range rt {
		if !at.Equal(tsOf(r.Offset)) {
			t.Fatalf("%+v read as %s, stamped %s", r, at, tsOf(r.Offset))
		}
	}
	return slices.SortedFunc(maps.Keys(rt), func(a, b cluster.Record) int {
		if a.Partition != b.Partition {
			return int(a.Partition - b.Partition)
		}
		return int(a.Offset - b.Offset)
	})
}

func rec(topic string, p int32, o int64) cluster.Record {
	return cluster.Record{Topic: topic, Partition: p, Offset: o}
}

// Without KRE_LAG_EXACT the poller reads only the records older than its
// history, at most KRE_LAG_TIMESTAMP_READS_PER_POLL per poll, the oldest
// of each partition first, and never again once cached; records inside
// the history, and records retention deleted, are not read.
func TestTimestampReadsOnlyBeforeHistory(t *testing.T) {
	const topic = "sparse"
	c := kafkatest.NewCluster(t)
	addrs := c.ListenAddrs()
	kafkatest.CreateTopic(t, addrs, topic, 2)
	tsProduce(t, []kgo.Opt{kgo.SeedBrokers(addrs...)}, topic, []int32{0, 1}, 0, 100)
	adm := kafkatest.Admin(t, addrs)
	for _, at := range []int64{10, 20, 30} {
		tsCommit(t, adm, topic, fmt.Sprintf("g%d", at), map[int32]int64{0: at, 1: at})
	}
	e := kafkatest.NewExporter(t, kafkatest.Config(t, addrs, map[string]string{
		"TOPIC_INCLUDE": topic, "LAG_TIMESTAMP_READS_PER_POLL": "4"}))

	// First poll: all six records predate the history (log end 100 on
	// both partitions); four may be read: 10 and 20 of each partition.
	e.Poll(t)
	want := []cluster.Record{rec(topic, 0, 10), rec(topic, 0, 20), rec(topic, 1, 10), rec(topic, 1, 20)}
	if got := tsRead(t, e); !slices.Equal(got, want) {
		t.Fatalf("first poll read %v, want %v", got, want)
	}
	if n := tsRequests(t, e, "Fetch"); n != 4 {
		t.Fatalf("first poll sent %v Fetch requests, want 4", n)
	}
	// Second poll: the four from the cache, the two left read now.
	e.Poll(t)
	want = []cluster.Record{rec(topic, 0, 10), rec(topic, 0, 20), rec(topic, 0, 30), rec(topic, 1, 10), rec(topic, 1, 20), rec(topic, 1, 30)}
	if got := tsRead(t, e); !slices.Equal(got, want) {
		t.Fatalf("second poll has %v, want %v", got, want)
	}
	if n := tsRequests(t, e, "Fetch"); n != 6 {
		t.Fatalf("after two polls %v Fetch requests, want 6", n)
	}
	// Lag in seconds of those groups is the records' age.
	snap := e.Store.Current()
	for _, at := range []int64{10, 20, 30} {
		g, _ := snap.LagSeconds.Group(fmt.Sprintf("g%d", at))
		pl, ok := g.Partition(topic, 1)
		want := snap.Offsets.Time.Sub(tsOf(at)).Seconds()
		if !ok || pl.Method != "exact" || pl.Seconds != want {
			t.Fatalf("g%d: %+v, want %v s exact", at, pl, want)
		}
	}

	// A group committed inside the history (log end 100 at the first
	// poll, 150 now) is interpolated, not read. Records below the log
	// start offset no longer exist and are not asked for.
	tsProduce(t, []kgo.Opt{kgo.SeedBrokers(addrs...)}, topic, []int32{0, 1}, 100, 50)
	tsCommit(t, adm, topic, "inside", map[int32]int64{0: 120, 1: 120})
	tsCommit(t, adm, topic, "deleted", map[int32]int64{0: 12})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var del kadm.Offsets
	del.AddOffset(topic, 0, 15, -1)
	if _, err := adm.DeleteRecords(ctx, del); err != nil {
		t.Fatalf("delete records: %v", err)
	}
	e.Poll(t)
	e.Poll(t)
	if n := tsRequests(t, e, "Fetch"); n != 6 {
		t.Fatalf("%v Fetch requests after the history covers the new commits, want still 6", n)
	}
	got := tsRead(t, e)
	if slices.Contains(got, rec(topic, 0, 120)) || slices.Contains(got, rec(topic, 1, 120)) || slices.Contains(got, rec(topic, 0, 12)) {
		t.Fatalf("records inside the history or deleted were read: %v", got)
	}
	g, _ := e.Store.Current().LagSeconds.Group("inside")
	if pl, ok := g.Partition(topic, 0); !ok || pl.Method != "interpolated" {
		t.Fatalf("group inside the history: %+v", pl)
	}
	if n := e.PollErrors(t, kafka.StageFetch); n != 0 {
		t.Fatalf("%v fetch stage errors", n)
	}
}

// In exact mode every lagging committed offset is read, the records older
// than the history first, within the same budget.
func TestTimestampReadsExactModeBudget(t *testing.T) {
	const topic = "exact"
	c := kafkatest.NewCluster(t)
	addrs := c.ListenAddrs()
	kafkatest.CreateTopic(t, addrs, topic, 1)
	tsProduce(t, []kgo.Opt{kgo.SeedBrokers(addrs...)}, topic, []int32{0}, 0, 10)
	adm := kafkatest.Admin(t, addrs)
	tsCommit(t, adm, topic, "old", map[int32]int64{0: 5})
	e := kafkatest.NewExporter(t, kafkatest.Config(t, addrs, map[string]string{
		"TOPIC_INCLUDE": topic, "LAG_EXACT": "true", "LAG_TIMESTAMP_READS_PER_POLL": "1"}))
	e.Poll(t)
	tsProduce(t, []kgo.Opt{kgo.SeedBrokers(addrs...)}, topic, []int32{0}, 10, 10)
	tsCommit(t, adm, topic, "new1", map[int32]int64{0: 12})
	tsCommit(t, adm, topic, "new2", map[int32]int64{0: 15})
	e.Poll(t)
	// Budget 1: the next poll reads the one furthest behind (12, lag 8).
	if got, want := tsRead(t, e), []cluster.Record{rec(topic, 0, 5), rec(topic, 0, 12)}; !slices.Equal(got, want) {
		t.Fatalf("read %v, want %v", got, want)
	}
	e.Poll(t)
	if got, want := tsRead(t, e), []cluster.Record{rec(topic, 0, 5), rec(topic, 0, 12), rec(topic, 0, 15)}; !slices.Equal(got, want) {
		t.Fatalf("read %v, want %v", got, want)
	}
	if n := tsRequests(t, e, "Fetch"); n != 3 {
		t.Fatalf("%v Fetch requests, want 3", n)
	}
}

// KRE_LAG_TIMESTAMP_READS_PER_POLL=0 reads nothing: records older than
// the history get the lower bound, or no value at the first poll.
func TestTimestampReadsOff(t *testing.T) {
	const topic = "off"
	c := kafkatest.NewCluster(t)
	addrs := c.ListenAddrs()
	kafkatest.CreateTopic(t, addrs, topic, 1)
	tsProduce(t, []kgo.Opt{kgo.SeedBrokers(addrs...)}, topic, []int32{0}, 0, 10)
	tsCommit(t, kafkatest.Admin(t, addrs), topic, "g", map[int32]int64{0: 5})
	e := kafkatest.NewExporter(t, kafkatest.Config(t, addrs, map[string]string{
		"TOPIC_INCLUDE": topic, "LAG_TIMESTAMP_READS_PER_POLL": "0"}))
	e.Poll(t)
	if _, ok := e.Store.Current().LagSeconds.Group("g"); ok {
		t.Fatal("a value at the first poll without a timestamp")
	}
	e.Poll(t)
	snap := e.Store.Current()
	g, _ := snap.LagSeconds.Group("g")
	if pl, ok := g.Partition(topic, 0); !ok || pl.Method != "lower_bound" || pl.Seconds <= 0 {
		t.Fatalf("second poll: %+v", pl)
	}
	if n := tsRequests(t, e, "Fetch"); n != 0 || len(snap.Offsets.RecordTimes) != 0 {
		t.Fatalf("%v Fetch requests, %d record times", n, len(snap.Offsets.RecordTimes))
	}
}

// A principal with only the README's Describe ACLs is never refused a
// Fetch: the broker's authorized operations say Read is missing, so no
// Fetch is sent, no poll fails, and lag in seconds falls back to the
// lower bound. Granted Read, the same poller reads the timestamps.
func TestTimestampReadsNeedRead(t *testing.T) {
	const topic, group, user, pass = "guarded", "guarded-group", "exporter", "pw"
	describe := func(res kmsg.ACLResourceType, name string) kfake.ACL {
		return kfake.ACL{Resource: res, Name: name, Pattern: kmsg.ACLResourcePatternTypeLiteral, Operation: kmsg.ACLOperationDescribe, Allow: true}
	}
	c := kafkatest.NewCluster(t, kfake.EnableSASL(), kfake.EnableACLs(), kfake.Superuser("PLAIN", "admin", "admin"),
		kfake.User("PLAIN", user, pass,
			describe(kmsg.ACLResourceTypeTopic, topic), describe(kmsg.ACLResourceTypeGroup, group),
			describe(kmsg.ACLResourceTypeCluster, "kafka-cluster")))
	addrs := c.ListenAddrs()
	admin := []kgo.Opt{kgo.SeedBrokers(addrs...), kgo.SASL(plain.Auth{User: "admin", Pass: "admin"}.AsMechanism())}
	cl, err := kgo.NewClient(admin...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	tsProduce(t, admin, topic, []int32{0}, 0, 10)
	tsCommit(t, adm, topic, group, map[int32]int64{0: 5})

	env := map[string]string{"TOPIC_INCLUDE": topic, "GROUP_INCLUDE": group,
		"SASL_MECHANISM": "PLAIN", "SASL_USERNAME": user, "SASL_PASSWORD": pass}
	e := kafkatest.NewExporter(t, kafkatest.Config(t, addrs, env))
	e.Poll(t)
	e.Poll(t)
	if n := tsRequests(t, e, "Fetch"); n != 0 {
		t.Fatalf("%v Fetch requests without Read", n)
	}
	snap := e.Store.Current()
	g, ok := snap.LagSeconds.Group(group)
	if pl, found := g.Partition(topic, 0); !ok || !found || pl.Method != "lower_bound" {
		t.Fatalf("without Read: %+v (group present %v)", pl, ok)
	}
	if len(snap.Offsets.RecordTimes) != 0 {
		t.Fatalf("record times without Read: %v", snap.Offsets.RecordTimes)
	}

	// Brokers before 2.3 do not tell authorized operations (Metadata v8):
	// the first Fetch is refused, which is remembered, logged and, outside
	// exact mode, no poll error; in exact mode it is one fetch error.
	old := map[string]string{"KAFKA_VERSION": "2.2.0"}
	maps.Copy(old, env)
	e = kafkatest.NewExporter(t, kafkatest.Config(t, addrs, old))
	e.Poll(t)
	e.Poll(t)
	if n := tsRequests(t, e, "Fetch"); n != 1 {
		t.Fatalf("before 2.3: %v Fetch requests, want the one refused", n)
	}
	old["LAG_EXACT"] = "true"
	e = kafkatest.NewExporter(t, kafkatest.Config(t, addrs, old))
	if err := e.TryPoll(); err == nil {
		t.Fatal("exact mode without Read: the first poll reported nothing")
	}
	e.Poll(t)
	if n, errs := tsRequests(t, e, "Fetch"), e.PollErrors(t, kafka.StageFetch); n != 1 || errs != 1 {
		t.Fatalf("exact mode before 2.3: %v Fetch requests, %v fetch errors; want 1 and 1", n, errs)
	}

	// Grant Read; a new poller (the permission is rechecked hourly) reads.
	acl := kadm.NewACLs().Allow("User:" + user).AllowHosts("*").Topics(topic).Operations(kadm.OpRead).ResourcePatternType(kadm.ACLPatternLiteral)
	if res, err := adm.CreateACLs(ctx, acl); err != nil || res[0].Err != nil {
		t.Fatalf("grant Read: %v %v", err, res)
	}
	e = kafkatest.NewExporter(t, kafkatest.Config(t, addrs, env))
	e.Poll(t)
	if got, want := tsRead(t, e), []cluster.Record{rec(topic, 0, 5)}; !slices.Equal(got, want) {
		t.Fatalf("with Read: read %v, want %v", got, want)
	}
	g, _ = e.Store.Current().LagSeconds.Group(group)
	if pl, _ := g.Partition(topic, 0); pl.Method != "exact" {
		t.Fatalf("with Read: %+v", pl)
	}
}

// The reads get a third of the poll interval: with the first Fetch held
// past it, the reads not yet started wait for the next poll, which is no
// poll error.
func TestTimestampReadsStopAtTheirShareOfThePoll(t *testing.T) {
	const topic = "slow"
	c := kafkatest.NewCluster(t)
	addrs := c.ListenAddrs()
	kafkatest.CreateTopic(t, addrs, topic, 1)
	tsProduce(t, []kgo.Opt{kgo.SeedBrokers(addrs...)}, topic, []int32{0}, 0, 10)
	adm := kafkatest.Admin(t, addrs)
	for at := range int64(6) {
		tsCommit(t, adm, topic, fmt.Sprintf("g%d", at), map[int32]int64{0: at + 1})
	}
	e := kafkatest.NewExporter(t, kafkatest.Config(t, addrs, map[string]string{
		"TOPIC_INCLUDE": topic, "POLL_INTERVAL": "600ms", "LAG_EXACT_CONCURRENCY": "1"}))
	release := make(chan struct{})
	held := time.AfterFunc(time.Second, func() { close(release) }) // well past the 200 ms share
	defer held.Stop()
	c.ControlKey(int16(kmsg.Fetch), func(kmsgRequest) (kmsgResponse, error, bool) {
		c.SleepControl(func() { <-release }) // the first Fetch only: no KeepControl
		return nil, nil, false
	})
	e.Poll(t)
	if n, got := tsRequests(t, e, "Fetch"), tsRead(t, e); n != 1 || len(got) != 1 {
		t.Fatalf("first poll: %v Fetch requests, read %v; want the one held", n, got)
	}
	e.Poll(t)
	if n, got := tsRequests(t, e, "Fetch"), tsRead(t, e); n != 6 || len(got) != 6 {
		t.Fatalf("second poll: %v Fetch requests, read %v; want all six", n, got)
	}
	if n := e.PollErrors(t, kafka.StageFetch); n != 0 {
		t.Fatalf("%v fetch stage errors", n)
	}
}
