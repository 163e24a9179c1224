package e2e

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/testkit"
)

// timeScale divides every `for:` and every range window of the shipped
// rules for the end-to-end test, so that 15 minutes of storm become 30
// seconds. Thresholds are untouched: the storm alert's threshold is a rate,
// which does not depend on the window.
const timeScale = 30

var rangeWindow = regexp.MustCompile(`\[(\d+(?:ms|s|m|h|d|w|y))\]`)

// shortenRule rewrites one rule's durations by timeScale.
func shortenRule(r rule) (rule, error) {
	var err error
	scale := func(s string) string {
		d, perr := promDuration(s)
		if perr != nil {
			err = perr
			return s
		}
		return formatPromDuration(max(d/timeScale, time.Second))
	}
	r.Expr = rangeWindow.ReplaceAllStringFunc(r.Expr, func(m string) string {
		return "[" + scale(m[1:len(m)-1]) + "]"
	})
	if r.For != "" {
		r.For = scale(r.For)
	}
	return r, err
}

func TestShortenRule(t *testing.T) {
	got, err := shortenRule(rule{Expr: `deriv(x[15m]) > 0 and rate(y[1h]) > 3600`, For: "15m"})
	if err != nil {
		t.Fatal(err)
	}
	if got.Expr != `deriv(x[30s]) > 0 and rate(y[120s]) > 3600` || got.For != "30s" {
		t.Errorf("got %+v", got)
	}
}

// writeShortRules writes the shipped rule files, shortened, to dir.
func writeShortRules(t testing.TB, dir string) []string {
	t.Helper()
	var paths []string
	for _, f := range ruleFiles {
		rf := loadRuleFile(t, repoPath(t, f))
		for gi := range rf.Groups {
			for ri, r := range rf.Groups[gi].Rules {
				short, err := shortenRule(r)
				if err != nil {
					t.Fatalf("%s: %v", f, err)
				}
				rf.Groups[gi].Rules[ri] = short
			}
		}
		b, err := yaml.Marshal(rf)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.Base(f))
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	return paths
}

