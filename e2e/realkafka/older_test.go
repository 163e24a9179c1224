package realkafka

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/realkafka"
)

// TestOlderBroker starts a second cluster of the pinned older version
// (Kafka 3.9.x) and compares the exporter with kafka-consumer-groups of
// that version and with its __consumer_offsets generations, for a Java
// eager group and an idle group.
func TestOlderBroker(t *testing.T) {
	c, err := realkafka.Start(context.Background(), realkafka.StartOptions{
		Version: realkafka.OlderVersion, Dir: filepath.Join(t.TempDir(), "cluster"), BasePort: 19292,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Stop(context.Background()); err != nil {
			t.Error(err)
		}
	})
	adm, err := c.Admin()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(adm.Close)
	topic, group, idle := "old-"+world.run, "old-"+world.run+"-java", "old-"+world.run+"-idle"
	createTopic(t, adm, topic, 6)
	produceOn(t, c, topic, 180) // 30 a partition: no commit of commitPartial is past the log end
	for i := 0; i < 2; i++ {
		m, err := c.StartVerifiableConsumer(realkafka.KindJavaEager, realkafka.MemberOptions{
			Name: fmt.Sprintf("%s-m%d", group, i), Group: group, Topic: topic, Bootstrap: c.Plaintext,
			SessionTimeout: sessionTimeout, MaxPollInterval: maxPollInterval, ConfigDir: t.TempDir(),
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(m.Kill)
		// One after the other: the second join has a surviving member,
		// from whose KIP-792 metadata the exporter knows the generation.
		if err := m.WaitFor(2*time.Minute, "assignment", func(evs []realkafka.Event) bool { return len(m.Assignment()) > 0 }); err != nil {
			t.Fatal(err)
		}
	}
	commitPartial(t, adm, idle, topic)
	e := startExporter(t, "old-"+world.run+"-.*", "KRE_BROKERS="+realkafka.Bootstrap(c.Plaintext))
	committedAtEnd(t, adm, group, topic, 3*time.Minute)
	waitBrokerStableOn(t, adm, group, 2)

	names := []string{group, idle}
	ctx := ctxT(t, 3*time.Minute)
	offsets, err := c.DescribeOffsets(ctx, names...)
	if err != nil {
		t.Fatal(err)
	}
	states, err := c.DescribeState(ctx, names...)
	if err != nil {
		t.Fatal(err)
	}
	members, err := c.DescribeMembers(ctx, names...)
	if err != nil {
		t.Fatal(err)
	}
	m := scrapeAfter(t, e, time.Now(), names)
	n1, bad1 := compareOffsets(t, m, offsets, names)
	n2, bad2 := compareStates(t, e, m, states)
	n3, bad3 := compareMembers(t, e, members, names)
	if n1 != 9 || n2 != 2 || n3 != 2 {
		t.Errorf("compared %d partitions, %d groups, %d members; want 9, 2, 2", n1, n2, n3)
	}
	log, err := realkafka.TailOffsetsLog(c.Plaintext)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	gen, ok, err := log.Generation(ctx, group)
	if err != nil || !ok {
		t.Fatalf("generation from __consumer_offsets: %v %v", ok, err)
	}
	if v, ok := m.value("kafka_consumergroup_generation_id", map[string]string{"consumergroup": group}); !ok || int32(v) != gen {
		t.Errorf("generation: broker (__consumer_offsets) %d, exporter %v (present %v)", gen, v, ok)
	}
	t.Logf("Kafka %s: %d group-partitions, %d groups, %d members compared: %d mismatches; generation %d", c.Version, n1, n2, n3, bad1+bad2+bad3, gen)
}

func produceOn(t testing.TB, c *realkafka.Cluster, topic string, n int) {
	t.Helper()
	saved := world.cluster
	defer func() { world.cluster = saved }()
	world.cluster = c
	produceN(t, topic, n)
}

func waitBrokerStableOn(t testing.TB, adm *kadm.Client, group string, n int) {
	t.Helper()
	eventually(t, 2*time.Minute, group+" Stable", func() error {
		d, err := adm.DescribeGroups(context.Background(), group)
		if err != nil {
			return err
		}
		if g := d[group]; g.State != "Stable" || len(g.Members) != n {
			return fmt.Errorf("%s with %d members", g.State, len(g.Members))
		}
		return nil
	})
}
