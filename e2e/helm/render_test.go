// Package helm renders the chart of deploy/helm with the Helm SDK and
// validates what it renders: every object is decoded strictly into its
// Kubernetes or Prometheus Operator type (an unknown or misspelt field
// fails), the pod's environment is one the exporter accepts, its probes hit
// paths the exporter serves, and the PrometheusRule is alerts/. It is a
// package of its own so that only this test binary links the Helm SDK.
package helm

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/config"
)

var updateChart = flag.Bool("update-chart", false, "copy alerts/ into the chart's files/ and the exporter's setting names into values.schema.json")

const (
	chartDir    = "../../deploy/helm/kafka-rebalance-exporter"
	releaseName = "kre"
	namespace   = "monitoring"
)

// rendered is what one value set renders to.
type rendered struct {
	Deployments  []*appsv1.Deployment
	StatefulSets []*appsv1.StatefulSet
	Services     []*corev1.Service
	Monitors     []*monitoringv1.ServiceMonitor
	Rules        []*monitoringv1.PrometheusRule
	Notes        string
	// Raw holds every object's YAML, by kind.
	Raw map[string][]byte
}

func loadChart(t *testing.T) *chart.Chart {
	t.Helper()
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

// render renders the chart as `helm template` would, with values given as
// YAML (merged over values.yaml and checked against values.schema.json).
func render(t *testing.T, values string) (map[string]string, error) {
	t.Helper()
	ch := loadChart(t)
	vals, err := chartutil.ReadValues([]byte(values))
	if err != nil {
		t.Fatalf("test values: %v", err)
	}
	rv, err := chartutil.ToRenderValues(ch, vals.AsMap(), chartutil.ReleaseOptions{Name: releaseName, Namespace: namespace, Revision: 1, IsInstall: true}, chartutil.DefaultCapabilities)
	if err != nil {
		return nil, err
	}
	return engine.Render(ch, rv)
}

// mustRender renders and strictly decodes every object.
func mustRender(t *testing.T, values string) *rendered {
	t.Helper()
	files, err := render(t, values)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	r := &rendered{Raw: map[string][]byte{}}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if strings.HasSuffix(name, "NOTES.txt") {
			r.Notes = files[name]
			continue
		}
		for i, doc := range splitDocs(files[name]) {
			r.decode(t, fmt.Sprintf("%s#%d", filepath.Base(name), i), doc)
		}
	}
	return r
}

// splitDocs splits a rendered file into its YAML documents, leaving out
// those that hold only comments or nothing.
func splitDocs(s string) [][]byte {
	var docs [][]byte
	var cur bytes.Buffer
	flush := func() {
		content := false
		for _, l := range strings.Split(cur.String(), "\n") {
			if t := strings.TrimSpace(l); t != "" && !strings.HasPrefix(t, "#") {
				content = true
			}
		}
		if content {
			docs = append(docs, bytes.Clone(cur.Bytes()))
		}
		cur.Reset()
	}
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(nil, 1<<22)
	for sc.Scan() {
		if strings.TrimRight(sc.Text(), " ") == "---" {
			flush()
			continue
		}
		cur.WriteString(sc.Text() + "\n")
	}
	flush()
	return docs
}

