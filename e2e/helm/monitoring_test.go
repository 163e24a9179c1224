package helm

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"gopkg.in/yaml.v3"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	corev1 "k8s.io/api/core/v1"
)

// checkServiceMonitor: the ServiceMonitor selects the Service by its
// labels, in its namespace, scrapes the port it names at the exporter's
// metrics path, and names the job as the alerts expect.
func checkServiceMonitor(t *testing.T, sm *monitoringv1.ServiceMonitor, svc *corev1.Service, telemetryPath, scheme string) {
	t.Helper()
	if !subset(sm.Spec.Selector.MatchLabels, svc.Labels) || len(sm.Spec.Selector.MatchLabels) == 0 {
		t.Errorf("ServiceMonitor selects %v, which the Service's labels %v lack", sm.Spec.Selector.MatchLabels, svc.Labels)
	}
	if !reflect.DeepEqual(sm.Spec.NamespaceSelector.MatchNames, []string{namespace}) {
		t.Errorf("ServiceMonitor namespaces %v, want the release's %q", sm.Spec.NamespaceSelector.MatchNames, namespace)
	}
	if svc.Labels[sm.Spec.JobLabel] != job {
		t.Errorf("the job is the Service's label %q, %q; alerts/alerts.yml's KafkaExporterDown expects %q", sm.Spec.JobLabel, svc.Labels[sm.Spec.JobLabel], job)
	}
	if len(sm.Spec.Endpoints) != 1 {
		t.Fatalf("%d endpoints", len(sm.Spec.Endpoints))
	}
	ep := sm.Spec.Endpoints[0]
	if ep.Port != svc.Spec.Ports[0].Name {
		t.Errorf("endpoint port %v, the Service names %q", ep.Port, svc.Spec.Ports[0].Name)
	}
	if ep.Path != telemetryPath {
		t.Errorf("endpoint path %q, the exporter serves metrics at %q", ep.Path, telemetryPath)
	}
	if scheme == "" {
		scheme = "HTTP"
	}
	if ep.Scheme == nil || !strings.EqualFold(string(*ep.Scheme), scheme) {
		t.Errorf("endpoint scheme %v, want %s", ep.Scheme, scheme)
	}
}

// checkRules: the PrometheusRule holds exactly alerts/'s rule groups,
// recording rules first, as Prometheus loads them.
func checkRules(t *testing.T, pr *monitoringv1.PrometheusRule) {
	t.Helper()
	var want []any
	for _, f := range []string{"recording-rules.yml", "alerts.yml"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "alerts", f))
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Groups []any `yaml:"groups"`
		}
		if err := yaml.Unmarshal(b, &doc); err != nil {
			t.Fatal(err)
		}
		want = append(want, doc.Groups...)
	}
	// Compare as JSON values: the typed rules against alerts/ as written.
	b, err := json.Marshal(pr.Spec.Groups)
	if err != nil {
		t.Fatal(err)
	}
	var got []any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	wb, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	var wantJSON []any
	if err := json.Unmarshal(wb, &wantJSON); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, wantJSON) {
		t.Errorf("the PrometheusRule's groups differ from alerts/:\n got %s\nwant %s", b, wb)
	}
	rules := 0
	for _, g := range pr.Spec.Groups {
		rules += len(g.Rules)
	}
	if len(pr.Spec.Groups) < 2 || rules < 10 {
		t.Errorf("%d groups, %d rules: alerts/ has more", len(pr.Spec.Groups), rules)
	}
}

// helm lint, through the SDK, finds nothing above INFO with each value set
// (and does find an error where there is one).
func TestChartLints(t *testing.T) {
	if l := lint.All(chartDir, map[string]any{"shards": 0}, namespace, false); l.HighestSeverity != support.ErrorSev {
		t.Errorf("helm lint with shards 0: highest severity %d, want ERROR: %v", l.HighestSeverity, l.Messages)
	}
	for name, set := range valueSets(t) {
		t.Run(name, func(t *testing.T) {
			var vals map[string]any
			if err := yaml.Unmarshal([]byte(set.values), &vals); err != nil {
				t.Fatal(err)
			}
			l := lint.All(chartDir, vals, namespace, false)
			for _, m := range l.Messages {
				t.Log(m.Error())
			}
			if l.HighestSeverity > support.InfoSev {
				t.Errorf("helm lint: highest severity %d (INFO is %d)", l.HighestSeverity, support.InfoSev)
			}
		})
	}
}

// Values the chart must refuse, with the reason it gives.
func TestChartRefusesBadValues(t *testing.T) {
	for values, want := range map[string]string{
		"shards: 0":                             "shards",
		"shards: two":                           "shards",
		"brokers: []":                           "brokers",
		"brokers: [kafka]":                      "brokers",
		"replicas: 3":                           "replicas",
		"env: {KRE_POL_INTERVAL: 5s}":           "KRE_POL_INTERVAL",
		"env: {LOG_LEVEL: debug}":               "LOG_LEVEL",
		"env: {KRE_BROKERS: 'a:9092'}":          "env.KRE_BROKERS: the chart sets it",
		"env: {KRE_SHARDS: '2'}":                "env.KRE_SHARDS: the chart sets it",
		"env: {KRE_SASL_PASSWORD: hunter2}":     "sasl.passwordSecret",
		"env: {KRE_WEB_CONFIG_FILE: /x}":        "env.KRE_WEB_CONFIG_FILE",
		"sasl: {mechanism: SCRAM-SHA-1}":        "mechanism",
		"sasl: {mechanism: PLAIN}":              "sasl.username is required",
		"sasl: {mechanism: PLAIN, username: u}": "sasl.passwordSecret.name is required",
		"sasl: {passwordSecret: {name: s}}":     "sasl.mechanism is empty",
		"tls: {enabled: true, secret: {name: t, certKey: tls.crt}}": "certKey and tls.secret.keyKey",
		"tls: {secret: {name: t}}":                                  "tls.enabled is false",
		"webConfig: {secretName: a, configMapName: b}":              "not both",
		"webConfig: {scheme: https}":                                "scheme",
		"constLabels: {cluster-name: prod}":                         "cluster-name",
		"constLabels: {cluster: 'a,b'}":                             "constLabels",
		"service: {port: 0}":                                        "port",
		"livenessProbe: {httpGet: {path: /}}":                       "httpGet",
	} {
		_, err := render(t, values)
		if err == nil {
			t.Errorf("%s: rendered; want an error about %q", values, want)
			continue
		}
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %q does not mention %q", values, err, want)
		}
	}
}
