package collector_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/collector"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/config"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/exposition"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/testkit"
)

var constLabels = map[string]string{"cluster": "prod", "zone": "eu-1"}

// Constant labels are on every series, the rendered ones and the live
// ones, and only add labels: without them the exposition is the same.
func TestConstLabelsOnEverySeries(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	st := goldenStore(t, t0)
	now := func() time.Time { return t0.Add(15 * time.Second) }
	base := collector.Options{Now: now, MemberMetrics: true, DurationBuckets: true}
	labelled := base
	labelled.ConstLabels = constLabels

	plain := testkit.Collect(t, collector.New(st, base))
	with := testkit.Collect(t, collector.New(st, labelled))
	if len(with) != len(plain) || len(plain) < 100 {
		t.Fatalf("%d series with constant labels, %d without", len(with), len(plain))
	}
	for key, v := range with {
		name, labels, _ := testkit.SplitKey(key)
		if labels["cluster"] != "prod" || labels["zone"] != "eu-1" {
			t.Errorf("%s lacks the constant labels", key)
			continue
		}
		var pairs []string
		for l, lv := range labels {
			if l != "cluster" && l != "zone" {
				pairs = append(pairs, l, lv)
			}
		}
		if pv, ok := plain[testkit.Key(name, pairs...)]; !ok || pv != v {
			t.Errorf("%s = %v; without constant labels %v (present %v)", key, v, pv, ok)
		}
	}
	assertLintClean(t, collector.New(st, labelled))

	// Rendered for /metrics, in both formats: labels in name order, a
	// histogram's le last.
	for _, f := range []exposition.Format{exposition.Text, exposition.OpenMetrics} {
		w := exposition.NewWriter(f, 0)
		collector.Render(w, st.Current(), labelled)
		text := string(w.Bytes())
		for _, line := range []string{
			`kafka_consumergroup_lag{cluster="prod",consumergroup="orders-app",partition="0",topic="orders",zone="eu-1"} 50`,
			`kafka_brokers{cluster="prod",zone="eu-1"} 3`,
			`kafka_consumergroup_rebalance_duration_seconds_bucket{cluster="prod",consumergroup="next-gen",zone="eu-1",le="+Inf"} 0`,
		} {
			if !strings.Contains(text, line+"\n") {
				t.Errorf("format %d: no line %s", f, line)
			}
		}
	}

	live, err := collector.LiveRegistry(st, labelled, prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "kre_test_live", Help: "A live metric."}, func() float64 { return 1 }))
	if err != nil {
		t.Fatal(err)
	}
	gathered, err := testkit.Gather(live)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{
		testkit.Key("kre_test_live", "cluster", "prod", "zone", "eu-1"),
		testkit.Key("kafka_rebalance_exporter_snapshot_age_seconds", "cluster", "prod", "loop", "groups", "zone", "eu-1"),
	} {
		if _, ok := gathered[key]; !ok {
			t.Errorf("live registry lacks %s: %v", key, gathered)
		}
	}
}

// The names config refuses for CONST_LABELS cover every label the
// collector writes (the live registry's are checked against a running
// exporter in TestKafkaExporterFamiliesInLiveScrape).
func TestReservedLabelsCoverRenderedLabels(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	snaps := []collector.Options{{MemberMetrics: true, DurationBuckets: true}, {Granularity: collector.Group}}
	for _, opts := range snaps {
		opts.Now = func() time.Time { return t0 }
		assertReservedLabels(t, testkit.Collect(t, collector.New(goldenStore(t, t0), opts)))
		assertReservedLabels(t, testkit.Collect(t, collector.New(replicaStore(t), opts)))
	}
}

func assertReservedLabels(t *testing.T, s testkit.Series) {
	t.Helper()
	for name, labels := range s.LabelValues() {
		for l := range labels {
			if !slices.Contains(config.ReservedLabels, l) {
				t.Errorf("%s has label %q, which config.ReservedLabels does not list: KRE_CONST_LABELS could clash with it", name, l)
			}
		}
	}
}