// decode decodes one object into its type, refusing unknown fields and
// duplicate keys, and checks its name and labels as the API server would.
func (r *rendered) decode(t *testing.T, where string, doc []byte) {
	t.Helper()
	var head struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := yaml.Unmarshal(doc, &head); err != nil {
		t.Fatalf("%s: not YAML: %v\n%s", where, err, doc)
	}
	var obj any
	switch head.APIVersion + " " + head.Kind {
	case "apps/v1 Deployment":
		o := &appsv1.Deployment{}
		r.Deployments, obj = append(r.Deployments, o), o
	case "apps/v1 StatefulSet":
		o := &appsv1.StatefulSet{}
		r.StatefulSets, obj = append(r.StatefulSets, o), o
	case "v1 Service":
		o := &corev1.Service{}
		r.Services, obj = append(r.Services, o), o
	case "monitoring.coreos.com/v1 ServiceMonitor":
		o := &monitoringv1.ServiceMonitor{}
		r.Monitors, obj = append(r.Monitors, o), o
	case "monitoring.coreos.com/v1 PrometheusRule":
		o := &monitoringv1.PrometheusRule{}
		r.Rules, obj = append(r.Rules, o), o
	default:
		t.Fatalf("%s: unexpected object %q %q; add its type to the test", where, head.APIVersion, head.Kind)
	}
	if err := yaml.UnmarshalStrict(doc, obj); err != nil {
		t.Fatalf("%s: %s %s does not decode strictly: %v\n%s", where, head.APIVersion, head.Kind, err, doc)
	}
	r.Raw[head.Kind] = append(r.Raw[head.Kind], doc...)
	m := obj.(metav1.Object)
	if errs := validation.IsDNS1123Subdomain(m.GetName()); len(errs) > 0 {
		t.Errorf("%s: name %q: %v", where, m.GetName(), errs)
	}
	checkLabels(t, where, m.GetLabels())
}

func checkLabels(t *testing.T, where string, labels map[string]string) {
	t.Helper()
	for k, v := range labels {
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			t.Errorf("%s: label name %q: %v", where, k, errs)
		}
		if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
			t.Errorf("%s: label %s value %q: %v", where, k, v, errs)
		}
	}
}

// settings are the exporter's variable names, as `exporter -help` prints
// them (the config package's table).
func settings(t *testing.T) []string {
	t.Helper()
	var buf bytes.Buffer
	if err := config.Usage(&buf); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^(`+config.Prefix+`_[A-Z0-9_]+)\s`).FindAllStringSubmatch(buf.String(), -1) {
		seen[m[1]] = true
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(names) < 30 || !slices.Contains(names, "KRE_BROKERS") || !slices.Contains(names, "KRE_SASL_PASSWORD_FILE") {
		t.Fatalf("could not read the settings from config.Usage: %v\n%s", names, buf.String())
	}
	return names
}

// schemaEnvNames is values.schema.json's list of names env may hold.
func schemaEnvNames(t *testing.T, schema map[string]any) []string {
	t.Helper()
	var names []string
	enum, _ := dig(schema, "properties", "env", "propertyNames", "enum").([]any)
	for _, n := range enum {
		names = append(names, n.(string))
	}
	return names
}

func dig(v any, path ...string) any {
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

func readSchema(t *testing.T) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(chartDir, "values.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var schema map[string]any
	if err := json.Unmarshal(b, &schema); err != nil {
		t.Fatal(err)
	}
	return schema
}

// The chart carries generated copies of two facts whose home is elsewhere:
// alerts/'s rule files (Helm reads only files inside the chart) and the
// exporter's setting names (values.schema.json refuses any other env).
// -update-chart rewrites both; without it the test fails when they drift.
func TestChartCopiesAreUpToDate(t *testing.T) {
	for _, f := range []string{"recording-rules.yml", "alerts.yml"} {
		want, err := os.ReadFile(filepath.Join("..", "..", "alerts", f))
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(chartDir, "files", f)
		if *updateChart {
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from alerts/%s: run go test ./e2e/helm -run ChartCopies -update-chart", path, f)
		}
	}
	names := settings(t)
	schema := readSchema(t)
	if *updateChart {
		enum := make([]any, len(names))
		for i, n := range names {
			enum[i] = n
		}
		dig(schema, "properties", "env", "propertyNames").(map[string]any)["enum"] = enum
		b, err := json.MarshalIndent(schema, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(chartDir, "values.schema.json"), append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		schema = readSchema(t)
	}
	if got := schemaEnvNames(t, schema); !slices.Equal(got, names) {
		t.Errorf("values.schema.json's env names differ from the exporter's settings: run go test ./e2e/helm -run ChartCopies -update-chart\n got %v\nwant %v", got, names)
	}
}
