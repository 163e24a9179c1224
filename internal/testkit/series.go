package testkit

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Series maps each series of an exposition to its value. The key is the
// metric name followed by its labels in name order, as Prometheus writes
// them: name{a="x",b="y"}, or the bare name without labels. Histograms
// contribute the series Prometheus stores for them: name_bucket (with le,
// +Inf included), name_count and name_sum; summaries name (with quantile),
// name_count and name_sum.
type Series map[string]float64

// Key renders a series key from a name and label name/value pairs.
func Key(name string, labels ...string) string {
	if len(labels)%2 != 0 {
		panic("testkit.Key: labels must be name/value pairs")
	}
	pairs := make([]string, 0, len(labels)/2)
	for i := 0; i < len(labels); i += 2 {
		pairs = append(pairs, pair(labels[i], labels[i+1]))
	}
	return render(name, pairs)
}

func pair(name, value string) string { return fmt.Sprintf("%s=%q", name, value) }

func render(name string, pairs []string) string {
	if len(pairs) == 0 {
		return name
	}
	sort.Strings(pairs)
	return name + "{" + strings.Join(pairs, ",") + "}"
}

// SplitKey is the inverse of Key: the metric name and labels of a series
// key. ok is false for a string that Key cannot have rendered.
func SplitKey(key string) (name string, labels map[string]string, ok bool) {
	open := strings.IndexByte(key, '{')
	if open < 0 {
		return key, map[string]string{}, key != ""
	}
	name, rest := key[:open], key[open+1:]
	labels = map[string]string{}
	for first := true; ; first = false {
		if rest == "}" {
			return name, labels, !first
		}
		if !first {
			if !strings.HasPrefix(rest, ",") {
				return "", nil, false
			}
			rest = rest[1:]
		}
		eq := strings.IndexByte(rest, '=')
		if eq <= 0 {
			return "", nil, false
		}
		quoted, err := strconv.QuotedPrefix(rest[eq+1:])
		if err != nil {
			return "", nil, false
		}
		value, err := strconv.Unquote(quoted)
		if err != nil {
			return "", nil, false
		}
		labels[rest[:eq]] = value
		rest = rest[eq+1+len(quoted):]
	}
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

// Match returns the series named name (any name when name is "") whose
// labels include the given label name/value pairs; other labels may be
// there too.
func (s Series) Match(name string, labels ...string) Series {
	if len(labels)%2 != 0 {
		panic("testkit.Series.Match: labels must be name/value pairs")
	}
	from := s
	if name != "" {
		from = s.Family(name)
	}
	out := Series{}
	for k, v := range from {
		_, have, _ := SplitKey(k)
		all := true
		for i := 0; i < len(labels) && all; i += 2 {
			got, ok := have[labels[i]]
			all = ok && got == labels[i+1]
		}
		if all {
			out[k] = v
		}
	}
	return out
}

// Sum adds the values of the series Match selects; 0 when there is none.
func (s Series) Sum(name string, labels ...string) float64 {
	total := 0.0
	for _, v := range s.Match(name, labels...) {
		total += v
	}
	return total
}

// LabelValues returns, for every metric name of s, every label name with
// the values it takes. A name without labels maps to an empty map.
func (s Series) LabelValues() map[string]map[string]map[string]bool {
	out := map[string]map[string]map[string]bool{}
	for k := range s {
		name, labels, _ := SplitKey(k)
		if out[name] == nil {
			out[name] = map[string]map[string]bool{}
		}
		for l, v := range labels {
			if out[name][l] == nil {
				out[name][l] = map[string]bool{}
			}
			out[name][l][v] = true
		}
	}
	return out
}

// Collect gathers cs through a pedantic registry (which also checks them
// for consistency) and fails the test on any error.
func Collect(t testing.TB, cs ...prometheus.Collector) Series {
	t.Helper()
	s, err := Gather(register(t, cs))
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	return s
}

// Text gathers cs as Collect does and returns the text exposition that
// /metrics would serve for them.
func Text(t testing.TB, cs ...prometheus.Collector) string {
	t.Helper()
	mfs, err := register(t, cs).Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	var b bytes.Buffer
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
			t.Fatalf("render %s: %v", mf.GetName(), err)
		}
	}
	return b.String()
}

func register(t testing.TB, cs []prometheus.Collector) *prometheus.Registry {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			t.Fatalf("register: %v", err)
		}
	}
	return reg
}

// Gather reads every series of g.
func Gather(g prometheus.Gatherer) (Series, error) {
	mfs, err := g.Gather()
	if err != nil {
		return nil, err
	}
	return fromFamilies(mfs), nil
}

// Parse reads a text exposition, as /metrics serves it.
func Parse(r io.Reader) (Series, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, err
	}
	list := make([]*dto.MetricFamily, 0, len(mfs))
	for _, mf := range mfs {
		list = append(list, mf)
	}
	return fromFamilies(list), nil
}

// Scrape fetches url (a /metrics endpoint) and parses its exposition. A
// failed request, an answer other than 200 and an exposition that does not
// parse are errors.
func Scrape(url string) (Series, error) {
	body, err := HTTPGet(url)
	if err != nil {
		return nil, err
	}
	s, err := Parse(bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", url, err)
	}
	return s, nil
}

func fromFamilies(mfs []*dto.MetricFamily) Series {
	out := Series{}
	for _, mf := range mfs {
		add(out, mf)
	}
	return out
}

func add(out Series, mf *dto.MetricFamily) {
	name := mf.GetName()
	for _, m := range mf.GetMetric() {
		pairs := make([]string, 0, len(m.GetLabel())+1)
		for _, l := range m.GetLabel() {
			pairs = append(pairs, pair(l.GetName(), l.GetValue()))
		}
		with := func(label string, bound float64) []string {
			return append(pairs[:len(pairs):len(pairs)], pair(label, formatFloat(bound)))
		}
		switch {
		case m.GetHistogram() != nil:
			h := m.GetHistogram()
			inf := false
			for _, b := range h.GetBucket() {
				out[render(name+"_bucket", with(model.BucketLabel, b.GetUpperBound()))] = float64(b.GetCumulativeCount())
				inf = inf || math.IsInf(b.GetUpperBound(), +1)
			}
			if !inf {
				out[render(name+"_bucket", with(model.BucketLabel, math.Inf(+1)))] = float64(h.GetSampleCount())
			}
			out[render(name+"_count", pairs)] = float64(h.GetSampleCount())
			out[render(name+"_sum", pairs)] = h.GetSampleSum()
		case m.GetSummary() != nil:
			sm := m.GetSummary()
			for _, q := range sm.GetQuantile() {
				out[render(name, with(model.QuantileLabel, q.GetQuantile()))] = q.GetValue()
			}
			out[render(name+"_count", pairs)] = float64(sm.GetSampleCount())
			out[render(name+"_sum", pairs)] = sm.GetSampleSum()
		case m.GetCounter() != nil:
			out[render(name, pairs)] = m.GetCounter().GetValue()
		case m.GetGauge() != nil:
			out[render(name, pairs)] = m.GetGauge().GetValue()
		case m.GetUntyped() != nil:
			out[render(name, pairs)] = m.GetUntyped().GetValue()
		}
	}
}

// formatFloat writes a bucket bound or quantile as the text format does.
func formatFloat(f float64) string {
	switch {
	case math.IsInf(f, +1):
		return "+Inf"
	case math.IsInf(f, -1):
		return "-Inf"
	case math.IsNaN(f):
		return "NaN"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}
