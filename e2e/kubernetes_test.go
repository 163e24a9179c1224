package e2e

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

var updateManifests = flag.Bool("update-manifests", false, "rewrite deploy/kubernetes/prometheusrule.yaml from alerts/")

// deployFile reads one of deploy/kubernetes's manifests.
func deployFile(t *testing.T, name string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "deploy", "kubernetes", name))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return m
}

// dig walks nested maps and lists by key or index.
func dig(t *testing.T, v any, path ...any) any {
	t.Helper()
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				t.Fatalf("%v: not a map at %q", path, k)
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				t.Fatalf("%v: no item %d", path, k)
			}
			v = l[k]
		}
	}
	return v
}

// ruleGroups is alerts/'s recording rules and alerts, in the order
// Prometheus loads them (recording rules first).
func ruleGroups(t *testing.T) []any {
	t.Helper()
	var all []any
	for _, f := range []string{"recording-rules.yml", "alerts.yml"} {
		b, err := os.ReadFile(filepath.Join("..", "alerts", f))
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Groups []any `yaml:"groups"`
		}
		if err := yaml.Unmarshal(b, &doc); err != nil {
			t.Fatal(err)
		}
		all = append(all, doc.Groups...)
	}
	return all
}

// The PrometheusRule carries exactly alerts/'s rule groups (regenerate it
// with go test ./e2e -run PrometheusRule -update-manifests).
func TestPrometheusRuleIsTheShippedRules(t *testing.T) {
	want := ruleGroups(t)
	path := filepath.Join("..", "deploy", "kubernetes", "prometheusrule.yaml")
	if *updateManifests {
		doc := map[string]any{
			"apiVersion": "monitoring.coreos.com/v1",
			"kind":       "PrometheusRule",
			"metadata":   map[string]any{"name": "kafka-rebalance-exporter", "labels": map[string]any{"app.kubernetes.io/name": "kafka-rebalance-exporter"}},
			"spec":       map[string]any{"groups": want},
		}
		var buf bytes.Buffer
		buf.WriteString("# Generated from alerts/recording-rules.yml and alerts/alerts.yml by\n# go test ./e2e -run PrometheusRule -update-manifests; edit those, not this.\n")
		enc := yaml.NewEncoder(&buf)
		enc.SetIndent(2)
		if err := enc.Encode(doc); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got := deployFile(t, "prometheusrule.yaml")
	if dig(t, got, "kind") != "PrometheusRule" {
		t.Fatalf("kind %v", got["kind"])
	}
	if !reflect.DeepEqual(dig(t, got, "spec", "groups"), want) {
		t.Fatal("deploy/kubernetes/prometheusrule.yaml differs from alerts/: regenerate it with go test ./e2e -run PrometheusRule -update-manifests")
	}
}

// The StatefulSet, Service and ServiceMonitor fit together: selectors
// match the pod labels, ports agree, the replica count is the shard count,
// the shard comes from the pod name, and the job is the name the alerts
// expect.
func TestKubernetesManifestsFitTogether(t *testing.T) {
	sts := deployFile(t, "statefulset.yaml")
	svc := deployFile(t, "service.yaml")
	sm := deployFile(t, "servicemonitor.yaml")
	podLabels := dig(t, sts, "spec", "template", "metadata", "labels").(map[string]any)
	for what, sel := range map[string]any{
		"statefulset selector":   dig(t, sts, "spec", "selector", "matchLabels"),
		"service selector":       dig(t, svc, "spec", "selector"),
		"servicemonitor selects": dig(t, sm, "spec", "selector", "matchLabels"),
	} {
		for k, v := range sel.(map[string]any) {
			if what == "servicemonitor selects" {
				if dig(t, svc, "metadata", "labels").(map[string]any)[k] != v {
					t.Errorf("%s %s=%v, which the Service's labels lack", what, k, v)
				}
				continue
			}
			if podLabels[k] != v {
				t.Errorf("%s %s=%v does not match the pod labels %v", what, k, v, podLabels)
			}
		}
	}
	if dig(t, svc, "spec", "clusterIP") != "None" {
		t.Error("the Service must be headless, so every shard is scraped")
	}
	container := dig(t, sts, "spec", "template", "spec", "containers", 0)
	env := map[string]any{}
	for _, e := range dig(t, container, "env").([]any) {
		env[dig(t, e, "name").(string)] = e
	}
	if dig(t, env["KRE_SHARD"], "value") != "auto" || dig(t, env["POD_NAME"], "valueFrom", "fieldRef", "fieldPath") != "metadata.name" {
		t.Error("the shard must come from the pod name (KRE_SHARD=auto, POD_NAME from metadata.name)")
	}
	if shards := dig(t, env["KRE_SHARDS"], "value"); shards != strings.TrimSpace(yamlString(dig(t, sts, "spec", "replicas"))) {
		t.Errorf("KRE_SHARDS %v differs from replicas %v", shards, dig(t, sts, "spec", "replicas"))
	}
	if dig(t, container, "ports", 0, "containerPort") != 9308 || dig(t, svc, "spec", "ports", 0, "targetPort") != dig(t, container, "ports", 0, "name") {
		t.Error("container and Service ports disagree")
	}
	if dig(t, sm, "spec", "endpoints", 0, "port") != dig(t, svc, "spec", "ports", 0, "name") {
		t.Error("the ServiceMonitor scrapes a port the Service does not name")
	}
	if dig(t, svc, "metadata", "name") != "kafka-rebalance-exporter" || podLabels[dig(t, sm, "spec", "jobLabel").(string)] != "kafka-rebalance-exporter" {
		t.Error(`the scrape job must be "kafka-rebalance-exporter", as KafkaExporterDown expects`)
	}
	kust := deployFile(t, "kustomization.yaml")
	entries, err := os.ReadDir(filepath.Join("..", "deploy", "kubernetes"))
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, r := range dig(t, kust, "resources").([]any) {
		listed[r.(string)] = true
	}
	for _, e := range entries {
		if n := e.Name(); n != "kustomization.yaml" && strings.HasSuffix(n, ".yaml") && !listed[n] {
			t.Errorf("kustomization.yaml does not list %s", n)
		}
	}
}

func yamlString(v any) string {
	b, _ := yaml.Marshal(v)
	return string(b)
}
