// Package exposition writes metrics straight into the Prometheus text
// format (0.0.4) or OpenMetrics (1.0.0), without building client_golang
// metric objects: rendering a snapshot of hundreds of thousands of series
// is then a matter of appending bytes.
//
// Rules:
//   - The caller writes each family once: Family, then its samples. It is
//     responsible for valid metric and label names (they are constants in
//     this project); label values and help texts are escaped here, and
//     label values that are not valid UTF-8 have their invalid bytes
//     replaced by U+FFFD, and are counted (RepairedLabelValues).
//   - Counters are named with their _total suffix; in OpenMetrics the
//     family's HELP and TYPE lines drop it, as the format requires.
//   - Floats are written as client_golang's encoders write them (shortest
//     form; OpenMetrics adds ".0" where there is neither "." nor "e", as its
//     canonical le values need); integers as integers. The text output
//     parses back (expfmt) to the families client_golang would gather.
//   - Only Text ends complete; OpenMetrics needs End, which writes # EOF.
package exposition

import (
	"math"
	"strconv"
	"strings"
	"sync/atomic"
	"unicode/utf8"
)

// Format is an exposition format.
type Format int

const (
	Text        Format = iota // text/plain; version=0.0.4
	OpenMetrics               // application/openmetrics-text; version=1.0.0
)

// ContentType is the HTTP Content-Type of f.
func (f Format) ContentType() string {
	if f == OpenMetrics {
		return "application/openmetrics-text; version=1.0.0; charset=utf-8"
	}
	return "text/plain; version=0.0.4; charset=utf-8"
}

// Type is a metric family's type.
type Type int

const (
	Gauge Type = iota
	Counter
	Histogram
)

// Writer appends an exposition to a byte slice.
type Writer struct {
	format Format
	b      []byte
}

// NewWriter returns a Writer for f; size is a capacity hint in bytes.
func NewWriter(f Format, size int) *Writer {
	return &Writer{format: f, b: make([]byte, 0, size)}
}

// Bytes returns what was written; the Writer must not be used after.
func (w *Writer) Bytes() []byte { return w.b }

// Len returns how many bytes were written.
func (w *Writer) Len() int { return len(w.b) }

// End writes OpenMetrics' closing "# EOF"; for Text it does nothing.
func (w *Writer) End() {
	if w.format == OpenMetrics {
		w.b = append(w.b, "# EOF\n"...)
	}
}

// Family writes a family's HELP and TYPE lines.
func (w *Writer) Family(name, help string, t Type) {
	meta := name
	if w.format == OpenMetrics && t == Counter {
		meta = strings.TrimSuffix(name, "_total")
	}
	w.b = append(w.b, "# HELP "...)
	w.b = append(w.b, meta...)
	w.b = append(w.b, ' ')
	w.b = appendEscaped(w.b, help, w.format == OpenMetrics)
	w.b = append(w.b, "\n# TYPE "...)
	w.b = append(w.b, meta...)
	switch t {
	case Counter:
		w.b = append(w.b, " counter\n"...)
	case Histogram:
		w.b = append(w.b, " histogram\n"...)
	default:
		w.b = append(w.b, " gauge\n"...)
	}
}

// Sample writes one sample; labels are name, value pairs.
func (w *Writer) Sample(name string, v float64, labels ...string) {
	w.b = append(w.b, name...)
	w.labels(labels, "", "")
	w.b = append(w.b, ' ')
	w.b = w.appendFloat(w.b, v)
	w.b = append(w.b, '\n')
}

// Int writes one sample with an integer value.
func (w *Writer) Int(name string, v int64, labels ...string) {
	w.b = append(w.b, name...)
	w.labels(labels, "", "")
	w.b = append(w.b, ' ')
	w.b = strconv.AppendInt(w.b, v, 10)
	w.b = append(w.b, '\n')
}

