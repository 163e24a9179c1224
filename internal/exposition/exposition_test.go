package exposition

import (
	"bytes"
	"math"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/proto"
)

var (
	descGauge = prometheus.NewDesc("test_offset", "Offset with \\ and\nnewline \"quoted\".", []string{"group", "partition"}, nil)
	descCount = prometheus.NewDesc("test_events_total", "Events.", []string{"group"}, nil)
	descHist  = prometheus.NewDesc("test_duration_seconds", "Durations.", []string{"group"}, nil)
	bounds    = []float64{0.25, 1, 30}
)

type reference struct{}

func (reference) Describe(ch chan<- *prometheus.Desc) {
	ch <- descGauge
	ch <- descCount
	ch <- descHist
}

func (reference) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(descGauge, prometheus.GaugeValue, 1234567, `a"b\c`+"\n", "0")
	ch <- prometheus.MustNewConstMetric(descGauge, prometheus.GaugeValue, 0.5, "plain", "10")
	ch <- prometheus.MustNewConstMetric(descCount, prometheus.CounterValue, 3, "plain")
	ch <- prometheus.MustNewConstHistogram(descHist, 4, 7.5, map[float64]uint64{0.25: 1, 1: 1, 30: 3}, "plain")
}

func written(f Format) []byte {
	w := NewWriter(f, 0)
	w.Family("test_duration_seconds", "Durations.", Histogram)
	w.HistogramSamples("test_duration_seconds", bounds, []uint64{1, 1, 3}, 7.5, 4, "group", "plain")
	w.Family("test_events_total", "Events.", Counter)
	w.Int("test_events_total", 3, "group", "plain")
	w.Family("test_offset", "Offset with \\ and\nnewline \"quoted\".", Gauge)
	w.Int("test_offset", 1234567, "group", `a"b\c`+"\n", "partition", "0")
	w.Sample("test_offset", 0.5, "group", "plain", "partition", "10")
	w.End()
	return w.Bytes()
}

func parse(t *testing.T, b []byte) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, b)
	}
	return mfs
}

// The text the Writer produces parses to exactly the families that
// client_golang gathers for the same metrics.
func TestTextMatchesClientGolang(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(reference{})
	want, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := parse(t, written(Text))
	if len(got) != len(want) {
		t.Fatalf("%d families, want %d", len(got), len(want))
	}
	for _, mf := range want {
		g := got[mf.GetName()]
		// The text format carries no created timestamps; client_golang's
		// const metrics have none either.
		if !proto.Equal(normalize(g), normalize(mf)) {
			t.Errorf("family %s:\n got %v\nwant %v", mf.GetName(), g, mf)
		}
	}
}

// normalize sorts a family's metrics by their label values, as the
// registry does, so that order does not matter, and drops the +Inf bucket
// that a gathered histogram leaves implicit.
func normalize(mf *dto.MetricFamily) *dto.MetricFamily {
	c := proto.Clone(mf).(*dto.MetricFamily)
	ms := c.GetMetric()
	for _, m := range ms {
		if h := m.GetHistogram(); h != nil {
			if n := len(h.Bucket); n > 0 && math.IsInf(h.Bucket[n-1].GetUpperBound(), 1) {
				h.Bucket = h.Bucket[:n-1]
			}
		}
	}
	for i := range ms {
		for j := i + 1; j < len(ms); j++ {
			if key(ms[j]) < key(ms[i]) {
				ms[i], ms[j] = ms[j], ms[i]
			}
		}
	}
	return c
}

func key(m *dto.Metric) string {
	var b strings.Builder
	for _, l := range m.GetLabel() {
		b.WriteString(l.GetName() + "=" + l.GetValue() + ",")
	}
	return b.String()
}

// OpenMetrics: counter metadata without _total, canonical le values,
// escaped quotes in HELP, and one closing # EOF; the lines are the ones
// expfmt's OpenMetrics encoder writes for the same families, up to the
// number formatting of integral values.
func TestOpenMetricsMatchesExpfmt(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(reference{})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var ref bytes.Buffer
	enc := expfmt.NewEncoder(&ref, expfmt.NewFormat(expfmt.TypeOpenMetrics))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
	}
	if err := enc.(expfmt.Closer).Close(); err != nil {
		t.Fatal(err)
	}
	got := string(written(OpenMetrics))
	norm := strings.NewReplacer(" 3.0\n", " 3\n", " 4.0\n", " 4\n", " 1.234567e+06\n", " 1234567\n", " 1.0\n", " 1\n")
	wantLines := strings.Split(norm.Replace(ref.String()), "\n")
	gotLines := strings.Split(norm.Replace(got), "\n")
	set := map[string]bool{}
	for _, l := range gotLines {
		set[l] = true
	}
	for _, l := range wantLines {
		if !set[l] {
			t.Errorf("expfmt writes %q, the Writer does not:\n%s", l, got)
		}
	}
	if len(gotLines) != len(wantLines) {
		t.Errorf("%d lines, expfmt %d:\n%s\n---\n%s", len(gotLines), len(wantLines), got, ref.String())
	}
	for _, must := range []string{"# TYPE test_events counter\n", `le="1.0"`, "# EOF\n"} {
		if !strings.Contains(got, must) {
			t.Errorf("OpenMetrics output lacks %q", must)
		}
	}
}

// Label values that are not UTF-8 are repaired, so one bad group name
// cannot break the whole exposition.
// Each repaired value is counted, valid ones (U+FFFD itself included) are
// not.
func TestInvalidUTF8LabelValuesAreReplaced(t *testing.T) {
	before := RepairedLabelValues()
	w := NewWriter(Text, 0)
	w.Family("test_offset", "h", Gauge)
	w.Int("test_offset", 1, "group", "bad\xff\xfename", "partition", "0")
	w.Int("test_offset", 2, "group", "already\uFFFDvalid", "partition", "\xc3")
	w.Int("test_offset", 3, "group", "fine", "partition", "1")
	mfs := parse(t, w.Bytes())
	if v := mfs["test_offset"].GetMetric()[0].GetLabel()[0].GetValue(); v != "bad\uFFFDname" {
		t.Fatalf("label value %q", v)
	}
	if got := RepairedLabelValues() - before; got != 2 {
		t.Fatalf("%d repaired label values counted, want 2 (one per invalid value)", got)
	}
	o := NewWriter(OpenMetrics, 0)
	o.Family("test_offset", "h", Gauge)
	o.Int("test_offset", 1, "group", "\x80", "partition", "0")
	if got := RepairedLabelValues() - before; got != 3 {
		t.Fatalf("%d repaired label values after an OpenMetrics rendering, want 3", got)
	}
}
