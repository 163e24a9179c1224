package helm

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/rs/zerolog"
	"golang.org/x/crypto/bcrypt"
	"gopkg.in/yaml.v3"
	corev1 "k8s.io/api/core/v1"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/collector"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/config"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/rebalance"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/store"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/testkit"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/web"
)

// The job name alerts/alerts.yml's KafkaExporterDown expects.
const job = "kafka-rebalance-exporter"

// secrets stands for the Secrets and ConfigMaps a value set names: object
// name -> key -> content, written where the pod would mount them.
type secrets map[string]map[string][]byte

// valueSets are the value sets that must render, with the objects they
// name.
func valueSets(t *testing.T) map[string]struct {
	values  string
	objects secrets
} {
	ca := testkit.NewCA(t, "kafka-ca")
	client := ca.Client(t, "exporter")
	server := ca.Server(t, "kre.monitoring.svc")
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]struct {
		values  string
		objects secrets
	}{
		"defaults": {values: ""},
		"shards=3": {values: "shards: 3\nbrokers: [kafka-0.kafka:9092, kafka-1.kafka:9092]\n"},
		"monitoring": {values: `
serviceMonitor: {enabled: true, labels: {release: prometheus}}
prometheusRule: {enabled: true, labels: {release: prometheus}}
env: {KRE_TELEMETRY_PATH: /kafka-metrics}
`},
		"secured": {
			values: `
shards: 2
brokers: [kafka-0.kafka:9093]
constLabels: {cluster: prod, region: eu}
env: {KRE_LOG_LEVEL: debug, KRE_TLS_SERVER_NAME: kafka.internal, KRE_MAX_GROUPS: 5000, KRE_LAG_EXACT_CACHE_SIZE: 1000000, KRE_STATUS_STOP_FACTOR: 2.5, KRE_LAG_EXACT: true}
sasl:
  mechanism: SCRAM-SHA-512
  username: exporter
  passwordSecret: {name: kafka-exporter-password, key: password}
tls:
  enabled: true
  secret: {name: kafka-exporter-tls, caKey: ca.crt, certKey: tls.crt, keyKey: tls.key}
webConfig: {secretName: kre-web, key: web.yml, scheme: HTTPS}
serviceMonitor:
  enabled: true
  endpoint:
    tlsConfig: {insecureSkipVerify: true}
`,
			objects: secrets{
				"kafka-exporter-password": {"password": []byte("s3cret\n"), "other": []byte("not mounted")},
				"kafka-exporter-tls":      {"ca.crt": ca.PEM, "tls.crt": client.CertPEM, "tls.key": client.KeyPEM},
				"kre-web": {
					"web.yml": []byte("tls_server_config:\n  cert_file: /etc/kafka-rebalance-exporter/web/tls.crt\n  key_file: /etc/kafka-rebalance-exporter/web/tls.key\n"),
					"tls.crt": server.CertPEM, "tls.key": server.KeyPEM,
				},
			},
		},
		"basic auth, system roots": {
			values: `
tls: {enabled: true}
webConfig: {configMapName: kre-web, basicAuth: true}
`,
			objects: secrets{"kre-web": {"web-config.yml": fmt.Appendf(nil, "basic_auth_users:\n  prometheus: %s\n", hash)}},
		},
	}
}

