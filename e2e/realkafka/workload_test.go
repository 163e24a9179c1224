package realkafka

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/realkafka"
)

// Timeouts of every member: short, so that crash and freeze scenarios take
// seconds; the broker's group.min.session.timeout.ms allows them.
const (
	sessionTimeout  = 6 * time.Second
	maxPollInterval = 8 * time.Second
)

// allKinds are the client kinds the tests run.
var allKinds = []string{
	realkafka.KindJavaEager, realkafka.KindJavaCoop, realkafka.KindJava848,
	realkafka.KindKcat, realkafka.KindSarama, realkafka.KindFranz,
}

// exactKind tells the kinds whose generations the exporter knows exactly
// (README: KIP-848 epochs, KIP-792 subscription metadata).
func exactKind(kind string) bool {
	switch kind {
	case realkafka.KindKcat, realkafka.KindSarama:
		return false
	}
	return true
}

func is848(kind string) bool { return kind == realkafka.KindJava848 }

// admin is a kadm client for the test's lifetime.
func admin(t testing.TB) *kadm.Client {
	t.Helper()
	adm, err := world.cluster.Admin()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(adm.Close)
	return adm
}

func createTopic(t testing.TB, adm *kadm.Client, topic string, partitions int32) {
	t.Helper()
	if err := realkafka.CreateTopic(ctxT(t, 2*time.Minute), adm, topic, partitions); err != nil {
		t.Fatal(err)
	}
}

// startMember starts a member of kind in group, consuming topic.
func startMember(t testing.TB, kind, name, group, topic string) *realkafka.Member {
	t.Helper()
	o := realkafka.MemberOptions{
		Name: name, Group: group, Topic: topic, Bootstrap: world.cluster.Plaintext,
		SessionTimeout: sessionTimeout, MaxPollInterval: maxPollInterval, Verbose: true,
		ConfigDir: t.TempDir(),
	}
	var m *realkafka.Member
	var err error
	switch kind {
	case realkafka.KindKcat:
		m, err = realkafka.StartKcat(o)
	case realkafka.KindSarama, realkafka.KindFranz:
		m, err = realkafka.StartGoMember(world.self, name, realkafka.GoMemberConfig{
			Kind: kind, Brokers: world.cluster.Plaintext, Group: group, Topics: []string{topic}, ClientID: name,
			SessionTimeout: realkafka.Duration(sessionTimeout), RebalanceTO: realkafka.Duration(maxPollInterval),
		})
	default:
		m, err = world.cluster.StartVerifiableConsumer(kind, o)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		m.Kill()
		if t.Failed() {
			t.Logf("%s %s output:\n%s", kind, name, m.Tail())
		}
	})
	return m
}

// producer writes records to topic at a steady rate until stopped.
type producer struct {
	cl     *kgo.Client
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	sent   int
}

func startProducer(t testing.TB, topic string, every time.Duration) *producer {
	t.Helper()
	cl, err := world.cluster.Client(kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &producer{cl: cl, cancel: cancel}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		tick := time.NewTicker(every)
		defer tick.Stop()
		for n := 0; ; n++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			r := &kgo.Record{Value: fmt.Appendf(nil, "record %d of the real-kafka workload, padded to fill output pipes quickly", n)}
			if err := cl.ProduceSync(ctx, r).FirstErr(); err == nil {
				p.mu.Lock()
				p.sent++
				p.mu.Unlock()
			}
		}
	}()
	t.Cleanup(p.stop)
	return p
}

// stop stops producing; everything sent is acknowledged.
func (p *producer) stop() {
	p.cancel()
	p.wg.Wait()
	p.cl.Close()
}

// produceN writes n records to topic, round robin, and waits for the acks.
func produceN(t testing.TB, topic string, n int) {
	t.Helper()
	cl, err := world.cluster.Client(kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	rs := make([]*kgo.Record, n)
	for i := range rs {
		rs[i] = &kgo.Record{Value: fmt.Appendf(nil, "record %d", i)}
	}
	if err := cl.ProduceSync(ctxT(t, time.Minute), rs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// committedAtEnd waits until group has committed the log end of every
// partition of topic: the consumers are done and their commits settled.
func committedAtEnd(t testing.TB, adm *kadm.Client, group, topic string, timeout time.Duration) {
	t.Helper()
	eventually(t, timeout, group+" committed to the log end", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ends, err := adm.ListEndOffsets(ctx, topic)
		if err != nil {
			return err
		}
		com, err := adm.FetchOffsets(ctx, group)
		if err != nil {
			return err
		}
		var lagging []string
		ends.Each(func(o kadm.ListedOffset) {
			c, ok := com.Lookup(topic, o.Partition)
			if o.Offset > 0 && (!ok || c.At != o.Offset) {
				lagging = append(lagging, fmt.Sprintf("%d: %d of %d", o.Partition, c.At, o.Offset))
			}
		})
		if len(lagging) > 0 {
			return fmt.Errorf("partitions %v", lagging)
		}
		return nil
	})
}

func logPath(t testing.TB, name string) string { return filepath.Join(t.TempDir(), name) }
