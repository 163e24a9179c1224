package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// dashboard is the part of a Grafana dashboard JSON the tests read.
type dashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Type       string          `json:"type"`
			Name       string          `json:"name"`
			Query      json.RawMessage `json:"query"`
			Definition string          `json:"definition"`
			Datasource *datasourceRef  `json:"datasource"`
			Current    struct {
				Value any `json:"value"`
			} `json:"current"`
		} `json:"list"`
	} `json:"templating"`
	Annotations struct {
		List []struct {
			Name       string         `json:"name"`
			Expr       string         `json:"expr"`
			Datasource *datasourceRef `json:"datasource"`
		} `json:"list"`
	} `json:"annotations"`
}

type datasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type panel struct {
	ID          int            `json:"id"`
	Type        string         `json:"type"`
	Title       string         `json:"title"`
	Description string         `json:"description"`
	Datasource  *datasourceRef `json:"datasource"`
	FieldConfig struct {
		Defaults struct {
			Unit string `json:"unit"`
		} `json:"defaults"`
	} `json:"fieldConfig"`
	Targets []struct {
		Expr       string         `json:"expr"`
		RefID      string         `json:"refId"`
		Instant    bool           `json:"instant"`
		Datasource *datasourceRef `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // collapsed rows
}

var literalRange = regexp.MustCompile(`\[\s*\d+(ms|s|m|h|d|w|y)`)

// dashQuery is one PromQL expression of a dashboard: a panel target, an
// annotation, or the selector of a label_values variable.
type dashQuery struct {
	Where   string // for messages: dashboard / panel / refId
	Expr    string
	Instant bool
	Label   string // label_values variables: the label whose values are listed
}

func dashboardFiles(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob(repoPath(t, "grafana", "dashboards", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboards in grafana/dashboards: %v", err)
	}
	return files
}

func loadDashboard(t testing.TB, path string) dashboard {
	t.Helper()
	b := readFile(t, path)
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return d
}

func flatPanels(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, flatPanels(p.Panels)...)
	}
	return out
}

// dashboardQueries lists every expression of every dashboard, unsubstituted.
func dashboardQueries(t testing.TB) []dashQuery {
	t.Helper()
	var out []dashQuery
	for _, f := range dashboardFiles(t) {
		d := loadDashboard(t, f)
		for _, p := range flatPanels(d.Panels) {
			for _, tg := range p.Targets {
				out = append(out, dashQuery{Where: fmt.Sprintf("%s / %q / %s", d.UID, p.Title, tg.RefID), Expr: tg.Expr, Instant: tg.Instant})
			}
		}
		for _, a := range d.Annotations.List {
			if a.Expr != "" {
				out = append(out, dashQuery{Where: fmt.Sprintf("%s / annotation %q", d.UID, a.Name), Expr: a.Expr})
			}
		}
		for _, v := range d.Templating.List {
			if v.Type != "query" {
				continue
			}
			m := labelValuesQuery.FindStringSubmatch(v.Definition)
			if m == nil {
				t.Fatalf("%s: variable %s: only label_values(selector, label) queries are supported here: %q", d.UID, v.Name, v.Definition)
			}
			out = append(out, dashQuery{Where: fmt.Sprintf("%s / variable %s", d.UID, v.Name), Expr: m[1], Label: m[2]})
		}
	}
	return out
}

// staticVars are what the static checks put in place of Grafana's
// variables: anything that keeps the expression valid.
var staticVars = map[string]string{
	"job": ".*", "instance": ".*", "consumergroup": ".*", "topic": ".*",
	"__rate_interval": "5m", "__interval": "1m", "__range": "1h",
}

func TestDashboardConventions(t *testing.T) {
	deprecated := map[string]bool{"graph": true, "singlestat": true, "table-old": true, "grafana-piechart-panel": true}
	uids := map[string]string{}
	for _, f := range dashboardFiles(t) {
		d := loadDashboard(t, f)
		name := filepath.Base(f)
		if d.UID != strings.TrimSuffix(name, ".json") {
			t.Errorf("%s: uid %q should equal the file name, so links and provisioning stay stable", name, d.UID)
		}
		if prev, ok := uids[d.UID]; ok {
			t.Errorf("%s: uid %q also used by %s", name, d.UID, prev)
		}
		uids[d.UID] = name
		if d.SchemaVersion < 39 {
			t.Errorf("%s: schemaVersion %d, want 39 or later", name, d.SchemaVersion)
		}
		vars := map[string]string{}
		for _, v := range d.Templating.List {
			vars[v.Name] = v.Type
			if v.Type == "query" && (v.Datasource == nil || v.Datasource.UID != "${datasource}") {
				t.Errorf("%s: variable %s does not query the ${datasource} variable", name, v.Name)
			}
		}
		if vars["datasource"] != "datasource" {
			t.Errorf("%s: no datasource variable of type datasource", name)
		}
		for _, v := range d.Templating.List {
			if v.Name == "datasource" && string(v.Query) != `"prometheus"` {
				t.Errorf("%s: datasource variable queries %s, want prometheus", name, v.Query)
			}
		}
		ids := map[int]bool{}
		for _, p := range flatPanels(d.Panels) {
			if ids[p.ID] {
				t.Errorf("%s: panel id %d used twice", name, p.ID)
			}
			ids[p.ID] = true
			if p.Type == "row" {
				continue
			}
			if deprecated[p.Type] {
				t.Errorf("%s: panel %q uses deprecated type %s", name, p.Title, p.Type)
			}
			if p.Description == "" {
				t.Errorf("%s: panel %q has no description", name, p.Title)
			}
			if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
				t.Errorf("%s: panel %q does not use the ${datasource} variable", name, p.Title)
			}
			if p.Type == "timeseries" && p.FieldConfig.Defaults.Unit == "" {
				t.Errorf("%s: panel %q has no unit", name, p.Title)
			}
			if len(p.Targets) == 0 {
				t.Errorf("%s: panel %q has no query", name, p.Title)
			}
			refs := map[string]bool{}
			for _, tg := range p.Targets {
				if refs[tg.RefID] || tg.RefID == "" {
					t.Errorf("%s: panel %q: refId %q missing or repeated", name, p.Title, tg.RefID)
				}
				refs[tg.RefID] = true
				if tg.Datasource == nil || tg.Datasource.UID != "${datasource}" {
					t.Errorf("%s: panel %q %s does not use the ${datasource} variable", name, p.Title, tg.RefID)
				}
				if literalRange.MatchString(tg.Expr) {
					t.Errorf("%s: panel %q %s: a fixed range; use $__rate_interval (or $__range, $__interval) so it fits the zoom and the scrape interval: %s", name, p.Title, tg.RefID, tg.Expr)
				}
			}
		}
	}
	for _, uid := range []string{"kafka-consumer-groups-overview", "kafka-consumer-group-detail", "kafka-rebalance-exporter-health"} {
		if _, ok := uids[uid]; !ok {
			t.Errorf("dashboard %s is missing", uid)
		}
	}
	// The group dashboards filter by group; the detail one also by topic.
	for uid, want := range map[string][]string{
		"kafka-consumer-groups-overview": {"consumergroup"},
		"kafka-consumer-group-detail":    {"consumergroup", "topic"},
	} {
		f, ok := uids[uid]
		if !ok {
			continue
		}
		d := loadDashboard(t, repoPath(t, "grafana", "dashboards", f))
		have := map[string]bool{}
		for _, v := range d.Templating.List {
			have[v.Name] = v.Type == "query"
		}
		for _, v := range want {
			if !have[v] {
				t.Errorf("%s: no %s query variable", uid, v)
			}
		}
	}
}

// TestDashboardQueriesParse hands every dashboard expression to promtool as
// a recording rule, which makes promtool parse it.
func TestDashboardQueriesParse(t *testing.T) {
	promtool := tool(t, "promtool")
	var f ruleFile
	for i, q := range dashboardQueries(t) {
		expr, err := substitute(q.Expr, staticVars)
		if err != nil {
			t.Errorf("%s: %v", q.Where, err)
			continue
		}
		// One group per query, named after it, so promtool's error names
		// the panel.
		f.Groups = append(f.Groups, ruleGroup{
			Name:  fmt.Sprintf("%03d %s", i, q.Where),
			Rules: []rule{{Record: fmt.Sprintf("dashboard_query_%d", i), Expr: expr}},
		})
	}
	if t.Failed() {
		return
	}
	path := filepath.Join(t.TempDir(), "dashboard-queries.yml")
	b, err := yaml.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := run(t, repoRoot(t), nil, promtool, "check", "rules", path); err != nil {
		t.Fatalf("promtool check rules on the dashboard queries: %v\n%s", err, out)
	}
}

// TestProvisioning checks Grafana's provisioning files against the
// dashboards: one Prometheus datasource whose uid the dashboards default
// to, and a file provider.
func TestProvisioning(t *testing.T) {
	ds := loadGrafanaDatasources(t)
	if len(ds.Datasources) != 1 || ds.Datasources[0].Type != "prometheus" || ds.Datasources[0].UID == "" {
		t.Fatalf("want one prometheus datasource with a fixed uid, got %+v", ds.Datasources)
	}
	for _, f := range dashboardFiles(t) {
		d := loadDashboard(t, f)
		for _, v := range d.Templating.List {
			if v.Name == "datasource" && v.Current.Value != ds.Datasources[0].UID {
				t.Errorf("%s: datasource variable defaults to %v, the provisioned datasource uid is %s", d.UID, v.Current.Value, ds.Datasources[0].UID)
			}
		}
	}
	p := loadGrafanaProviders(t)
	if len(p.Providers) != 1 || p.Providers[0].Type != "file" || p.Providers[0].Options.Path == "" {
		t.Fatalf("want one file dashboard provider with a path, got %+v", p.Providers)
	}
}

type grafanaDatasources struct {
	APIVersion  int `yaml:"apiVersion"`
	Datasources []struct {
		Name string `yaml:"name"`
		UID  string `yaml:"uid"`
		Type string `yaml:"type"`
		URL  string `yaml:"url"`
	} `yaml:"datasources"`
}

type grafanaProviders struct {
	APIVersion int `yaml:"apiVersion"`
	Providers  []struct {
		Name    string `yaml:"name"`
		Type    string `yaml:"type"`
		Options struct {
			Path string `yaml:"path"`
		} `yaml:"options"`
	} `yaml:"providers"`
}

func loadGrafanaDatasources(t testing.TB) grafanaDatasources {
	var v grafanaDatasources
	loadYAML(t, repoPath(t, "grafana", "provisioning", "datasources", "prometheus.yml"), &v)
	return v
}

func loadGrafanaProviders(t testing.TB) grafanaProviders {
	var v grafanaProviders
	loadYAML(t, repoPath(t, "grafana", "provisioning", "dashboards", "dashboards.yml"), &v)
	return v
}

func loadYAML(t testing.TB, path string, v any) {
	t.Helper()
	b := readFile(t, path)
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