func TestChartRendersValidObjects(t *testing.T) {
	names := settings(t)
	for name, set := range valueSets(t) {
		t.Run(name, func(t *testing.T) {
			r := mustRender(t, set.values)
			var vals struct {
				Shards      int               `yaml:"shards"`
				Env         map[string]any    `yaml:"env"`
				ConstLabels map[string]string `yaml:"constLabels"`
				WebConfig   struct {
					BasicAuth bool   `yaml:"basicAuth"`
					Scheme    string `yaml:"scheme"`
				} `yaml:"webConfig"`
			}
			if err := yaml.Unmarshal([]byte(set.values), &vals); err != nil {
				t.Fatal(err)
			}
			if vals.Shards == 0 {
				vals.Shards = 1
			}
			if len(r.Services) != 1 {
				t.Fatalf("%d Services, want 1", len(r.Services))
			}
			svc := r.Services[0]
			var pod corev1.PodTemplateSpec
			var selector map[string]string
			if vals.Shards > 1 {
				if len(r.StatefulSets) != 1 || len(r.Deployments) != 0 {
					t.Fatalf("shards %d: %d StatefulSets, %d Deployments; want a StatefulSet", vals.Shards, len(r.StatefulSets), len(r.Deployments))
				}
				sts := r.StatefulSets[0]
				if sts.Spec.Replicas == nil || int(*sts.Spec.Replicas) != vals.Shards {
					t.Errorf("replicas %v, want %d", sts.Spec.Replicas, vals.Shards)
				}
				if sts.Spec.ServiceName != svc.Name || svc.Spec.ClusterIP != corev1.ClusterIPNone {
					t.Errorf("the StatefulSet's serviceName %q must be the headless Service (%q, clusterIP %q), so every shard is scraped", sts.Spec.ServiceName, svc.Name, svc.Spec.ClusterIP)
				}
				pod, selector = sts.Spec.Template, sts.Spec.Selector.MatchLabels
			} else {
				if len(r.Deployments) != 1 || len(r.StatefulSets) != 0 {
					t.Fatalf("%d Deployments, %d StatefulSets; want a Deployment", len(r.Deployments), len(r.StatefulSets))
				}
				d := r.Deployments[0]
				if d.Spec.Replicas == nil || *d.Spec.Replicas != 1 {
					t.Errorf("an unsharded exporter runs one replica, not %v", d.Spec.Replicas)
				}
				pod, selector = d.Spec.Template, d.Spec.Selector.MatchLabels
			}
			checkLabels(t, "pod template", pod.Labels)
			if !subset(selector, pod.Labels) || !subset(svc.Spec.Selector, pod.Labels) || len(svc.Spec.Selector) == 0 {
				t.Errorf("selectors %v (workload) and %v (Service) must match the pod labels %v", selector, svc.Spec.Selector, pod.Labels)
			}
			c := checkContainer(t, pod.Spec, names)
			for k, v := range vals.Env {
				i := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == k })
				if i < 0 || c.Env[i].Value != fmt.Sprint(v) {
					t.Errorf("env %s: %v in the values, %+v in the pod", k, v, c.Env[max(i, 0)])
				}
			}

			// The port: container, Service and ServiceMonitor agree.
			if len(c.Ports) != 1 || c.Ports[0].Name != "metrics" || c.Ports[0].ContainerPort != 9308 {
				t.Errorf("container ports %+v, want metrics 9308", c.Ports)
			}
			if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Name != "metrics" || svc.Spec.Ports[0].Port != 9308 || svc.Spec.Ports[0].TargetPort.String() != "metrics" {
				t.Errorf("Service ports %+v, want metrics 9308 -> metrics", svc.Spec.Ports)
			}

			// The exporter accepts the environment, with the mounted files.
			podName := r.name(t) + "-" + strconv.Itoa(vals.Shards-1)
			cfg := acceptedByExporter(t, pod.Spec, podName, set.objects)
			if cfg.Filters.Shard.Count != vals.Shards || cfg.Filters.Shard.Index != vals.Shards-1 {
				t.Errorf("pod %s: shard %+v, want %d of %d", podName, cfg.Filters.Shard, vals.Shards-1, vals.Shards)
			}
			for k, v := range vals.ConstLabels {
				if cfg.Labels[k] != v {
					t.Errorf("const label %s=%q, want %q", k, cfg.Labels[k], v)
				}
			}
			telemetry := cfg.TelemetryPath

			// The probes hit what the exporter serves.
			h := handler(telemetry)
			for what, p := range map[string]*corev1.Probe{"/healthz": c.LivenessProbe, "/readyz": c.ReadinessProbe} {
				if p == nil {
					t.Fatalf("no %s probe", what)
				}
				if vals.WebConfig.BasicAuth {
					if p.TCPSocket == nil || p.TCPSocket.Port.String() != "metrics" {
						t.Errorf("with basic auth the %s probe must be a TCP check of metrics: %+v", what, p.ProbeHandler)
					}
					continue
				}
				g := p.HTTPGet
				if g == nil || g.Path != what || g.Port.String() != "metrics" {
					t.Fatalf("probe %+v, want GET %s on metrics", p.ProbeHandler, what)
				}
				if want := corev1.URISchemeHTTP; vals.WebConfig.Scheme == "HTTPS" {
					if g.Scheme != corev1.URISchemeHTTPS {
						t.Errorf("probe scheme %q with a TLS web configuration", g.Scheme)
					}
				} else if g.Scheme != want {
					t.Errorf("probe scheme %q", g.Scheme)
				}
				if code := get(h, g.Path); code == http.StatusNotFound {
					t.Errorf("probe path %s: the exporter answers 404", g.Path)
				}
			}
			if code := get(h, "/healthz"); code != http.StatusOK {
				t.Errorf("/healthz: %d", code)
			}
			if code := get(h, "/readyz"); code != http.StatusServiceUnavailable {
				t.Errorf("/readyz before any poll: %d, want 503", code)
			}

			for _, sm := range r.Monitors {
				checkServiceMonitor(t, sm, svc, telemetry, vals.WebConfig.Scheme)
			}
			for _, pr := range r.Rules {
				checkRules(t, pr)
			}
			if !strings.Contains(r.Notes, "/readyz") {
				t.Errorf("NOTES.txt: %q", r.Notes)
			}
		})
	}
}

