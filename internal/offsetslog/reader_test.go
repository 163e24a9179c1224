package offsetslog

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/plain"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/kafka"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/kfaketest"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/testkit"
)

// kfake has no __consumer_offsets, so these tests write records encoded
// by kmsg into an ordinary topic and point the reader at it: the reads,
// catch-up, restarts and retries are real.

const waitTimeout = 30 * time.Second

// world is a kfake cluster with the topic the reader reads.
type world struct {
	t     *testing.T
	c     *kfake.Cluster
	addrs []string
	topic string
	prod  *kgo.Client
	// ends is each partition's log end after what the test produced.
	mu   sync.Mutex
	ends map[int32]int64
}

func newWorld(t *testing.T, partitions int32, opts ...kfake.Opt) *world {
	t.Helper()
	c := kfaketest.NewCluster(t, opts...)
	w := &world{t: t, c: c, addrs: c.ListenAddrs(), topic: "test_consumer_offsets", ends: map[int32]int64{}}
	if partitions > 0 {
		kfaketest.CreateTopic(t, w.addrs, w.topic, partitions)
	}
	return w
}

func (w *world) producer() *kgo.Client {
	w.t.Helper()
	if w.prod == nil {
		cl, err := kgo.NewClient(kgo.SeedBrokers(w.addrs...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
			kgo.ProducerLinger(0), kgo.ProducerBatchCompression(kgo.NoCompression()))
		if err != nil {
			w.t.Fatal(err)
		}
		w.t.Cleanup(cl.Close)
		w.prod = cl
	}
	return w.prod
}

// produce writes recs to partition as one call, timestamped at (zero:
// now), and records the partition's new log end.
func (w *world) produce(partition int32, at time.Time, recs ...kv) {
	w.t.Helper()
	var out []*kgo.Record
	for _, r := range recs {
		out = append(out, &kgo.Record{Topic: w.topic, Partition: partition, Key: r.key, Value: r.value, Timestamp: at})
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	res := w.producer().ProduceSync(ctx, out...)
	if err := res.FirstErr(); err != nil {
		w.t.Fatalf("produce: %v", err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, r := range res {
		w.ends[partition] = max(w.ends[partition], r.Record.Offset+1)
	}
}

func (w *world) options() Options { return testOptions(w.addrs, w.topic) }

// run is a Reader running until the test ends, logging into logs.
type run struct {
	t    *testing.T
	r    *Reader
	logs *testkit.SyncBuffer
	stop context.CancelFunc
	done chan struct{}
}

func startReader(t *testing.T, opts Options) *run {
	t.Helper()
	logs := &testkit.SyncBuffer{}
	opts.Logger = zerolog.New(logs).Level(zerolog.DebugLevel)
	r, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rn := &run{t: t, r: r, logs: logs, stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(rn.done)
		if err := r.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	t.Cleanup(rn.close)
	return rn
}

// close stops the reader and waits for Run to return.
func (rn *run) close() {
	rn.stop()
	select {
	case <-rn.done:
	case <-time.After(waitTimeout):
		rn.t.Errorf("Run did not return after its context was cancelled")
	}
}

// waitFor polls the published view until cond accepts it.
func (rn *run) waitFor(what string, cond func(v *View) error) *View {
	rn.t.Helper()
	var v *View
	testkit.Eventually(rn.t, waitTimeout, 5*time.Millisecond, what, func() error {
		v = rn.r.View()
		return cond(v)
	})
	return v
}

// caughtUpWith waits until every partition is live and past what w
// produced.
func (rn *run) caughtUpWith(w *world) *View {
	rn.t.Helper()
	return rn.waitFor("caught up", func(v *View) error {
		if !v.CaughtUp() {
			return fmt.Errorf("not caught up: error %q, partitions %+v", v.Error, v.Partitions)
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		for _, p := range v.Partitions {
			if p.Next < w.ends[p.Partition] {
				return fmt.Errorf("partition %d at %d of %d", p.Partition, p.Next, w.ends[p.Partition])
			}
		}
		return nil
	})
}

func (rn *run) metric(name string, labels ...string) float64 {
	rn.t.Helper()
	return metric(rn.t, rn.r, name, labels...)
}

// logLines returns the JSON log lines at level whose message contains
// msg and whose fields include the given ones.
func (rn *run) logLines(level, msg string, fields map[string]string) []map[string]any {
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(rn.logs.String()))
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			rn.t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		if line["level"] != level || !strings.Contains(fmt.Sprint(line["message"]), msg) {
			continue
		}
		all := true
		for k, v := range fields {
			all = all && fmt.Sprint(line[k]) == v
		}
		if all {
			out = append(out, line)
		}
	}
	return out
}

func generation(v *View, group string) int32 {
	g, ok := v.Group(group)
	if !ok || g.Metadata == nil {
		return -1
	}
	return g.Metadata.Generation
}

// The reader reads every partition from the log start, applies each kind
// of record, publishes, and keeps up with new records live.
func TestReaderReadsEveryPartition(t *testing.T) {
	w := newWorld(t, 4)
	w.produce(0, time.Time{}, metaKV("a", 1, "m1"), commitKV("a", "orders", 0, 5, t0), metaKV("a", 2, "m1", "m2"),
		otherKV("kip848"))
	w.produce(1, time.Time{}, metaKV("b", 7, "x"), commitKV("b", "orders", 0, 1, t0), commitKV("b", "orders", 1, 1, t0.Add(time.Second)))
	w.produce(2, time.Time{}, metaKV("gone", 3, "y"), commitKV("gone", "t", 0, 1, t0), commitTombstoneKV("gone", "t", 0), metaTombstoneKV("gone"))
	// partition 3 stays empty: a partition with nothing is caught up too.
	rn := startReader(t, w.options())
	v := rn.caughtUpWith(w)
	if len(v.Partitions) != 4 {
		t.Fatalf("%d partitions, want 4", len(v.Partitions))
	}
	if generation(v, "a") != 2 || generation(v, "b") != 7 {
		t.Fatalf("generations a=%d b=%d, want 2 and 7", generation(v, "a"), generation(v, "b"))
	}
	if _, ok := v.Group("gone"); ok {
		t.Error("removed group is there")
	}
	if b := v.Groups["b"]; b.Commits != 2 || !b.LastCommit.Equal(t0.Add(time.Second)) || b.Partition != 1 {
		t.Errorf("group b: %+v", b)
	}
	if m, ok := v.Groups["a"].Member("m2"); !ok || m.SessionTimeout != 11*time.Second || m.RebalanceTimeout != 61*time.Second {
		t.Errorf("member m2: %+v %v", m, ok)
	}
	src := rn.r.Source()
	if gen, ok := src.Generation(classicGroup("a")); !ok || gen != 2 {
		t.Errorf("source: %d %v", gen, ok)
	}
	for typ, want := range map[string]float64{"group_metadata": 4, "group_metadata_tombstone": 1, "offset_commit": 4, "offset_commit_tombstone": 1} {
		if got := rn.metric("records_total", "type", typ); got != want {
			t.Errorf("records_total{type=%q} = %v, want %v", typ, got, want)
		}
	}
	if got := rn.metric("records_skipped_total", "reason", "unknown_key"); got != 1 {
		t.Errorf("unknown keys %v, want 1", got)
	}
	for p := range 4 {
		if got := rn.metric("records_behind", "partition", fmt.Sprint(p)); got != 0 {
			t.Errorf("records_behind{%d} = %v", p, got)
		}
	}
	if rn.metric("caught_up") != 1 || rn.metric("readable") != 1 || rn.metric("partitions_behind") != 0 || rn.metric("groups") != 2 {
		t.Error("gauges do not say caught up")
	}
	if len(rn.logLines("info", "caught up", nil)) != 1 {
		t.Errorf("want one caught-up line:\n%s", rn.logs)
	}

	// Live: a rebalance and a commit written now are read.
	w.produce(0, time.Time{}, metaKV("a", 3, "m2"))
	w.produce(3, time.Time{}, commitKV("c", "orders", 0, 9, t0))
	v = rn.caughtUpWith(w)
	if generation(v, "a") != 3 || v.Groups["c"] == nil || v.Groups["c"].Commits != 1 {
		t.Fatalf("live records not applied: a=%d c=%+v", generation(v, "a"), v.Groups["c"])
	}
	if gen, ok := src.Generation(classicGroup("a")); !ok || gen != 3 {
		t.Errorf("source after the live record: %d %v", gen, ok)
	}
}

// The reader sends only Metadata, ListOffsets and Fetch (and what sarama
// sends on connect): it never joins, commits or produces.
func TestReaderIsReadOnly(t *testing.T) {
	w := newWorld(t, 3)
	w.produce(0, time.Time{}, metaKV("a", 1, "m"))
	w.produce(2, time.Time{}, commitKV("a", "t", 0, 1, t0))
	// From here on the reader is the only client (franz-go's producer
	// would go on sending telemetry requests).
	w.prod.Close()
	var mu sync.Mutex
	seen := map[int16]int{}
	for key := int16(0); key <= 92; key++ {
		w.c.ControlKey(key, func(req kmsg.Request) (kmsg.Response, error, bool) {
			w.c.KeepControl()
			mu.Lock()
			seen[req.Key()]++
			mu.Unlock()
			return nil, nil, false
		})
	}
	rn := startReader(t, w.options())
	rn.caughtUpWith(w)
	// A few long polls while live.
	polls := rn.metric("kafka_requests_total", "api", "Fetch")
	testkit.Eventually(t, waitTimeout, 10*time.Millisecond, "live fetches", func() error {
		if got := rn.metric("kafka_requests_total", "api", "Fetch"); got < polls+3 {
			return fmt.Errorf("%v fetches", got)
		}
		return nil
	})
	rn.close()
	mu.Lock()
	defer mu.Unlock()
	allowed := map[int16]bool{1: true, 2: true, 3: true, 17: true, 18: true, 36: true} // Fetch, ListOffsets, Metadata, SASL, ApiVersions
	for key, n := range seen {
		if !allowed[key] {
			t.Errorf("sent %d requests of %s", n, kmsg.NameForKey(key))
		}
	}
	if seen[1] == 0 || seen[2] == 0 || seen[3] == 0 {
		t.Errorf("requests seen %v: want Fetch, ListOffsets and Metadata", seen)
	}
}

func TestStartLatestSkipsWhatWasWritten(t *testing.T) {
	w := newWorld(t, 2)
	w.produce(0, time.Time{}, metaKV("old", 4, "m"), commitKV("old", "t", 0, 1, t0))
	opts := w.options()
	opts.Start = Start{Mode: StartLatest}
	rn := startReader(t, opts)
	v := rn.caughtUpWith(w)
	if len(v.Groups) != 0 {
		t.Fatalf("groups %v read from before the start", v.Groups)
	}
	w.produce(1, time.Time{}, metaKV("new", 1, "m"))
	w.produce(0, time.Time{}, metaKV("old", 5, "m"))
	v = rn.caughtUpWith(w)
	if generation(v, "new") != 1 || generation(v, "old") != 5 || v.Groups["old"].Commits != 0 {
		t.Fatalf("after the start: %+v", v.Groups)
	}
}

// A look-back starts each partition at the first record as recent as
// now − look-back (ListOffsets by timestamp), or at its end when there is
// none.
func TestStartLookBack(t *testing.T) {
	w := newWorld(t, 2)
	now := time.Now()
	w.produce(0, now.Add(-2*time.Hour), metaKV("stale", 1, "m"), metaKV("both", 1, "m"), commitKV("both", "t", 0, 1, now.Add(-2*time.Hour)))
	w.produce(0, now.Add(-10*time.Minute), metaKV("both", 2, "m"), metaKV("recent", 1, "m"), commitKV("both", "t", 0, 2, now.Add(-10*time.Minute)))
	w.produce(1, now.Add(-3*time.Hour), metaKV("old", 9, "m"))
	opts := w.options()
	opts.Start = Start{Mode: StartLookBack, LookBack: time.Hour}
	rn := startReader(t, opts)
	v := rn.caughtUpWith(w)
	if _, ok := v.Group("stale"); ok {
		t.Error("read a group from before the look-back")
	}
	if _, ok := v.Group("old"); ok {
		t.Error("read partition 1, which has nothing as recent as the look-back")
	}
	if generation(v, "both") != 2 || generation(v, "recent") != 1 || v.Groups["both"].Commits != 1 {
		t.Fatalf("groups after the look-back: %+v", v.Groups)
	}
	if p := v.Partitions[0]; p.Next != 6 || v.Partitions[1].Next != 1 {
		t.Errorf("positions %+v", v.Partitions)
	}
}

// A reader started again reads the same state: what it keeps is a
// function of the log.
func TestRestartReadsTheSameState(t *testing.T) {
	w := newWorld(t, 3)
	for i := range int32(30) {
		g := fmt.Sprintf("g%d", i%7)
		w.produce(i%3, time.Time{}, metaKV(g, i, "m", fmt.Sprintf("m%d", i)), commitKV(g, "t", i%4, int64(i), t0.Add(time.Duration(i)*time.Second)))
	}
	first := startReader(t, w.options())
	v1 := first.caughtUpWith(w)
	first.close()
	second := startReader(t, w.options())
	v2 := second.caughtUpWith(w)
	if len(v1.Groups) != 7 || !reflect.DeepEqual(v1.Groups, v2.Groups) {
		t.Fatalf("state after a restart differs:\n%+v\n%+v", v1.Groups, v2.Groups)
	}
}

// Offset commits produced in transactions count when committed, never
// when aborted; the markers are read past.
func TestTransactionsThroughTheBroker(t *testing.T) {
	w := newWorld(t, 1)
	txn, err := kgo.NewClient(kgo.SeedBrokers(w.addrs...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.TransactionalID("streams-app-0"))
	if err != nil {
		t.Fatal(err)
	}
	defer txn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	transaction := func(commit kgo.TransactionEndTry, recs ...kv) {
		t.Helper()
		if err := txn.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if err := txn.ProduceSync(ctx, &kgo.Record{Topic: w.topic, Partition: 0, Key: r.key, Value: r.value}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		if err := txn.EndTransaction(ctx, commit); err != nil {
			t.Fatal(err)
		}
	}
	transaction(kgo.TryCommit, commitKV("streams", "in", 0, 10, t0), commitKV("streams", "in", 1, 11, t0.Add(time.Second)))
	transaction(kgo.TryAbort, commitKV("streams", "in", 0, 20, t0.Add(time.Hour)))
	w.produce(0, time.Time{}, metaKV("streams", 3, "m"))
	rn := startReader(t, w.options())
	v := rn.caughtUpWith(w)
	g := v.Groups["streams"]
	if g == nil || g.Commits != 2 || !g.LastCommit.Equal(t0.Add(time.Second)) || g.Metadata.Generation != 3 {
		t.Fatalf("group after a committed and an aborted transaction: %+v", g)
	}
	if got := rn.metric("records_skipped_total", "reason", "aborted"); got != 1 {
		t.Errorf("aborted commits %v, want 1", got)
	}
	if got := rn.metric("records_skipped_total", "reason", "control"); got != 2 {
		t.Errorf("markers %v, want 2", got)
	}
}

// saslOptions are options for the reader authenticating as user.
func saslOptions(w *world, user, password string) Options {
	opts := w.options()
	opts.Sarama.Net.SASL.Enable = true
	opts.Sarama.Net.SASL.Handshake = true
	opts.Sarama.Net.SASL.Mechanism = sarama.SASLTypePlaintext
	opts.Sarama.Net.SASL.User, opts.Sarama.Net.SASL.Password = user, password
	return opts
}

// Without Read on the topic (a real ACL), the reader says so once in the
// log and in the metrics, keeps retrying, and resumes by itself once Read
// is granted.
func TestDeniedThenGranted(t *testing.T) {
	const topic = "test_consumer_offsets"
	w := newWorld(t, 0, kfake.EnableSASL(), kfake.EnableACLs(), kfake.Superuser("PLAIN", "admin", "admin-secret"),
		kfake.User("PLAIN", "exporter", "exporter-secret",
			kfake.ACL{Resource: kmsg.ACLResourceTypeTopic, Name: topic, Pattern: kmsg.ACLResourcePatternTypeLiteral, Operation: kmsg.ACLOperationDescribe, Allow: true},
			kfake.ACL{Resource: kmsg.ACLResourceTypeCluster, Name: "kafka-cluster", Pattern: kmsg.ACLResourcePatternTypeLiteral, Operation: kmsg.ACLOperationDescribe, Allow: true}))
	admin, err := kgo.NewClient(kgo.SeedBrokers(w.addrs...), kgo.SASL(plain.Auth{User: "admin", Pass: "admin-secret"}.AsMechanism()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	w.prod = admin
	adm := kadm.NewClient(admin)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if _, err := adm.CreateTopic(ctx, 2, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	w.produce(0, time.Time{}, metaKV("pay", 12, "m"))

	rn := startReader(t, saslOptions(w, "exporter", "exporter-secret"))
	rn.waitFor("denied", func(v *View) error {
		if len(v.Partitions) != 2 || v.Partitions[0].Error != ReasonDenied || v.Partitions[1].Error != ReasonDenied {
			return fmt.Errorf("partitions %+v", v.Partitions)
		}
		return nil
	})
	// Several rounds of retries, still one line.
	testkit.Eventually(t, waitTimeout, 10*time.Millisecond, "retries", func() error {
		if got := rn.metric("read_errors_total", "reason", ReasonDenied); got < 6 {
			return fmt.Errorf("%v denied reads", got)
		}
		return nil
	})
	if got := rn.logLines("warn", "cannot read", map[string]string{"reason": ReasonDenied}); len(got) != 1 {
		t.Fatalf("%d warnings for the denial, want 1:\n%s", len(got), rn.logs)
	}
	if rn.metric("readable") != 0 || rn.metric("caught_up") != 0 {
		t.Fatal("gauges say readable while denied")
	}
	if v := rn.r.View(); v.Readable() || len(v.Groups) != 0 {
		t.Fatalf("view while denied: %+v", v)
	}

	if _, err := adm.CreateACLs(ctx, kadm.NewACLs().Allow("User:exporter").AllowHosts("*").Topics(topic).
		Operations(kadm.OpRead).ResourcePatternType(kadm.ACLPatternLiteral)); err != nil {
		t.Fatal(err)
	}
	v := rn.caughtUpWith(w)
	if generation(v, "pay") != 12 {
		t.Fatalf("after Read was granted: %+v", v.Groups)
	}
	if got := rn.logLines("info", "readable again", nil); len(got) != 1 {
		t.Fatalf("%d recovery lines, want 1:\n%s", len(got), rn.logs)
	}
}

// A topic that does not exist yet is one warning, retried until it
// appears.
func TestTopicAppearsLater(t *testing.T) {
	w := newWorld(t, 0)
	rn := startReader(t, w.options())
	rn.waitFor("unknown topic", func(v *View) error {
		if v.Error != ReasonUnknownTopic {
			return fmt.Errorf("error %q", v.Error)
		}
		return nil
	})
	testkit.Eventually(t, waitTimeout, 10*time.Millisecond, "retries", func() error {
		if got := rn.metric("read_errors_total", "reason", ReasonUnknownTopic); got < 3 {
			return fmt.Errorf("%v attempts", got)
		}
		return nil
	})
	if got := rn.logLines("warn", "cannot read", map[string]string{"reason": ReasonUnknownTopic}); len(got) != 1 {
		t.Fatalf("%d warnings, want 1:\n%s", len(got), rn.logs)
	}
	kfaketest.CreateTopic(t, w.addrs, w.topic, 2)
	w.produce(1, time.Time{}, metaKV("late", 2, "m"))
	if v := rn.caughtUpWith(w); generation(v, "late") != 2 {
		t.Fatalf("groups %+v", v.Groups)
	}
}

// Fetch errors (a leader that is not, a dropped connection) are retried
// per partition and the reader carries on from where it was.
func TestFetchFailuresAreRetried(t *testing.T) {
	w := newWorld(t, 2)
	w.produce(0, time.Time{}, metaKV("a", 1, "m"))
	w.produce(1, time.Time{}, metaKV("b", 1, "m"))
	var mu sync.Mutex
	failures := 0
	w.c.ControlKey(1, func(req kmsg.Request) (kmsg.Response, error, bool) {
		w.c.KeepControl()
		mu.Lock()
		defer mu.Unlock()
		failures++
		switch {
		case failures <= 3:
			fr := req.(*kmsg.FetchRequest)
			resp := fr.ResponseKind().(*kmsg.FetchResponse)
			for _, rt := range fr.Topics {
				st := kmsg.NewFetchResponseTopic()
				st.Topic, st.TopicID = rt.Topic, rt.TopicID
				for _, rp := range rt.Partitions {
					sp := kmsg.NewFetchResponseTopicPartition()
					sp.Partition, sp.ErrorCode = rp.Partition, 6 // NOT_LEADER_OR_FOLLOWER
					// As a broker answers an error: no records (empty, not null).
					sp.HighWatermark, sp.LastStableOffset, sp.LogStartOffset, sp.RecordBatches = -1, -1, -1, []byte{}
					st.Partitions = append(st.Partitions, sp)
				}
				resp.Topics = append(resp.Topics, st)
			}
			return resp, nil, true
		case failures <= 5:
			return nil, errors.New("connection dropped"), true
		}
		w.c.DropControl()
		return nil, nil, false
	})
	rn := startReader(t, w.options())
	v := rn.caughtUpWith(w)
	if generation(v, "a") != 1 || generation(v, "b") != 1 {
		t.Fatalf("groups %+v", v.Groups)
	}
	if rn.metric("read_errors_total", "reason", ReasonNoLeader) == 0 || rn.metric("read_errors_total", "reason", ReasonBroker) == 0 {
		t.Errorf("failures not counted: no_leader %v, broker %v\n%s", rn.metric("read_errors_total", "reason", ReasonNoLeader),
			rn.metric("read_errors_total", "reason", ReasonBroker), rn.logs)
	}
	w.produce(0, time.Time{}, metaKV("a", 2, "m"))
	if v := rn.caughtUpWith(w); generation(v, "a") != 2 {
		t.Fatalf("after recovering: %+v", v.Groups)
	}
	if got := rn.logLines("info", "readable again", nil); len(got) == 0 {
		t.Errorf("no recovery line:\n%s", rn.logs)
	}
}

// A position below the log start (deleted since it was found) moves to
// the log start, counted; reading goes on from there.
func TestPositionBelowLogStartMoves(t *testing.T) {
	w := newWorld(t, 1)
	var recs []kv
	for i := range int64(10) {
		recs = append(recs, commitKV("g", "t", 0, i, t0))
	}
	w.produce(0, time.Time{}, recs...)
	adm := kfaketest.Admin(t, w.addrs)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	offs := kadm.Offsets{}
	offs.Add(kadm.Offset{Topic: w.topic, Partition: 0, At: 6})
	if _, err := adm.DeleteRecords(ctx, offs); err != nil {
		t.Fatal(err)
	}
	// The first ListOffsets answers offset 0, as if the records went
	// after the reader found its position.
	w.c.ControlKey(2, func(req kmsg.Request) (kmsg.Response, error, bool) {
		lr := req.(*kmsg.ListOffsetsRequest)
		resp := lr.ResponseKind().(*kmsg.ListOffsetsResponse)
		for _, rt := range lr.Topics {
			st := kmsg.NewListOffsetsResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewListOffsetsResponseTopicPartition()
				sp.Partition, sp.Offset, sp.Timestamp, sp.LeaderEpoch = rp.Partition, 0, -1, -1
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	rn := startReader(t, w.options())
	v := rn.caughtUpWith(w)
	if g := v.Groups["g"]; g == nil || g.Commits != 4 {
		t.Fatalf("commits %+v, want the 4 from the log start", g)
	}
	if got := rn.metric("read_errors_total", "reason", ReasonOffsetReset); got != 1 {
		t.Errorf("offset resets %v, want 1", got)
	}
	if got := rn.logLines("warn", "deleted from the log", map[string]string{"from": "0", "to": "6"}); len(got) != 1 {
		t.Errorf("%d reset lines, want 1:\n%s", len(got), rn.logs)
	}
}

// New does no I/O and Run does not block anything: with no broker to
// talk to, the view is there at once (empty, not readable), the failure
// is one warning and a metric, and Run stops when asked.
func TestStartupDoesNotBlock(t *testing.T) {
	addr := testkit.FreeAddr(t)
	start := time.Now()
	rn := startReader(t, testOptions([]string{addr}, DefaultTopic))
	if v := rn.r.View(); v == nil || v.Readable() || v.CaughtUp() || len(v.Groups) != 0 {
		t.Fatalf("initial view %+v", v)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("starting took %s", took)
	}
	testkit.Eventually(t, waitTimeout, 10*time.Millisecond, "connect retries", func() error {
		if got := rn.metric("read_errors_total", "reason", ReasonConnect); got < 3 {
			return fmt.Errorf("%v attempts", got)
		}
		return nil
	})
	if v := rn.r.View(); v.Error != ReasonConnect {
		t.Errorf("view error %q, want connect", v.Error)
	}
	if got := rn.logLines("warn", "cannot read", map[string]string{"reason": ReasonConnect}); len(got) != 1 {
		t.Errorf("%d warnings, want 1:\n%s", len(got), rn.logs)
	}
	stopped := time.Now()
	rn.close()
	if took := time.Since(stopped); took > 5*time.Second {
		t.Errorf("Run took %s to return", took)
	}
	if err := rn.r.Run(context.Background()); err == nil {
		t.Error("a second Run was accepted")
	}
}

// A look-back over a log larger than one fetch reads it in bounded
// rounds, logging progress, and catches up.
func TestCatchUpOverManyFetches(t *testing.T) {
	w := newWorld(t, 2)
	for round := range 20 {
		var recs []kv
		for i := range 200 {
			recs = append(recs, commitKV(fmt.Sprintf("g%d", i%50), "orders", int32(i%12), int64(round*200+i), t0))
		}
		w.produce(int32(round%2), time.Time{}, recs...)
	}
	opts := w.options()
	opts.FetchMaxBytes, opts.PartitionMaxBytes = 16<<10, 8<<10 // many rounds
	opts.ProgressInterval = time.Nanosecond                    // a line every round
	rn := startReader(t, opts)
	v := rn.caughtUpWith(w)
	var commits uint64
	for _, g := range v.Groups {
		commits += g.Commits
	}
	if commits != 4000 || len(v.Groups) != 50 {
		t.Fatalf("%d commits in %d groups, want 4000 in 50", commits, len(v.Groups))
	}
	// 20 uncompressed batches of about 10 KiB, at most 16 KiB a response.
	if got := rn.metric("kafka_requests_total", "api", "Fetch"); got < 10 {
		t.Errorf("%v fetches for 20 batches of 200 records in 16 KiB responses", got)
	}
	if len(rn.logLines("info", "catching up", nil)) == 0 {
		t.Errorf("no progress line:\n%s", rn.logs)
	}
}

func TestMetricsLint(t *testing.T) {
	r, err := New(testOptions([]string{"127.0.0.1:1"}, DefaultTopic))
	if err != nil {
		t.Fatal(err)
	}
	problems, err := testutil.CollectAndLint(r.Metrics())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
	if !strings.HasPrefix(MetricPrefix, kafka.SelfPrefix) {
		t.Errorf("prefix %q is not under the exporter's %q", MetricPrefix, kafka.SelfPrefix)
	}
	// Every fixed label value exists at zero from the start.
	s := testkit.Collect(t, r.Metrics())
	for _, reason := range Reasons {
		if _, ok := s.Get(MetricPrefix+"read_errors_total", "reason", reason); !ok {
			t.Errorf("read_errors_total{reason=%q} missing", reason)
		}
	}
}

// While any partition is behind, fetches do not long-poll (a broker with
// nothing new would hold every round); once all are caught up, they do
// (no busy loop).
func TestLongPollOnlyWhenCaughtUp(t *testing.T) {
	w := newWorld(t, 2)
	for range 10 {
		var recs []kv
		for i := range 200 {
			recs = append(recs, commitKV("g", "orders", int32(i%12), int64(i), t0))
		}
		w.produce(0, time.Time{}, recs...)
	}
	w.mu.Lock()
	end := w.ends[0]
	w.mu.Unlock()
	type fetch struct {
		wait   int32
		offset int64 // of partition 0; -1 when not asked
	}
	var mu sync.Mutex
	var fetches []fetch
	w.c.ControlKey(1, func(req kmsg.Request) (kmsg.Response, error, bool) {
		w.c.KeepControl()
		fr := req.(*kmsg.FetchRequest)
		f := fetch{wait: fr.MaxWaitMillis, offset: -1}
		for _, rt := range fr.Topics {
			for _, rp := range rt.Partitions {
				if rt.Topic == w.topic && rp.Partition == 0 {
					f.offset = rp.FetchOffset
				}
			}
		}
		mu.Lock()
		fetches = append(fetches, f)
		mu.Unlock()
		return nil, nil, false
	})
	opts := w.options()
	opts.FetchMaxWait = time.Second
	opts.FetchMaxBytes, opts.PartitionMaxBytes = 16<<10, 8<<10
	rn := startReader(t, opts)
	rn.caughtUpWith(w)
	longPolls := func() (n int) {
		mu.Lock()
		defer mu.Unlock()
		for _, f := range fetches {
			if f.wait == 1000 && f.offset == end {
				n++
			}
		}
		return n
	}
	testkit.Eventually(t, waitTimeout, 10*time.Millisecond, "long polls once caught up", func() error {
		if n := longPolls(); n < 2 {
			return fmt.Errorf("%d long polls", n)
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	behind := 0
	for _, f := range fetches {
		if f.offset >= 0 && f.offset < end {
			behind++
			if f.wait != 0 {
				t.Errorf("fetch at offset %d of %d waited %d ms", f.offset, end, f.wait)
			}
		}
	}
	if behind < 5 {
		t.Errorf("%d fetches while behind: the catch-up did not take several rounds", behind)
	}
}

// A partition whose leader moves is found at its new leader (NOT_LEADER,
// a metadata refresh) and read on from where it was.
func TestLeaderMove(t *testing.T) {
	w := newWorld(t, 1)
	w.produce(0, time.Time{}, metaKV("a", 1, "m"))
	rn := startReader(t, w.options())
	rn.caughtUpWith(w)
	from := w.c.LeaderFor(w.topic, 0)
	to := (from + 1) % 3
	if err := w.c.MoveTopicPartition(w.topic, 0, to); err != nil {
		t.Fatal(err)
	}
	w.produce(0, time.Time{}, metaKV("a", 2, "m"), commitKV("a", "t", 0, 1, t0))
	v := rn.caughtUpWith(w)
	if generation(v, "a") != 2 || v.Groups["a"].Commits != 1 {
		t.Fatalf("after the move from broker %d to %d: %+v", from, to, v.Groups["a"])
	}
}
