package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

const runbookBase = "https://github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/blob/main/docs/runbook.md"

// ruleFiles are the rule files Prometheus loads, recording rules first.
var ruleFiles = []string{"alerts/recording-rules.yml", "alerts/alerts.yml"}

type ruleFile struct {
	Groups []ruleGroup `yaml:"groups"`
}

type ruleGroup struct {
	Name     string `yaml:"name"`
	Interval string `yaml:"interval,omitempty"`
	Rules    []rule `yaml:"rules"`
}

type rule struct {
	Record      string            `yaml:"record,omitempty"`
	Alert       string            `yaml:"alert,omitempty"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for,omitempty"`
	Labels      map[string]string `yaml:"labels,omitempty"`
	Annotations map[string]string `yaml:"annotations,omitempty"`
}

func loadRuleFile(t testing.TB, path string) ruleFile {
	t.Helper()
	b := readFile(t, path)
	var f ruleFile
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return f
}

// allRules returns every rule of the shipped rule files.
func allRules(t testing.TB) []rule {
	t.Helper()
	var out []rule
	for _, f := range ruleFiles {
		for _, g := range loadRuleFile(t, repoPath(t, f)).Groups {
			out = append(out, g.Rules...)
		}
	}
	return out
}

func alertRules(t testing.TB) []rule {
	var out []rule
	for _, r := range allRules(t) {
		if r.Alert != "" {
			out = append(out, r)
		}
	}
	return out
}

func TestPromtoolCheckRules(t *testing.T) {
	promtool := tool(t, "promtool")
	args := append([]string{"check", "rules"}, ruleFiles...)
	if out, err := run(t, repoRoot(t), nil, promtool, args...); err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
}

func TestPromtoolTestRules(t *testing.T) {
	promtool := tool(t, "promtool")
	tests, err := filepath.Glob(repoPath(t, "alerts", "tests", "*.test.yml"))
	if err != nil || len(tests) == 0 {
		t.Fatalf("no rule unit tests in alerts/tests: %v", err)
	}
	out, err := run(t, repoRoot(t), nil, promtool, append([]string{"test", "rules"}, tests...)...)
	if err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
	if strings.Contains(out, "FAILED") || !strings.Contains(out, "SUCCESS") {
		t.Fatalf("promtool test rules did not succeed:\n%s", out)
	}
}

