package e2e

import (
	"encoding/json"
	"errors"
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

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	sdkdashboard "github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"gopkg.in/yaml.v3"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/testkit"
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
			Multi bool `json:"multi"`
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

type target struct {
	Expr         string         `json:"expr"`
	RefID        string         `json:"refId"`
	Instant      bool           `json:"instant"`
	Format       string         `json:"format"`
	LegendFormat string         `json:"legendFormat"`
	Datasource   *datasourceRef `json:"datasource"`
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
		Overrides []struct {
			Matcher struct {
				ID      string `json:"id"`
				Options any    `json:"options"`
			} `json:"matcher"`
			Properties []struct {
				ID    string `json:"id"`
				Value any    `json:"value"`
			} `json:"properties"`
		} `json:"overrides"`
	} `json:"fieldConfig"`
	Options struct {
		YAxis      struct{ Unit string } `json:"yAxis"`      // heatmap
		CellValues struct{ Unit string } `json:"cellValues"` // heatmap
	} `json:"options"`
	Targets []target `json:"targets"`
	Panels  []panel  `json:"panels"` // collapsed rows
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

// TestDashboardSchema validates the dashboards against the schema Grafana
// publishes, as generated into Go by the Grafana Foundation SDK (Apache-2.0):
// every dashboard must strict-decode into its dashboard types (an unknown
// or misspelt field, a wrong type or a missing required field fails), with
// the panel options and custom field config of the SDK's registered panel
// plugins; panel types must be known to it and the schemaVersion must be
// the one it writes.
//
// Where the SDK's own decoding is lenient (it reads fieldConfig with plain
// encoding/json), fieldConfig is strict-decoded here as well; field data
// links are checked separately, since the SDK types them as dashboard links
// ({title, url, type, icon, tags, ...}) where Grafana's field config holds
// data links ({title, url, targetBlank}).
func TestDashboardSchema(t *testing.T) {
	plugins.RegisterDefaultPlugins()
	for _, f := range dashboardFiles(t) {
		name := filepath.Base(f)
		for _, err := range schemaErrors(readFile(t, f)) {
			t.Errorf("%s: %v", name, err)
		}
	}

	// The validation is not vacuous: a stray field anywhere is found.
	good := readFile(t, repoPath(t, "grafana", "dashboards", "kafka-rebalance-exporter-health.json"))
	if errs := schemaErrors(good); len(errs) > 0 {
		return // reported above
	}
	for _, path := range []string{"", "panels.1", "panels.1.options", "panels.1.fieldConfig.defaults", "panels.7.fieldConfig.defaults.custom", "panels.7.options",
		"panels.9.targets.0", "panels.9.fieldConfig.defaults.custom", "templating.list.1", "annotations.list.0", "panels.9.gridPos"} {
		var doc any
		if err := json.Unmarshal(good, &doc); err != nil {
			t.Fatal(err)
		}
		obj, ok := jsonAt(doc, path).(map[string]any)
		if !ok {
			t.Fatalf("self-check: nothing at %q of the health dashboard", path)
		}
		obj["bogusField"] = true
		b, _ := json.Marshal(doc)
		if errs := schemaErrors(b); len(errs) == 0 {
			t.Errorf("self-check: an unknown field at %q of a dashboard passes the schema check", path)
		}
	}
}

// schemaErrors lists what TestDashboardSchema finds wrong in one dashboard.
func schemaErrors(b []byte) []error {
	var errs []error
	var d sdkdashboard.Dashboard
	if err := strictErr(d.UnmarshalJSONStrict(b)); err != nil {
		errs = append(errs, fmt.Errorf("does not strict-decode into the Grafana schema (grafana-foundation-sdk dashboard.Dashboard):\n%w", err))
	}
	if want := sdkdashboard.NewDashboard().SchemaVersion; d.SchemaVersion != want {
		errs = append(errs, fmt.Errorf("schemaVersion %d, the current Grafana schema is %d", d.SchemaVersion, want))
	}
	var raw struct {
		Panels []json.RawMessage `json:"panels"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return append(errs, err)
	}
	var panels []json.RawMessage
	for _, p := range raw.Panels {
		panels = append(panels, p)
		var row struct {
			Panels []json.RawMessage `json:"panels"`
		}
		_ = json.Unmarshal(p, &row)
		panels = append(panels, row.Panels...)
	}
	for _, p := range panels {
		var head struct {
			Type        string         `json:"type"`
			Title       string         `json:"title"`
			FieldConfig map[string]any `json:"fieldConfig"`
		}
		if err := json.Unmarshal(p, &head); err != nil {
			errs = append(errs, err)
			continue
		}
		if _, ok := cog.ConfigForPanelcfgVariant(head.Type); !ok && head.Type != "row" {
			errs = append(errs, fmt.Errorf("panel %q: type %q is not a panel type the Grafana schema knows", head.Title, head.Type))
		}
		if head.FieldConfig == nil {
			continue
		}
		if defaults, ok := head.FieldConfig["defaults"].(map[string]any); ok {
			if links, ok := defaults["links"]; ok {
				if err := checkDataLinks(links); err != nil {
					errs = append(errs, fmt.Errorf("panel %q: fieldConfig.defaults.links: %w", head.Title, err))
				}
				delete(defaults, "links")
			}
		}
		fc, _ := json.Marshal(head.FieldConfig)
		var src sdkdashboard.FieldConfigSource
		if err := strictErr(src.UnmarshalJSONStrict(fc)); err != nil {
			errs = append(errs, fmt.Errorf("panel %q: fieldConfig:\n%w", head.Title, err))
		}
	}
	return errs
}

// checkDataLinks strict-decodes field data links.
func checkDataLinks(links any) error {
	b, _ := json.Marshal(links)
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	var ls []struct {
		Title       string `json:"title"`
		URL         string `json:"url"`
		TargetBlank bool   `json:"targetBlank"`
	}
	if err := dec.Decode(&ls); err != nil {
		return err
	}
	for i, l := range ls {
		if l.Title == "" || l.URL == "" {
			return fmt.Errorf("link %d: title and url are required", i)
		}
	}
	return nil
}

// strictErr is err, except the SDK's empty error list, which it returns
// (as a non-nil error) when there is nothing wrong.
func strictErr(err error) error {
	var be cog.BuildErrors
	if errors.As(err, &be) && len(be) == 0 {
		return nil
	}
	return err
}

// jsonAt walks a dotted path ("panels.1.options") of a decoded JSON value.
func jsonAt(v any, path string) any {
	if path == "" {
		return v
	}
	for _, k := range strings.Split(path, ".") {
		switch x := v.(type) {
		case map[string]any:
			v = x[k]
		case []any:
			i, err := strconv.Atoi(k)
			if err != nil || i >= len(x) {
				return nil
			}
			v = x[i]
		default:
			return nil
		}
	}
	return v
}

// TestDashboardDatasources: every datasource reference anywhere in a
// dashboard (panels, targets, variables, annotations) is the dashboard's
// datasource variable, of type prometheus, or Grafana's built-in one for
// the built-in annotation; the variable itself defaults to the provisioned
// datasource (TestProvisioning).
func TestDashboardDatasources(t *testing.T) {
	for _, f := range dashboardFiles(t) {
		name := filepath.Base(f)
		var doc any
		if err := json.Unmarshal(readFile(t, f), &doc); err != nil {
			t.Fatal(err)
		}
		n := 0
		walkJSON(doc, "", func(path string, v any) {
			if !strings.HasSuffix(path, ".datasource") {
				return
			}
			n++
			ref, _ := v.(map[string]any)
			switch {
			case ref["type"] == "prometheus" && ref["uid"] == "${datasource}":
			case ref["type"] == "grafana" && ref["uid"] == "-- Grafana --" && strings.HasPrefix(path, ".annotations.list."):
			default:
				t.Errorf("%s: %s is %v, want {type: prometheus, uid: ${datasource}}", name, path, v)
			}
		})
		if n == 0 {
			t.Errorf("%s: no datasource references at all", name)
		}
	}
}

func walkJSON(v any, path string, f func(path string, v any)) {
	f(path, v)
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			walkJSON(e, path+"."+k, f)
		}
	case []any:
		for i, e := range x {
			walkJSON(e, path+"."+strconv.Itoa(i), f)
		}
	}
}

// TestDashboardUnits: every panel query is displayed in a unit that fits
// what it measures (measureOf: _seconds in s, timestamps as dates or ages,
// _bytes in bytes, rates per second or per hour, counts plain, booleans
// and enumerations without a unit), including the units of byFrameRefID
// overrides and the heatmap's axes.
func TestDashboardUnits(t *testing.T) {
	for _, f := range dashboardFiles(t) {
		d := loadDashboard(t, f)
		for _, p := range flatPanels(d.Panels) {
			if p.Type == "row" {
				continue
			}
			for _, tg := range p.Targets {
				where := fmt.Sprintf("%s / %q / %s", d.UID, p.Title, tg.RefID)
				m, err := measureOf(tg.Expr)
				if err != nil {
					t.Errorf("%s: %v", where, err)
					continue
				}
				if p.Type == "heatmap" {
					// Cells count observations; the y axis is the bucket
					// boundary, in the histogram's unit.
					if err := unitError(m, p.Options.CellValues.Unit); err != nil {
						t.Errorf("%s: heatmap cell values: %v", where, err)
					}
					sels, _ := selectorsOf(tg.Expr)
					if len(sels) == 0 || !strings.HasSuffix(sels[0].Metric, "_bucket") {
						t.Errorf("%s: a heatmap of something other than histogram buckets", where)
						continue
					}
					if err := unitError(nameMeasure(strings.TrimSuffix(sels[0].Metric, "_bucket")), p.Options.YAxis.Unit); err != nil {
						t.Errorf("%s: heatmap y axis: %v", where, err)
					}
					continue
				}
				unit, ok := targetUnit(p, tg.RefID)
				if !ok {
					t.Errorf("%s: a unit override the test cannot tie to a query; use byFrameRefID", where)
					continue
				}
				if err := unitError(m, unit); err != nil {
					t.Errorf("%s: %v\n    %s", where, err, tg.Expr)
				}
			}
		}
	}
}

func TestDashboardMeasureOf(t *testing.T) {
	for expr, want := range map[string]measure{
		`x_seconds{a="b"}`:                                    mSeconds,
		`time() - x_last_timestamp_seconds`:                   mSeconds,
		`x_last_timestamp_seconds`:                            mTimestamp,
		`x_last_timestamp_seconds * 1000`:                     mTimestampMS,
		`process_resident_memory_bytes`:                       mBytes,
		`sum by (a) (rate(x_total[5m]))`:                      mPerSecond,
		`sum(rate(x_total[5m])) * 3600`:                       mPerHour,
		`sum(increase(x_total[5m]))`:                          mCount,
		`histogram_quantile(0.5, rate(x_seconds_bucket[5m]))`: mSeconds,
		`rate(x_seconds_sum[5m]) / rate(x_seconds_count[5m])`: mSeconds,
		`min(up)`:                              mBool,
		`sum(kafka_consumergroup_rebalancing)`: mCount,
		`avg(up)`:                              mBool,
		`count(x_seconds)`:                     mCount,
		`sum by (state) (kafka_consumergroup_state)`:     mCount,
		"sum(x{s=\"a\"} * 0\n  or x{s=\"b\"} * 1)":       mEnum,
		`kafka_consumergroup_info`:                       mInfo,
		`max(consumergroup:kafka_consumergroup_lag:sum)`: mCount,
		`consumergroup:x_seconds:rate5m`:                 mPerSecond,
	} {
		if got, err := measureOf(expr); err != nil || got != want {
			t.Errorf("measureOf(%q) = %q, %v; want %q", expr, got, err, want)
		}
	}
	if _, err := measureOf(`x_bytes + y_seconds`); err == nil {
		t.Errorf("bytes plus seconds: no error")
	}
}

// promSeries runs a query as Grafana does (instant or over the last three
// minutes) and returns the labels of the series it returns.
func promSeries(base, expr string, instant bool) ([]map[string]string, error) {
	v := url.Values{"query": {expr}}
	endpoint := "/api/v1/query"
	if !instant {
		now := time.Now()
		endpoint = "/api/v1/query_range"
		v.Set("start", strconv.FormatInt(now.Add(-3*time.Minute).Unix(), 10))
		v.Set("end", strconv.FormatInt(now.Unix(), 10))
		v.Set("step", "2")
	}
	body, err := testkit.HTTPGet(base + endpoint + "?" + v.Encode())
	if err != nil {
		return nil, err
	}
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, err
	}
	if r.Status != "success" {
		return nil, errors.New(r.Error)
	}
	out := make([]map[string]string, len(r.Data.Result))
	for i, s := range r.Data.Result {
		out[i] = s.Metric
	}
	return out, nil
}

// legendErrors checks the legends of one panel against the series its
// targets returned (for one choice of the dashboard's variables): every
// {{label}} of a legendFormat is a label of every series, a target with
// more than one series has a legendFormat, and no two series of the panel
// get the same legend. Targets formatted as tables show labels as columns
// and no legend; they are skipped.
func legendErrors(p panel, series map[string][]map[string]string) []string {
	var errs []string
	seen := map[string]string{}
	for _, tg := range p.Targets {
		ss, ok := series[tg.RefID]
		if !ok || tg.Format == "table" {
			continue
		}
		for _, l := range legendLabels(tg.LegendFormat) {
			for _, s := range ss {
				if _, ok := s[l]; !ok {
					errs = append(errs, fmt.Sprintf("%s: legend %q names {{%s}}, which the query's series do not have (they have %v)", tg.RefID, tg.LegendFormat, l, slices.Sorted(maps.Keys(s))))
					break
				}
			}
		}
		if len(ss) > 1 && strings.TrimSpace(tg.LegendFormat) == "" {
			errs = append(errs, fmt.Sprintf("%s: %d series and no legendFormat", tg.RefID, len(ss)))
			continue
		}
		if len(ss) == 1 && len(p.Targets) == 1 {
			continue
		}
		for _, s := range ss {
			legend := renderLegend(tg.LegendFormat, s)
			if prev, dup := seen[legend]; dup {
				errs = append(errs, fmt.Sprintf("%s: legend %q (from %q) also names another series (%s): the legend cannot tell them apart", tg.RefID, legend, tg.LegendFormat, prev))
				break
			}
			seen[legend] = fmt.Sprintf("%s %v", tg.RefID, s)
		}
	}
	return errs
}

// TestDashboardLegends runs every panel query of every dashboard against a
// real Prometheus scraping the demo (the exporter of TestEndToEnd, with the
// shipped recording rules) and checks each panel's legends against the
// series that came back (legendErrors). Multi-value variables select every
// demo group; single-value ones (the detail dashboard's group) take each of
// their values in turn, as a user picking one group would.
func TestDashboardLegends(t *testing.T) {
	promBin := tool(t, "prometheus")
	exporterAddr, exporter := liveExporter(t)
	dir := t.TempDir()
	promAddr := testkit.FreeAddr(t)
	// No Alertmanager: the alert rules still evaluate, for ALERTS.
	cfg := writePrometheusConfig(t, dir, writeShortRules(t, dir), promAddr, testkit.FreeAddr(t), exporterAddr)
	prom := testkit.StartT(t, "prometheus", dir, nil, promBin,
		"--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "prometheus"), "--web.listen-address="+promAddr)
	base := "http://" + promAddr
	testkit.WaitHTTP(t, prom, base+"/-/ready", 60*time.Second)
	alive := func(cond func() error) func() error { return exporter.Alive(prom.Alive(cond)) }

	fixed := map[string]string{
		"job": "kafka-rebalance-exporter", "instance": exporterAddr,
		"__rate_interval": "20s", "__interval": "10s", "__range": "3m",
	}
	type job struct {
		where string
		p     panel
		vars  map[string]string
		got   map[string][]map[string]string // refId: series, once there were some
	}
	var jobs []*job
	var single []string // what each single-value variable takes
	for _, f := range dashboardFiles(t) {
		d := loadDashboard(t, f)
		choices := []map[string]string{maps.Clone(fixed)}
		for _, v := range d.Templating.List {
			if v.Type != "query" || fixed[v.Name] != "" {
				continue
			}
			if v.Multi {
				for _, c := range choices {
					c[v.Name] = map[string]string{"consumergroup": "demo-.*"}[v.Name]
					if c[v.Name] == "" {
						c[v.Name] = ".*"
					}
				}
				continue
			}
			// Every value the variable offers, once the demo is up.
			m := labelValuesQuery.FindStringSubmatch(v.Definition)
			sel, err := substitute(m[1], choices[0])
			if err != nil {
				t.Fatal(err)
			}
			var values map[string]bool
			testkit.Eventually(t, 60*time.Second, time.Second, d.UID+" variable "+v.Name+" values", alive(func() error {
				values, err = promSeriesLabel(base, sel, m[2])
				if err == nil && len(values) < 3 {
					err = fmt.Errorf("only %v", values)
				}
				return err
			}))
			var next []map[string]string
			for _, c := range choices {
				for _, val := range slices.Sorted(maps.Keys(values)) {
					c2 := maps.Clone(c)
					c2[v.Name] = val // the demo names have no regex metacharacters
					next = append(next, c2)
				}
			}
			choices = next
			single = append(single, fmt.Sprintf("%s $%s: %v", d.UID, v.Name, slices.Sorted(maps.Keys(values))))
		}
		for _, p := range flatPanels(d.Panels) {
			if p.Type == "row" {
				continue
			}
			for _, c := range choices {
				jobs = append(jobs, &job{where: fmt.Sprintf("%s / %q", d.UID, p.Title), p: p, vars: c, got: map[string][]map[string]string{}})
			}
		}
	}
	t.Logf("single-value variables take each of: %v", single)

	// Poll until every target has returned series for at least one choice
	// of the variables.
	hasData := map[string]bool{} // where/refId
	testkit.Eventually(t, 90*time.Second, 2*time.Second, "series for every panel query", alive(func() error {
		for _, j := range jobs {
			for _, tg := range j.p.Targets {
				if _, ok := j.got[tg.RefID]; ok {
					continue
				}
				expr, err := substitute(tg.Expr, j.vars)
				if err != nil {
					return fmt.Errorf("%w: %s: %v", testkit.ErrStop, j.where, err)
				}
				ss, err := promSeries(base, expr, tg.Instant)
				if err != nil {
					return fmt.Errorf("%s %s: %v", j.where, tg.RefID, err)
				}
				if len(ss) > 0 {
					j.got[tg.RefID] = ss
					hasData[j.where+"/"+tg.RefID] = true
				}
			}
		}
		var missing []string
		for _, j := range jobs {
			for _, tg := range j.p.Targets {
				if k := j.where + "/" + tg.RefID; !hasData[k] && !slices.Contains(missing, k) {
					missing = append(missing, k)
				}
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("no series yet for %v", missing)
		}
		return nil
	}))
	checked := 0
	for _, j := range jobs {
		if len(j.got) == 0 {
			continue
		}
		checked++
		for _, e := range legendErrors(j.p, j.got) {
			t.Errorf("%s (variables %v): %s", j.where, j.vars, e)
		}
	}
	t.Logf("legends of %d panel/variable combinations checked", checked)
}

func TestDashboardLegendErrors(t *testing.T) {
	p := panel{Targets: []target{
		{RefID: "A", LegendFormat: "{{topic}}/{{partition}}"},
		{RefID: "B", LegendFormat: "{{ consumergroup }}"},
		{RefID: "C", LegendFormat: ""},
		{RefID: "D", LegendFormat: "x {{topic}}", Format: "table"},
	}}
	s := func(kv ...string) map[string]string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	got := legendErrors(p, map[string][]map[string]string{
		"A": {s("topic", "t", "partition", "0"), s("topic", "t", "partition", "1")},
		"B": {s("consumergroup", "g1", "topic", "t"), s("consumergroup", "g1", "topic", "u")},
		"C": {s("a", "1"), s("a", "2")},
		"D": {s("a", "1"), s("a", "2")},
	})
	want := []string{"B: legend \"g1\"", "C: 2 series and no legendFormat"}
	if len(got) != len(want) {
		t.Fatalf("got %q", got)
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("error %d: %q, want %q...", i, got[i], want[i])
		}
	}
	if got := legendErrors(panel{Targets: []target{{RefID: "A", LegendFormat: "{{loop}}"}}}, map[string][]map[string]string{"A": {s("instance", "x")}}); len(got) != 1 || !strings.Contains(got[0], "{{loop}}") {
		t.Errorf("missing label: %q", got)
	}
}
