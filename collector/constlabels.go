package collector

import (
	"maps"
	"slices"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/exposition"
)

// output is what a renderer writes to: the exposition writer, with the
// constant labels (Options.ConstLabels, KRE_CONST_LABELS) merged into every
// series' labels in name order, as a registry would order them. Without
// constant labels it passes the labels through untouched.
type output struct {
	*exposition.Writer
	consts  []string // name, value pairs, sorted by name
	scratch []string // the merged labels of the series being written
}

func newOutput(w *exposition.Writer, consts map[string]string) *output {
	o := &output{Writer: w}
	for _, name := range slices.Sorted(maps.Keys(consts)) {
		o.consts = append(o.consts, name, consts[name])
	}
	return o
}

// with returns labels (name, value pairs sorted by name) with the constant
// labels merged in. The result is only valid until the next call.
func (o *output) with(labels []string) []string {
	if len(o.consts) == 0 {
		return labels
	}
	out := o.scratch[:0]
	i, j := 0, 0
	for i+1 < len(labels) || j < len(o.consts) {
		if j == len(o.consts) || (i+1 < len(labels) && labels[i] < o.consts[j]) {
			out = append(out, labels[i], labels[i+1])
			i += 2
		} else {
			out = append(out, o.consts[j], o.consts[j+1])
			j += 2
		}
	}
	o.scratch = out
	return out
}

// Sample writes one sample with the constant labels.
func (o *output) Sample(name string, v float64, labels ...string) {
	o.Writer.Sample(name, v, o.with(labels)...)
}

// Int writes one integer sample with the constant labels.
func (o *output) Int(name string, v int64, labels ...string) {
	o.Writer.Int(name, v, o.with(labels)...)
}

// HistogramSamples writes a histogram with the constant labels (le stays
// last, where the text format puts it).
func (o *output) HistogramSamples(name string, bounds []float64, cumulative []uint64, sum float64, count uint64, labels ...string) {
	o.Writer.HistogramSamples(name, bounds, cumulative, sum, count, o.with(labels)...)
}
