package kafka_test

import (
	"bytes"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/collector"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/exposition"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/kafka"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/kafkatest"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/testkit"
)

// A group whose name is not UTF-8 (kfake, like brokers that pass bytes
// through, accepts it) is exported with its invalid bytes replaced, the
// exposition still parses, and every repaired value is counted in
// invalid_utf8_labels_total: at each rendering, once per snapshot and
// format.
func TestInvalidUTF8GroupNameCounted(t *testing.T) {
	w := newFaultWorld(t, 2)
	var os kadm.Offsets
	os.AddOffset(faultTopic, 0, 3, -1)
	kafkatest.CommitOffsets(t, w.adm, "bad\xff\xfegroup", os)
	e := kafkatest.NewExporter(t, kafkatest.Config(t, w.addrs, nil))
	e.Poll(t)
	counted := func() float64 {
		v, _ := testkit.Collect(t, e.Poller.Metrics()).Get(kafka.SelfPrefix + "invalid_utf8_labels_total")
		return v
	}
	render := collector.SnapshotRenderer(collector.Options{})
	before := counted()
	text := render(e.Store.Current(), exposition.Text)
	afterText := counted()
	if afterText-before < 1 {
		t.Fatalf("a rendering with a non-UTF-8 group name counted %v repaired values", afterText-before)
	}
	if !bytes.Contains(text, []byte("consumergroup=\"bad\uFFFDgroup\"")) {
		t.Errorf("the bad group is not served with its invalid bytes replaced by one U+FFFD")
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	if _, err := parser.TextToMetricFamilies(bytes.NewReader(text)); err != nil {
		t.Fatalf("the exposition does not parse: %v", err)
	}
	_ = render(e.Store.Current(), exposition.OpenMetrics)
	if got, want := counted()-afterText, afterText-before; got != want {
		t.Errorf("the OpenMetrics rendering of the same snapshot counted %v, the text one %v", got, want)
	}
	t.Logf("one non-UTF-8 group name: %v label values repaired per rendering", afterText-before)
}