// writePrometheusConfig copies deploy/prometheus.yml with its targets
// pointed at the local processes, the short rules, and 1s intervals.
func writePrometheusConfig(t testing.TB, dir string, rules []string, promAddr, amAddr, exporterAddr string) string {
	t.Helper()
	var cfg map[string]any
	loadYAML(t, repoPath(t, "deploy", "prometheus.yml"), &cfg)
	cfg["global"] = map[string]any{"scrape_interval": "1s", "evaluation_interval": "1s"}
	cfg["rule_files"] = rules
	cfg["alerting"] = map[string]any{"alertmanagers": []any{map[string]any{"static_configs": []any{map[string]any{"targets": []string{amAddr}}}}}}
	local := map[string]string{"kafka-rebalance-exporter": exporterAddr, "prometheus": promAddr}
	scrapes, _ := cfg["scrape_configs"].([]any)
	for _, s := range scrapes {
		sc := s.(map[string]any)
		job := fmt.Sprint(sc["job_name"])
		addr, ok := local[job]
		if !ok {
			t.Fatalf("deploy/prometheus.yml job %s: the end-to-end test does not know what to scrape for it", job)
		}
		sc["static_configs"] = []any{map[string]any{"targets": []string{addr}}}
		sc["scrape_interval"] = "1s"
	}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// promQuery runs a query as Grafana does and counts the series it returns.
func promQuery(base, expr string, instant bool) (int, error) {
	series, err := promSeries(base, expr, instant)
	return len(series), err
}

// promSeriesLabel lists the values of label over the series matching sel,
// as Grafana's label_values() does.
func promSeriesLabel(base, sel, label string) (map[string]bool, error) {
	now := time.Now()
	v := url.Values{"match[]": {sel}, "start": {strconv.FormatInt(now.Add(-3*time.Minute).Unix(), 10)}, "end": {strconv.FormatInt(now.Unix(), 10)}}
	body, err := testkit.HTTPGet(base + "/api/v1/series?" + v.Encode())
	if err != nil {
		return nil, err
	}
	var r struct {
		Status string              `json:"status"`
		Data   []map[string]string `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, s := range r.Data {
		if v, ok := s[label]; ok {
			out[v] = true
		}
	}
	return out, nil
}

type amAlert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	Status      struct {
		State string `json:"state"`
	} `json:"status"`
}

// TestEndToEnd runs the exporter's demo with a continuous rebalance storm,
// a real Prometheus loading the shipped rules (time-shortened) from a copy
// of deploy/prometheus.yml, and a real Alertmanager with
// deploy/alertmanager.yml. The storm alert must reach Alertmanager, and
// every dashboard query must return data.
func TestEndToEnd(t *testing.T) {
	promBin := tool(t, "prometheus")
	amBin := tool(t, "prometheus-alertmanager", "alertmanager")
	promtool := tool(t, "promtool")
	start := time.Now()

	exporterAddr, exporter := liveExporter(t)
	dir := t.TempDir()
	promAddr, amAddr := testkit.FreeAddr(t), testkit.FreeAddr(t)
	rules := writeShortRules(t, dir)
	promCfg := writePrometheusConfig(t, dir, rules, promAddr, amAddr, exporterAddr)
	if out, err := run(t, dir, nil, promtool, "check", "config", promCfg); err != nil {
		t.Fatalf("promtool check config (derived from deploy/prometheus.yml): %v\n%s", err, out)
	}

	am := testkit.StartT(t, "alertmanager", dir, nil, amBin,
		"--config.file="+repoPath(t, "deploy", "alertmanager.yml"),
		"--storage.path="+filepath.Join(dir, "alertmanager"),
		"--web.listen-address="+amAddr,
		"--cluster.listen-address=")
	prom := testkit.StartT(t, "prometheus", dir, nil, promBin,
		"--config.file="+promCfg,
		"--storage.tsdb.path="+filepath.Join(dir, "prometheus"),
		"--web.listen-address="+promAddr,
		"--rules.alert.resend-delay=1s")
	amBase, promBase := "http://"+amAddr, "http://"+promAddr
	testkit.WaitHTTP(t, am, amBase+"/-/ready", 30*time.Second)
	testkit.WaitHTTP(t, prom, promBase+"/-/ready", 30*time.Second)

	// alive gives up on cond as soon as one of the three programs exits.
	alive := func(cond func() error) func() error {
		return exporter.Alive(prom.Alive(am.Alive(cond)))
	}

	testkit.Eventually(t, 30*time.Second, 500*time.Millisecond, "Prometheus scraping the exporter", alive(func() error {
		n, err := promQuery(promBase, `up{job="kafka-rebalance-exporter"} == 1`, true)
		if err == nil && n == 0 {
			err = fmt.Errorf("target not up yet")
		}
		return err
	}))

	t.Run("rebalance storm alert reaches alertmanager", func(t *testing.T) {
		var storm amAlert
		testkit.Eventually(t, 150*time.Second, time.Second, "KafkaConsumerGroupRebalanceStorm in Alertmanager", alive(func() error {
			body, err := testkit.HTTPGet(amBase + "/api/v2/alerts")
			if err != nil {
				return err
			}
			var alerts []amAlert
			if err := json.Unmarshal(body, &alerts); err != nil {
				return err
			}
			var names []string
			for _, a := range alerts {
				if a.Labels["alertname"] == "KafkaConsumerGroupRebalanceStorm" {
					storm = a
					return nil
				}
				names = append(names, a.Labels["alertname"])
			}
			return fmt.Errorf("alertmanager has %v", names)
		}))
		t.Logf("storm alert in Alertmanager %s after the test started: %v", time.Since(start).Round(time.Second), storm.Labels)
		if !strings.HasPrefix(storm.Labels["consumergroup"], "demo-churn-") {
			t.Errorf("storm alert for %q, want a demo churn group", storm.Labels["consumergroup"])
		}
		if storm.Labels["severity"] != "critical" || storm.Labels["job"] != "kafka-rebalance-exporter" {
			t.Errorf("storm alert labels %v", storm.Labels)
		}
		if d := storm.Annotations["description"]; !strings.Contains(d, storm.Labels["consumergroup"]) || !strings.Contains(d, "times per hour") {
			t.Errorf("storm alert description not rendered: %q", d)
		}
	})

	t.Run("every dashboard query returns data", func(t *testing.T) {
		vars := map[string]string{
			// A regex value inside a PromQL string: dots may stay unescaped.
			"job": "kafka-rebalance-exporter", "instance": exporterAddr,
			"consumergroup": "demo-.*", "topic": ".*",
			"__rate_interval": "20s", "__interval": "10s", "__range": "3m",
		}
		type pending struct {
			q    dashQuery
			expr string
		}
		var todo []pending
		for _, q := range dashboardQueries(t) {
			expr, err := substitute(q.Expr, vars)
			if err != nil {
				t.Fatalf("%s: %v", q.Where, err)
			}
			todo = append(todo, pending{q, expr})
		}
		testkit.Eventually(t, 60*time.Second, 2*time.Second, "data for every dashboard query", alive(func() error {
			var empty []pending
			var msgs []string
			for _, p := range todo {
				var err error
				if p.q.Label != "" {
					var values map[string]bool
					values, err = promSeriesLabel(promBase, p.expr, p.q.Label)
					if err == nil && len(values) == 0 {
						err = fmt.Errorf("no %s values", p.q.Label)
					}
				} else {
					var n int
					n, err = promQuery(promBase, p.expr, p.q.Instant)
					if err == nil && n == 0 {
						err = fmt.Errorf("no data")
					}
				}
				if err != nil {
					empty = append(empty, p)
					msgs = append(msgs, fmt.Sprintf("%s: %v\n    %s", p.q.Where, err, p.expr))
				}
			}
			todo = empty
			if len(todo) > 0 {
				return fmt.Errorf("%d queries without data:\n  %s", len(todo), strings.Join(msgs, "\n  "))
			}
			return nil
		}))
	})

	t.Run("consumergroup variable lists the demo groups", func(t *testing.T) {
		values, err := promSeriesLabel(promBase, fmt.Sprintf(`kafka_consumergroup_members{job="kafka-rebalance-exporter", instance=%q}`, exporterAddr), "consumergroup")
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range []string{"demo-fast", "demo-slow", "demo-churn-coop"} {
			if !values[g] {
				t.Errorf("group %s missing from %v", g, slices.Sorted(maps.Keys(values)))
			}
		}
	})
}