// name is the name of the workload.
func (r *rendered) name(t *testing.T) string {
	t.Helper()
	if len(r.StatefulSets) > 0 {
		return r.StatefulSets[0].Name
	}
	return r.Deployments[0].Name
}

func subset(sub, of map[string]string) bool {
	for k, v := range sub {
		if of[k] != v {
			return false
		}
	}
	return true
}

// checkContainer checks the exporter's container: image, hardening,
// resources, and that every variable it sets is a setting of the exporter.
func checkContainer(t *testing.T, spec corev1.PodSpec, names []string) corev1.Container {
	t.Helper()
	if len(spec.Containers) != 1 {
		t.Fatalf("%d containers", len(spec.Containers))
	}
	c := spec.Containers[0]
	ch := loadChart(t)
	if want := "kafka-rebalance-exporter:" + ch.Metadata.AppVersion; c.Image != want {
		t.Errorf("image %q, want %q (the tag defaults to appVersion)", c.Image, want)
	}
	psc := spec.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
		t.Errorf("pod securityContext %+v: must run as non-root", psc)
	}
	sc := c.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("container securityContext %+v: read-only root, no privilege escalation, drop ALL", sc)
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Error("the exporter does not talk to the Kubernetes API: no service account token")
	}
	req, lim := c.Resources.Requests, c.Resources.Limits
	if req.Cpu().IsZero() || req.Memory().IsZero() || lim.Memory().IsZero() || lim.Memory().Cmp(*req.Memory()) < 0 {
		t.Errorf("resources %+v: CPU and memory requests and a memory limit above the request", c.Resources)
	}
	seen := map[string]bool{}
	for _, e := range c.Env {
		if seen[e.Name] {
			t.Errorf("env %s is set twice", e.Name)
		}
		seen[e.Name] = true
		switch {
		case e.Name == "POD_NAME":
			if e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != "metadata.name" {
				t.Errorf("POD_NAME must come from metadata.name: %+v", e)
			}
		case !slices.Contains(names, e.Name):
			t.Errorf("env %s is not a setting of the exporter (exporter -help)", e.Name)
		case e.ValueFrom != nil:
			t.Errorf("env %s from %+v: settings are plain values (secrets are files)", e.Name, e.ValueFrom)
		case e.Name == "KRE_SASL_PASSWORD":
			t.Error("the SASL password must come from a file, never from the pod spec")
		}
	}
	if seen["KRE_SHARD"] != seen["POD_NAME"] {
		t.Error("KRE_SHARD=auto needs POD_NAME")
	}
	volumes := map[string]bool{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = true
	}
	for _, m := range c.VolumeMounts {
		if !volumes[m.Name] || !m.ReadOnly {
			t.Errorf("mount %+v: no such volume, or not read-only", m)
		}
	}
	return c
}

