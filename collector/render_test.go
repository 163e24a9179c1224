package collector_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/collector"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/exposition"
)

// Render writes each family once, in name order, in both formats; the
// OpenMetrics rendering differs from the text one only where the format
// says so.
func TestRenderFamiliesOnceInNameOrder(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	snap := goldenStore(t, t0).Current()
	for _, f := range []exposition.Format{exposition.Text, exposition.OpenMetrics} {
		w := exposition.NewWriter(f, 0)
		collector.Render(w, snap, collector.Options{MemberMetrics: true})
		w.End()
		var names []string
		for _, line := range strings.Split(string(w.Bytes()), "\n") {
			if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
				names = append(names, strings.Fields(rest)[0])
			}
		}
		if len(names) < 25 {
			t.Fatalf("format %d: only %d families", f, len(names))
		}
		if !slices.IsSorted(names) || len(slices.Compact(slices.Clone(names))) != len(names) {
			t.Errorf("format %d: families not once each in name order: %v", f, names)
		}
		if f == exposition.OpenMetrics && !strings.HasSuffix(string(w.Bytes()), "# EOF\n") {
			t.Error("OpenMetrics rendering does not end with # EOF")
		}
	}
}