// unitTestFile is the part of a promtool test file this test reads.
type unitTestFile struct {
	EvaluationInterval string `yaml:"evaluation_interval"`
	Tests              []struct {
		Name      string `yaml:"name"`
		AlertTest []struct {
			EvalTime  string `yaml:"eval_time"`
			Alertname string `yaml:"alertname"`
			ExpAlerts []any  `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

// TestEveryAlertHasUnitTests requires, for every alert, a case where it
// fires and a case where it stays quiet, and for alerts with `for:` the
// boundary: quiet one evaluation before a firing evaluation of the same
// test. promtool only runs what is written; this makes sure it is written.
func TestEveryAlertHasUnitTests(t *testing.T) {
	files, _ := filepath.Glob(repoPath(t, "alerts", "tests", "*.test.yml"))
	type coverage struct{ fires, quiet, boundary bool }
	cov := map[string]*coverage{}
	for _, r := range alertRules(t) {
		cov[r.Alert] = &coverage{}
	}
	for _, f := range files {
		b := readFile(t, f)
		var u unitTestFile
		if err := yaml.Unmarshal(b, &u); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		step := parsePromDuration(t, u.EvaluationInterval)
		for _, tc := range u.Tests {
			firingAt := map[string][]time.Duration{}
			quietAt := map[string]map[time.Duration]bool{}
			for _, a := range tc.AlertTest {
				c, ok := cov[a.Alertname]
				if !ok {
					t.Errorf("%s: test %q checks unknown alert %s", filepath.Base(f), tc.Name, a.Alertname)
					continue
				}
				at := parsePromDuration(t, a.EvalTime)
				if len(a.ExpAlerts) > 0 {
					c.fires = true
					firingAt[a.Alertname] = append(firingAt[a.Alertname], at)
				} else {
					c.quiet = true
					if quietAt[a.Alertname] == nil {
						quietAt[a.Alertname] = map[time.Duration]bool{}
					}
					quietAt[a.Alertname][at] = true
				}
			}
			for name, times := range firingAt {
				for _, at := range times {
					if quietAt[name][at-step] {
						cov[name].boundary = true
					}
				}
			}
		}
	}
	for _, r := range alertRules(t) {
		c := cov[r.Alert]
		if !c.fires {
			t.Errorf("%s: no unit test where it fires", r.Alert)
		}
		if !c.quiet {
			t.Errorf("%s: no unit test where it stays quiet", r.Alert)
		}
		if r.For != "" && r.For != "0s" && !c.boundary {
			t.Errorf("%s: no unit test of the for: %s boundary (quiet one evaluation before firing)", r.Alert, r.For)
		}
	}
}

var camelCase = regexp.MustCompile(`^Kafka[A-Z][A-Za-z0-9]+$`)

func TestAlertConventions(t *testing.T) {
	anchors := runbookAnchors(t)
	seen := map[string]bool{}
	for _, r := range alertRules(t) {
		if seen[r.Alert] {
			t.Errorf("%s: defined twice", r.Alert)
		}
		seen[r.Alert] = true
		if !camelCase.MatchString(r.Alert) {
			t.Errorf("%s: alert names are CamelCase and start with Kafka", r.Alert)
		}
		switch r.Labels["severity"] {
		case "critical", "warning", "info":
		default:
			t.Errorf("%s: severity label %q is not critical, warning or info", r.Alert, r.Labels["severity"])
		}
		if r.For == "" {
			t.Errorf("%s: no for: (a single bad scrape would page)", r.Alert)
		}
		summary, desc := r.Annotations["summary"], r.Annotations["description"]
		if summary == "" || strings.Contains(summary, "{{") {
			t.Errorf("%s: summary must be present and static (it groups notifications): %q", r.Alert, summary)
		}
		if !strings.Contains(desc, "{{") {
			t.Errorf("%s: description must be templated with the group or value: %q", r.Alert, desc)
		}
		want := runbookBase + "#" + strings.ToLower(r.Alert)
		if r.Annotations["runbook_url"] != want {
			t.Errorf("%s: runbook_url %q, want %q", r.Alert, r.Annotations["runbook_url"], want)
		}
		if !anchors[strings.ToLower(r.Alert)] {
			t.Errorf("%s: docs/runbook.md has no section %q", r.Alert, "## "+r.Alert)
		}
	}
}

// runbookAnchors returns the anchors GitHub generates for the runbook's
// headings.
func runbookAnchors(t testing.TB) map[string]bool {
	t.Helper()
	b := readFile(t, repoPath(t, "docs", "runbook.md"))
	anchors := map[string]bool{}
	punct := regexp.MustCompile(`[^a-z0-9 _-]`)
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "#") {
			continue
		}
		h := strings.ToLower(strings.TrimSpace(strings.TrimLeft(line, "#")))
		anchors[strings.ReplaceAll(punct.ReplaceAllString(h, ""), " ", "-")] = true
	}
	return anchors
}

// TestThresholdsDocumented holds the three places that state thresholds to
// the rules: the runbook's table (threshold quoted from the expression,
// severity, for) and the table in alerts.yml's header comment (severity,
// for).
func TestThresholdsDocumented(t *testing.T) {
	rules := map[string]rule{}
	for _, r := range alertRules(t) {
		rules[r.Alert] = r
	}

	runbook := readFile(t, repoPath(t, "docs", "runbook.md"))
	section := string(runbook)
	if i := strings.Index(section, "\n## Thresholds\n"); i >= 0 {
		section = section[i+1:]
		if j := strings.Index(section[3:], "\n## "); j >= 0 {
			section = section[:j+3]
		}
	} else {
		t.Fatal("docs/runbook.md has no ## Thresholds section")
	}
	row := regexp.MustCompile("^\\|\\s*(Kafka\\w+)\\s*\\|\\s*(\\w+)\\s*\\|\\s*`([^`]+)`\\s*\\|\\s*(\\w+)\\s*\\|$")
	inTable := map[string]bool{}
	quoted := map[string]string{}
	for _, line := range strings.Split(section, "\n") {
		m := row.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil {
			continue
		}
		// A | inside a table cell is written \|.
		name, sev, thr, forDur := m[1], m[2], strings.ReplaceAll(m[3], `\|`, "|"), m[4]
		inTable[name] = true
		quoted[name] = thr
		r, ok := rules[name]
		if !ok {
			t.Errorf("runbook thresholds: %s is not an alert in alerts/alerts.yml", name)
			continue
		}
		if sev != r.Labels["severity"] {
			t.Errorf("runbook thresholds: %s severity %s, alerts.yml says %s", name, sev, r.Labels["severity"])
		}
		if forDur != r.For {
			t.Errorf("runbook thresholds: %s for %s, alerts.yml says %s", name, forDur, r.For)
		}
		if !strings.Contains(normalizeSpace(r.Expr), normalizeSpace(thr)) {
			t.Errorf("runbook thresholds: %s threshold %q does not appear in its expr %q", name, thr, r.Expr)
		}
	}

	checkPromQL(t, quoted)

	header := readFile(t, repoPath(t, "alerts", "alerts.yml"))
	inHeader := map[string]bool{}
	for _, line := range strings.Split(string(header), "\n") {
		if !strings.HasPrefix(line, "#") {
			break
		}
		f := strings.Fields(strings.TrimPrefix(line, "#"))
		if len(f) < 3 || !camelCase.MatchString(f[0]) {
			continue
		}
		r, ok := rules[f[0]]
		if !ok {
			t.Errorf("alerts.yml header: %s is not an alert", f[0])
			continue
		}
		inHeader[f[0]] = true
		if f[1] != r.Labels["severity"] || f[len(f)-1] != r.For {
			t.Errorf("alerts.yml header: %s says severity %s for %s, the rule has %s for %s", f[0], f[1], f[len(f)-1], r.Labels["severity"], r.For)
		}
	}
	for name := range rules {
		if !inTable[name] {
			t.Errorf("runbook thresholds table has no row for %s", name)
		}
		if !inHeader[name] {
			t.Errorf("alerts.yml header comment has no line for %s", name)
		}
	}
}

func normalizeSpace(s string) string { return strings.Join(strings.Fields(s), " ") }

// TestRecordingRulesAreUsed keeps dead recording rules out: each one feeds
// an alert or a dashboard.
func TestRecordingRulesAreUsed(t *testing.T) {
	var users []string
	for _, r := range alertRules(t) {
		users = append(users, r.Expr)
	}
	for _, q := range dashboardQueries(t) {
		users = append(users, q.Expr)
	}
	all := strings.Join(users, "\n")
	for _, r := range allRules(t) {
		if r.Record != "" && !regexp.MustCompile(regexp.QuoteMeta(r.Record)+`\b`).MatchString(all) {
			t.Errorf("recording rule %s is used by no alert and no dashboard", r.Record)
		}
	}
}

// parsePromDuration parses Prometheus durations such as 90m, 1h30m, 2d.
func parsePromDuration(t testing.TB, s string) time.Duration {
	t.Helper()
	d, err := promDuration(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

var promDurationPart = regexp.MustCompile(`(\d+)(ms|s|m|h|d|w|y)`)

func promDuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, fmt.Errorf("empty duration")
	}
	units := map[string]time.Duration{"ms": time.Millisecond, "s": time.Second, "m": time.Minute, "h": time.Hour,
		"d": 24 * time.Hour, "w": 7 * 24 * time.Hour, "y": 365 * 24 * time.Hour}
	var total time.Duration
	rest := s
	for rest != "" {
		loc := promDurationPart.FindStringSubmatchIndex(rest)
		if loc == nil || loc[0] != 0 {
			return 0, fmt.Errorf("not a Prometheus duration: %q", s)
		}
		var n int64
		fmt.Sscan(rest[loc[2]:loc[3]], &n)
		total += time.Duration(n) * units[rest[loc[4]:loc[5]]]
		rest = rest[loc[1]:]
	}
	return total, nil
}

// formatPromDuration writes d the way Prometheus reads it, in whole
// milliseconds at least.
func formatPromDuration(d time.Duration) string {
	if d%time.Second == 0 {
		return fmt.Sprintf("%ds", d/time.Second)
	}
	return fmt.Sprintf("%dms", d/time.Millisecond)
}

// checkPromQL fails for every quoted expression that is not valid PromQL
// on its own, as promtool parses it: a quote is meant to be pasted into
// Prometheus.
func checkPromQL(t *testing.T, exprs map[string]string) {
	t.Helper()
	promtool := tool(t, "promtool")
	for name, expr := range exprs {
		doc := map[string]any{"groups": []any{map[string]any{"name": "quoted", "rules": []any{
			map[string]any{"record": "quoted:expr", "expr": expr}}}}}
		b, err := yaml.Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(t.TempDir(), "quoted.yml")
		if err := os.WriteFile(f, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(promtool, "check", "rules", f).CombinedOutput(); err != nil {
			t.Errorf("runbook thresholds: %s quotes %q, which is not valid PromQL: %s", name, expr, out)
		}
	}
}
