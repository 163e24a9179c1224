package collector_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

// lintExceptions are problems kept on purpose. kafka_consumergroup_lag_sum
// and kafka_consumergroup_current_offset_sum are kafka_exporter's names;
// renaming them would break every dashboard and alert its users bring,
// which is the reason the names exist here.
var lintExceptions = map[promlint.Problem]bool{
	{Metric: "kafka_consumergroup_lag_sum", Text: `non-histogram and non-summary metrics should not have "_sum" suffix`}:            true,
	{Metric: "kafka_consumergroup_current_offset_sum", Text: `non-histogram and non-summary metrics should not have "_sum" suffix`}: true,
}

func assertLintClean(t *testing.T, c prometheus.Collector) {
	t.Helper()
	probs, err := testutil.CollectAndLint(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range probs {
		if !lintExceptions[p] {
			t.Errorf("lint: %s: %s", p.Metric, p.Text)
		}
	}
}
