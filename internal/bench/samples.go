package bench

import (
	"bufio"
	"bytes"
	"io"
	"math"
	"strconv"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Sample is one line of an exposition.
type Sample struct {
	Name   string
	Labels string // the text between the braces, unparsed
	Value  float64
}

// Label returns the value of label name, or "" without it.
func (s Sample) Label(name string) string {
	rest := s.Labels
	for rest != "" {
		eq := strings.IndexByte(rest, '=')
		if eq < 0 || eq+1 >= len(rest) || rest[eq+1] != '"' {
			return ""
		}
		key := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(rest[:eq]), ","))
		val, n := unquote(rest[eq+1:])
		if key == name {
			return val
		}
		rest = rest[eq+1+n:]
	}
	return ""
}

// unquote reads a quoted label value at the start of s and returns it and
// how many bytes it took.
func unquote(s string) (string, int) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			if i+1 < len(s) {
				i++
				switch s[i] {
				case 'n':
					b.WriteByte('\n')
				default:
					b.WriteByte(s[i])
				}
			}
		case '"':
			return b.String(), i + 1
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String(), len(s)
}

// ParseSample reads one exposition line (text or OpenMetrics); ok is false
// for comments, blank lines and lines it cannot read.
func ParseSample(line []byte) (Sample, bool) {
	line = bytes.TrimSpace(line)
	if len(line) == 0 || line[0] == '#' {
		return Sample{}, false
	}
	var s Sample
	i := bytes.IndexAny(line, "{ ")
	if i < 0 {
		return Sample{}, false
	}
	s.Name = string(line[:i])
	rest := line[i:]
	if rest[0] == '{' {
		end, inQuote := -1, false
		for j := 1; j < len(rest) && end < 0; j++ {
			switch c := rest[j]; {
			case c == '\\' && inQuote:
				j++
			case c == '"':
				inQuote = !inQuote
			case c == '}' && !inQuote:
				end = j
			}
		}
		if end < 0 {
			return Sample{}, false
		}
		s.Labels = string(rest[1:end])
		rest = rest[end+1:]
	}
	f := bytes.Fields(rest)
	if len(f) == 0 {
		return Sample{}, false
	}
	v, err := strconv.ParseFloat(string(f[0]), 64)
	if err != nil {
		return Sample{}, false
	}
	s.Value = v
	return s, true
}

// ScanSamples calls fn for every sample line of r.
func ScanSamples(r io.Reader, fn func(Sample)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		if s, ok := ParseSample(sc.Bytes()); ok {
			fn(s)
		}
	}
	return sc.Err()
}

// Series counts the series of a text-format exposition, parsed with
// expfmt: one per sample of counters, gauges and untyped metrics; buckets
// (with +Inf), _sum and _count of histograms; quantiles, _sum and _count
// of summaries — what Prometheus stores per scrape.
type Series struct {
	Total    int
	ByFamily map[string]int
	Families int
}

// CountSeries parses r in the Prometheus text format.
func CountSeries(r io.Reader) (Series, map[string]*dto.MetricFamily, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(r)
	if err != nil {
		return Series{}, nil, err
	}
	out := Series{ByFamily: map[string]int{}, Families: len(mfs)}
	for name, mf := range mfs {
		n := 0
		for _, m := range mf.GetMetric() {
			switch {
			case m.GetHistogram() != nil:
				h := m.GetHistogram()
				n += len(h.GetBucket()) + 2
				if b := h.GetBucket(); len(b) == 0 || !math.IsInf(b[len(b)-1].GetUpperBound(), 1) {
					n++
				}
			case m.GetSummary() != nil:
				n += len(m.GetSummary().GetQuantile()) + 2
			default:
				n++
			}
		}
		out.ByFamily[name] = n
		out.Total += n
	}
	return out, mfs, nil
}

// Value is the value of the one metric of family name whose labels match
// want (nil: any), or NaN.
func Value(mfs map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	mf := mfs[name]
	if mf == nil {
		return math.NaN()
	}
next:
	for _, m := range mf.GetMetric() {
		for k, v := range want {
			found := false
			for _, lp := range m.GetLabel() {
				if lp.GetName() == k {
					found = lp.GetValue() == v
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.GetGauge() != nil:
			return m.GetGauge().GetValue()
		case m.GetCounter() != nil:
			return m.GetCounter().GetValue()
		case m.GetUntyped() != nil:
			return m.GetUntyped().GetValue()
		}
	}
	return math.NaN()
}

// Histogram is the sum and count of one histogram metric of family name
// whose labels match want.
func Histogram(mfs map[string]*dto.MetricFamily, name string, want map[string]string) (sum float64, count uint64, ok bool) {
	mf := mfs[name]
	if mf == nil {
		return 0, 0, false
	}
next:
	for _, m := range mf.GetMetric() {
		for k, v := range want {
			found := false
			for _, lp := range m.GetLabel() {
				if lp.GetName() == k {
					found = lp.GetValue() == v
				}
			}
			if !found {
				continue next
			}
		}
		if h := m.GetHistogram(); h != nil {
			return h.GetSampleSum(), h.GetSampleCount(), true
		}
	}
	return 0, 0, false
}
