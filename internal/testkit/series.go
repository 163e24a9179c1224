package testkit

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Series maps each series of an exposition to its value. The key is the
// metric name followed by its labels in name order, as Prometheus writes
// them: name{a="x",b="y"}, or the bare name without labels. Histograms and
// summaries contribute name_count and name_sum series.
type Series map[string]float64

// Key renders a series key from a name and label name/value pairs.
func Key(name string, labels ...string) string {
	if len(labels)%2 != 0 {
		panic("testkit.Key: labels must be name/value pairs")
	}
	pairs := make([]string, 0, len(labels)/2)
	for i := 0; i < len(labels); i += 2 {
		pairs = append(pairs, fmt.Sprintf("%s=%q", labels[i], labels[i+1]))
	}
	return render(name, pairs)
}

func render(name string, pairs []string) string {
	if len(pairs) == 0 {
		return name
	}
	sort.Strings(pairs)
	return name + "{" + strings.Join(pairs, ",") + "}"
}

// Get returns one series' value.
func (s Series) Get(name string, labels ...string) (float64, bool) {
	v, ok := s[Key(name, labels...)]
	return v, ok
}

// Family returns the series of one metric name, keyed as in Series.
func (s Series) Family(name string) Series {
	out := Series{}
	for k, v := range s {
		if k == name || strings.HasPrefix(k, name+"{") {
			out[k] = v
		}
	}
	return out
}

// Collect gathers cs through a pedantic registry (which also checks them
// for consistency) and fails the test on any error.
func Collect(t testing.TB, cs ...prometheus.Collector) Series {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			t.Fatalf("register: %v", err)
		}
	}
	s, err := Gather(reg)
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	return s
}

// Gather reads every series of g.
func Gather(g prometheus.Gatherer) (Series, error) {
	mfs, err := g.Gather()
	if err != nil {
		return nil, err
	}
	out := Series{}
	for _, mf := range mfs {
		add(out, mf)
	}
	return out, nil
}

// Parse reads a text exposition, as /metrics serves it.
func Parse(r io.Reader) (Series, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, err
	}
	out := Series{}
	for _, mf := range mfs {
		add(out, mf)
	}
	return out, nil
}

func add(out Series, mf *dto.MetricFamily) {
	for _, m := range mf.GetMetric() {
		pairs := make([]string, 0, len(m.GetLabel()))
		for _, l := range m.GetLabel() {
			pairs = append(pairs, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
		}
		name := mf.GetName()
		switch {
		case m.GetHistogram() != nil:
			out[render(name+"_count", pairs)] = float64(m.GetHistogram().GetSampleCount())
			out[render(name+"_sum", pairs)] = m.GetHistogram().GetSampleSum()
		case m.GetSummary() != nil:
			out[render(name+"_count", pairs)] = float64(m.GetSummary().GetSampleCount())
			out[render(name+"_sum", pairs)] = m.GetSummary().GetSampleSum()
		case m.GetCounter() != nil:
			out[render(name, pairs)] = m.GetCounter().GetValue()
		case m.GetGauge() != nil:
			out[render(name, pairs)] = m.GetGauge().GetValue()
		case m.GetUntyped() != nil:
			out[render(name, pairs)] = m.GetUntyped().GetValue()
		}
	}
}
