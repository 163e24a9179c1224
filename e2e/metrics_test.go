package e2e

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/testkit"
)

// exposition is what one scrape of /metrics held: for every series name,
// every label name with the values seen. Histograms and summaries appear
// under their real series names (_bucket, _sum, _count).
type exposition map[string]map[string]map[string]bool

// prometheusOwnSeries are made by Prometheus, not scraped.
var prometheusOwnSeries = map[string][]string{
	"up": nil, "scrape_duration_seconds": nil, "scrape_samples_scraped": nil,
	"scrape_samples_post_metric_relabeling": nil, "scrape_series_added": nil,
	"ALERTS": {"alertname", "alertstate", "severity"}, "ALERTS_FOR_STATE": {"alertname", "severity"},
}

// targetLabels are attached by Prometheus to every scraped series.
var targetLabels = map[string]bool{"job": true, "instance": true}

// usedQuery is one expression of the shipped rules and dashboards.
type usedQuery struct {
	where string
	expr  string
	label string // label_values variables
}

func shippedQueries(t testing.TB) []usedQuery {
	var out []usedQuery
	for _, r := range allRules(t) {
		name := r.Record + r.Alert
		out = append(out, usedQuery{where: "rule " + name, expr: r.Expr})
	}
	for _, q := range dashboardQueries(t) {
		out = append(out, usedQuery{where: q.Where, expr: q.Expr, label: q.Label})
	}
	return out
}

// recordedLabels maps each recording rule to the labels its output keeps
// (the "by" list of its outer aggregation).
func recordedLabels(t testing.TB) map[string][]string {
	out := map[string][]string{}
	by := regexp.MustCompile(`^\s*\w+\s+by\s*\(([^)]*)\)`)
	for _, r := range allRules(t) {
		if r.Record == "" {
			continue
		}
		m := by.FindStringSubmatch(r.Expr)
		if m == nil {
			t.Fatalf("recording rule %s: the checks here expect `agg by (labels) (...)`", r.Record)
		}
		for _, l := range strings.Split(m[1], ",") {
			out[r.Record] = append(out[r.Record], strings.TrimSpace(l))
		}
	}
	return out
}

// plainAlternation matches regex values that are just a|b|c of literals.
var plainAlternation = regexp.MustCompile(`^[A-Za-z0-9_.:-]+(\|[A-Za-z0-9_.:-]+)*$`)

// checkNames compares every selector of the shipped rules and dashboards
// with a scrape. It returns one problem per missing metric, label or label
// value, with where it is used.
func checkNames(t testing.TB, scraped exposition) []string {
	recorded := recordedLabels(t)
	var problems []string
	for _, q := range shippedQueries(t) {
		sels, err := selectorsOf(q.expr)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", q.where, err))
			continue
		}
		for _, s := range sels {
			var known map[string]map[string]bool // label -> values; nil values = any
			if labels, ok := scraped[s.Metric]; ok {
				known = labels
			} else if labels, ok := recorded[s.Metric]; ok {
				known = anyValues(labels)
			} else if labels, ok := prometheusOwnSeries[s.Metric]; ok {
				known = anyValues(labels)
			} else {
				problems = append(problems, fmt.Sprintf("metric %s is not exported (used by %s)", s.Metric, q.where))
				continue
			}
			for _, m := range s.Matchers {
				if targetLabels[m.Name] || m.Name == "__name__" {
					continue
				}
				values, ok := known[m.Name]
				if !ok {
					problems = append(problems, fmt.Sprintf("metric %s has no label %s (used by %s)", s.Metric, m.Name, q.where))
					continue
				}
				if values == nil || strings.Contains(m.Value, "$") {
					continue
				}
				var want []string
				switch {
				case m.Op == "=":
					want = []string{m.Value}
				case m.Op == "=~" && plainAlternation.MatchString(m.Value):
					want = strings.Split(m.Value, "|")
				}
				for _, v := range want {
					if !values[v] {
						problems = append(problems, fmt.Sprintf("metric %s has no series with %s=%q; it has %v (used by %s)", s.Metric, m.Name, v, slices.Sorted(maps.Keys(values)), q.where))
					}
				}
			}
			if q.label != "" && !targetLabels[q.label] {
				if _, ok := known[q.label]; !ok {
					problems = append(problems, fmt.Sprintf("metric %s has no label %s (used by %s)", s.Metric, q.label, q.where))
				}
			}
		}
	}
	slices.Sort(problems)
	return slices.Compact(problems)
}

func anyValues(labels []string) map[string]map[string]bool {
	out := map[string]map[string]bool{}
	for _, l := range labels {
		out[l] = nil
	}
	return out
}

// TestMetricNamesAreExported checks every metric, label and label value
// that the alerts, recording rules and dashboards select against a live
// scrape of `exporter -demo`. Some series appear only after the first
// rebalance, so it scrapes until everything is there or the deadline
// passes, and then names exactly what is missing.
func TestMetricNamesAreExported(t *testing.T) {
	addr, p := liveExporter(t)
	var problems []string
	err := testkit.Poll(90*time.Second, time.Second, p.Alive(func() error {
		scraped, err := testkit.Scrape("http://" + addr + "/metrics")
		if err != nil {
			return fmt.Errorf("%w: %v", testkit.ErrStop, err)
		}
		if problems = checkNames(t, scraped.LabelValues()); len(problems) > 0 {
			return errors.New("names missing")
		}
		return nil
	}))
	switch {
	case errors.Is(err, testkit.ErrStop):
		t.Fatal(err)
	case err != nil:
		t.Errorf("the rules and dashboards use what the exporter does not export:\n  %s", strings.Join(problems, "\n  "))
	}
}