// acceptedByExporter writes the objects' keys where the pod mounts them,
// under a temporary root, sets the container's environment (file paths
// moved under that root, POD_NAME as the pod would have it) and loads the
// exporter's configuration from it.
func acceptedByExporter(t *testing.T, spec corev1.PodSpec, podName string, objects secrets) *config.Config {
	t.Helper()
	root := t.TempDir()
	c := spec.Containers[0]
	volumes := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = v
	}
	var mounts []string
	for _, m := range c.VolumeMounts {
		v := volumes[m.Name]
		var name string
		var items []corev1.KeyToPath
		switch {
		case v.Secret != nil:
			name, items = v.Secret.SecretName, v.Secret.Items
		case v.ConfigMap != nil:
			name, items = v.ConfigMap.Name, v.ConfigMap.Items
		default:
			t.Fatalf("volume %s: neither a Secret nor a ConfigMap", v.Name)
		}
		data, ok := objects[name]
		if !ok {
			t.Fatalf("the pod mounts %s, which the test does not provide", name)
		}
		if items == nil {
			for k := range data {
				items = append(items, corev1.KeyToPath{Key: k, Path: k})
			}
		}
		dir := filepath.Join(root, m.MountPath)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, it := range items {
			b, ok := data[it.Key]
			if !ok {
				t.Fatalf("the pod mounts key %s of %s, which it does not hold", it.Key, name)
			}
			if err := os.WriteFile(filepath.Join(dir, it.Path), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		mounts = append(mounts, m.MountPath+"/")
	}
	// The web configuration names files by their path in the pod.
	for _, m := range mounts {
		entries, _ := os.ReadDir(filepath.Join(root, m))
		for _, e := range entries {
			p := filepath.Join(root, m, e.Name())
			b, _ := os.ReadFile(p)
			if err := os.WriteFile(p, []byte(strings.ReplaceAll(string(b), " /etc/", " "+root+"/etc/")), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, config.Prefix+"_") || k == "POD_NAME" {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
	for _, e := range c.Env {
		v := e.Value
		if e.ValueFrom != nil {
			v = podName
		}
		if strings.HasSuffix(e.Name, "_FILE") {
			if !slices.ContainsFunc(mounts, func(m string) bool { return strings.HasPrefix(v, m) }) {
				t.Errorf("%s=%s is not in a mounted volume (%v)", e.Name, v, mounts)
			}
			v = filepath.Join(root, v)
		}
		t.Setenv(e.Name, v)
	}
	cfg, err := config.Load()
	if err != nil {
		t.Fatalf("the exporter refuses the pod's environment: %v", err)
	}
	return cfg
}

func handler(telemetryPath string) http.Handler {
	st := store.New(store.Options{Log: zerolog.Nop(), Analyzers: store.Analyzers{Rebalance: rebalance.NewTracker(rebalance.Options{})}})
	live, err := collector.LiveRegistry(st, collector.Options{})
	if err != nil {
		panic(err)
	}
	metrics := web.MetricsOptions{Render: collector.SnapshotRenderer(collector.Options{}), Live: live, MaxInFlight: 4, Log: zerolog.Nop()}
	return web.Handler(web.Options{TelemetryPath: telemetryPath, Metrics: metrics, Source: st, Log: zerolog.Nop(), Groups: web.Groups{}})
}

func get(h http.Handler, path string) int {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Code
}