// HistogramSamples writes a histogram's buckets (cumulative counts for
// each upper bound, then +Inf), sum and count.
func (w *Writer) HistogramSamples(name string, bounds []float64, cumulative []uint64, sum float64, count uint64, labels ...string) {
	for i, ub := range bounds {
		w.bucket(name, w.appendFloat(nil, ub), cumulative[i], labels)
	}
	w.bucket(name, []byte("+Inf"), count, labels)
	w.b = append(w.b, name...)
	w.b = append(w.b, "_sum"...)
	w.labels(labels, "", "")
	w.b = append(w.b, ' ')
	w.b = w.appendFloat(w.b, sum)
	w.b = append(w.b, '\n')
	w.b = append(w.b, name...)
	w.b = append(w.b, "_count"...)
	w.labels(labels, "", "")
	w.b = append(w.b, ' ')
	w.b = w.appendUint(w.b, count)
	w.b = append(w.b, '\n')
}

func (w *Writer) bucket(name string, le []byte, n uint64, labels []string) {
	w.b = append(w.b, name...)
	w.b = append(w.b, "_bucket"...)
	w.labels(labels, "le", string(le))
	w.b = append(w.b, ' ')
	w.b = w.appendUint(w.b, n)
	w.b = append(w.b, '\n')
}

// labels writes {a="x",b="y"} for the pairs and an optional extra pair
// last; nothing when there are none.
func (w *Writer) labels(pairs []string, extraName, extraValue string) {
	if len(pairs) == 0 && extraName == "" {
		return
	}
	w.b = append(w.b, '{')
	for i := 0; i+1 < len(pairs); i += 2 {
		if i > 0 {
			w.b = append(w.b, ',')
		}
		w.b = append(w.b, pairs[i]...)
		w.b = append(w.b, `="`...)
		w.b = appendLabelValue(w.b, pairs[i+1])
		w.b = append(w.b, '"')
	}
	if extraName != "" {
		if len(pairs) > 0 {
			w.b = append(w.b, ',')
		}
		w.b = append(w.b, extraName...)
		w.b = append(w.b, `="`...)
		w.b = append(w.b, extraValue...)
		w.b = append(w.b, '"')
	}
	w.b = append(w.b, '}')
}

func (w *Writer) appendUint(b []byte, u uint64) []byte { return strconv.AppendUint(b, u, 10) }

// appendFloat writes f as expfmt does: shortest representation, with
// OpenMetrics adding ".0" to a number that has neither "." nor "e".
func (w *Writer) appendFloat(b []byte, f float64) []byte {
	switch {
	case math.IsNaN(f):
		return append(b, "NaN"...)
	case math.IsInf(f, 1):
		return append(b, "+Inf"...)
	case math.IsInf(f, -1):
		return append(b, "-Inf"...)
	}
	start := len(b)
	b = strconv.AppendFloat(b, f, 'g', -1, 64)
	if w.format == OpenMetrics && !strings.ContainsAny(string(b[start:]), "e.") {
		b = append(b, ".0"...)
	}
	return b
}

// appendEscaped escapes a HELP text: backslash and newline, and in
// OpenMetrics also the double quote.
func appendEscaped(b []byte, s string, quote bool) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			b = append(b, `\\`...)
		case c == '\n':
			b = append(b, `\n`...)
		case c == '"' && quote:
			b = append(b, `\"`...)
		default:
			b = append(b, c)
		}
	}
	return b
}

// repaired counts label values written with invalid UTF-8 replaced, over
// every Writer of the process.
var repaired atomic.Uint64

// RepairedLabelValues is how many label values, since the process started,
// had bytes that are not UTF-8 replaced by U+FFFD as they were written. A
// value is counted each time it is written: the web handler renders each
// snapshot once per format asked for, so one bad group name counts once
// per snapshot and format rendered, not once per scrape. Any increase
// means some group, topic, client ID or host is not valid UTF-8.
func RepairedLabelValues() uint64 { return repaired.Load() }

// appendLabelValue escapes a label value (backslash, double quote,
// newline) and replaces bytes that are not UTF-8.
func appendLabelValue(b []byte, s string) []byte {
	if !utf8.ValidString(s) {
		repaired.Add(1)
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			b = append(b, `\\`...)
		case '"':
			b = append(b, `\"`...)
		case '\n':
			b = append(b, `\n`...)
		default:
			b = append(b, c)
		}
	}
	return b
}
