package realkafka

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestDeletedGroupAndTopicVanish deletes a group, then its topic, on the
// broker, and waits for each to disappear from /metrics and the JSON API.
func TestDeletedGroupAndTopicVanish(t *testing.T) {
	adm := admin(t)
	topic, group := "del-"+world.run, "del-"+world.run+"-g"
	createTopic(t, adm, topic, 3)
	produceN(t, topic, 30)
	commitPartial(t, adm, group, topic)
	e := startExporter(t, "del-"+world.run+"-.*")
	gl := map[string]string{"consumergroup": group}
	tl := map[string]string{"topic": topic}
	eventually(t, 2*time.Minute, "group and topic exported", func() error {
		m, err := e.scrape()
		if err != nil {
			return err
		}
		if len(m.series("kafka_consumergroup_current_offset", gl)) != 3 || len(m.series("kafka_topic_partition_current_offset", tl)) != 3 {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	if r, err := adm.DeleteGroup(ctxT(t, time.Minute), group); err != nil || r.Err != nil {
		t.Fatalf("delete group: %v %v", err, r.Err)
	}
	eventually(t, 2*time.Minute, "deleted group gone from /metrics", func() error {
		m, err := e.scrape()
		if err != nil {
			return err
		}
		for name := range m.families {
			if s := m.series(name, gl); len(s) > 0 {
				return fmt.Errorf("%s still has %v", name, s[0].labels)
			}
		}
		if _, ok, err := e.group(group); ok || err != nil {
			return fmt.Errorf("JSON API still has the group (%v)", err)
		}
		return nil
	})
	if _, err := adm.DeleteTopic(ctxT(t, time.Minute), topic); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Minute, "deleted topic gone from /metrics", func() error {
		m, err := e.scrape()
		if err != nil {
			return err
		}
		for name := range m.families {
			if s := m.series(name, tl); len(s) > 0 {
				return fmt.Errorf("%s still has %v", name, s[0].labels)
			}
		}
		return nil
	})
}

// TestLagSeconds produces records at a known pace, commits a group at one
// of them, and compares kafka_consumergroup_lag_seconds with the age of the
// record at the committed offset (its broker timestamp): interpolated from
// the log-end history (default) and exact (KRE_LAG_EXACT=true).
func TestLagSeconds(t *testing.T) {
	adm := admin(t)
	topic := "lag-" + world.run
	group := topic + "-g"
	createTopic(t, adm, topic, 1)
	// The group exists (committed at 0) before production starts, as a
	// consumer group would.
	commitAt(t, adm, group, topic, 0)
	interp := startExporter(t, "lag-"+world.run+"-.*")
	exact := startExporter(t, "lag-"+world.run+"-.*", "KRE_LAG_EXACT=true")
	scrapeAfter(t, interp, time.Now(), []string{group})
	scrapeAfter(t, exact, time.Now(), []string{group})
	ts := producePaced(t, topic, 40, 200*time.Millisecond)
	const at = 10
	commitAt(t, adm, group, topic, at)
	for _, c := range []struct {
		name      string
		e         *exporter
		tolerance time.Duration
	}{{"interpolated", interp, 2 * time.Second}, {"exact", exact, 1500 * time.Millisecond}} {
		m := scrapeAfter(t, c.e, time.Now(), []string{group})
		v, ok := m.value("kafka_consumergroup_lag_seconds", gpLabels(group, topic, 0))
		if !ok {
			t.Errorf("%s: no lag_seconds series", c.name)
			continue
		}
		want := m.at.Sub(ts[at]).Seconds()
		diff := v - want
		t.Logf("%s: lag_seconds %.3f, age of the record at the committed offset %.3f (scrape time - broker timestamp): error %+.3fs (tolerance %s)", c.name, v, want, diff, c.tolerance)
		if math.Abs(diff) > c.tolerance.Seconds() {
			t.Errorf("%s: lag_seconds %.3f, want %.3f ± %s", c.name, v, want, c.tolerance)
		}
	}
}

// producePaced writes n records one by one, every interval, and returns
// their broker timestamps by offset.
func producePaced(t testing.TB, topic string, n int, every time.Duration) []time.Time {
	t.Helper()
	cl, err := world.cluster.Client(kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ts := make([]time.Time, n)
	for i := 0; i < n; i++ {
		r, err := cl.ProduceSync(ctxT(t, time.Minute), &kgo.Record{Value: []byte("paced")}).First()
		if err != nil {
			t.Fatal(err)
		}
		if r.Offset != int64(i) {
			t.Fatalf("record %d at offset %d", i, r.Offset)
		}
		ts[i] = r.Timestamp
		time.Sleep(every) // the pace of production, not synchronisation
	}
	return ts
}
