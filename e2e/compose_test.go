package e2e

import (
	"maps"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// composeFile is the part of docker-compose.yml the tests read. Short
// syntax only: the file is ours, and the test keeps it that way.
type composeFile struct {
	Name     string                    `yaml:"name"`
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Image string `yaml:"image"`
	Build *struct {
		Context    string            `yaml:"context"`
		Dockerfile string            `yaml:"dockerfile"`
		Target     string            `yaml:"target"`
		Args       map[string]string `yaml:"args"`
	} `yaml:"build"`
	Command     []string          `yaml:"command"`
	Ports       []string          `yaml:"ports"`
	Volumes     []string          `yaml:"volumes"`
	Environment map[string]string `yaml:"environment"`
	DependsOn   yaml.Node         `yaml:"depends_on"`
}

func loadCompose(t testing.TB) composeFile {
	t.Helper()
	b := readFile(t, repoPath(t, "docker-compose.yml"))
	var c composeFile
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return c
}

// mounts maps a service's container paths to repository paths, for bind
// mounts of files in this repository.
func (s composeService) mounts() map[string]string {
	out := map[string]string{}
	for _, v := range s.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) < 2 || !strings.HasPrefix(parts[0], "./") {
			continue
		}
		out[parts[1]] = filepath.Clean(strings.TrimPrefix(parts[0], "./"))
	}
	return out
}

// resolve maps a container path to the repository file behind it.
func (s composeService) resolve(containerPath string) (string, bool) {
	for target, src := range s.mounts() {
		if containerPath == target {
			return src, true
		}
		if strings.HasPrefix(containerPath, strings.TrimSuffix(target, "/")+"/") {
			return filepath.Join(src, strings.TrimPrefix(containerPath, strings.TrimSuffix(target, "/")+"/")), true
		}
	}
	return "", false
}

// containerPorts lists the container side of the published ports.
func (s composeService) containerPorts() map[string]bool {
	out := map[string]bool{}
	for _, p := range s.Ports {
		parts := strings.Split(p, ":")
		out[strings.Split(parts[len(parts)-1], "/")[0]] = true
	}
	return out
}

// flagValue returns --name=value from a command.
func flagValue(cmd []string, name string) string {
	for _, a := range cmd {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v
		}
	}
	return ""
}

var pinnedImage = regexp.MustCompile(`^[a-z0-9./_-]+:v?\d+\.\d+\.\d+([-.][A-Za-z0-9.]+)?$`)

func TestComposeFile(t *testing.T) {
	c := loadCompose(t)
	for _, name := range []string{"kafka", "exporter", "loadgen", "prometheus", "alertmanager", "grafana"} {
		if _, ok := c.Services[name]; !ok {
			t.Errorf("service %s missing", name)
		}
	}
	stages := dockerfileStages(t, parseDockerfile(t))
	for name, s := range c.Services {
		switch {
		case s.Build != nil:
			if s.Build.Context != "." || (s.Build.Dockerfile != "" && s.Build.Dockerfile != "Dockerfile") {
				t.Errorf("%s: builds from %s/%s, want the repository's Dockerfile", name, s.Build.Context, s.Build.Dockerfile)
			}
			if !stages[s.Build.Target] {
				t.Errorf("%s: build target %q is not a stage of the Dockerfile (stages %v)", name, s.Build.Target, slices.Sorted(maps.Keys(stages)))
			}
		case !pinnedImage.MatchString(s.Image):
			t.Errorf("%s: image %q is not pinned to a full version", name, s.Image)
		}
		for _, v := range s.Volumes {
			src := strings.Split(v, ":")[0]
			if strings.HasPrefix(src, "./") {
				if _, err := os.Stat(repoPath(t, src)); err != nil {
					t.Errorf("%s: mounts %s, which does not exist", name, src)
				}
			} else if _, ok := c.Volumes[src]; !ok {
				t.Errorf("%s: volume %s is not declared under volumes", name, src)
			}
		}
		var deps []string
		switch s.DependsOn.Kind {
		case yaml.SequenceNode:
			_ = s.DependsOn.Decode(&deps)
		case yaml.MappingNode:
			var m map[string]any
			_ = s.DependsOn.Decode(&m)
			deps = slices.Sorted(maps.Keys(m))
		}
		for _, d := range deps {
			if _, ok := c.Services[d]; !ok {
				t.Errorf("%s: depends on unknown service %s", name, d)
			}
		}
	}

	// Kafka clients inside the network use an advertised listener.
	kafka := c.Services["kafka"]
	if !strings.HasPrefix(kafka.Image, "apache/kafka:") {
		t.Errorf("kafka: image %q, want the official apache/kafka", kafka.Image)
	}
	advertised := strings.Split(kafka.Environment["KAFKA_ADVERTISED_LISTENERS"], ",")
	for _, client := range []string{"exporter", "loadgen"} {
		for _, b := range strings.Split(c.Services[client].Environment["KRE_BROKERS"], ",") {
			found := false
			for _, l := range advertised {
				if strings.HasSuffix(l, "://"+b) {
					found = true
				}
			}
			if !found {
				t.Errorf("%s: KRE_BROKERS %s is not an advertised listener of kafka (%v)", client, b, advertised)
			}
		}
	}
}

// TestComposeAgreesWithPrometheusConfig follows every address and path in
// deploy/prometheus.yml to the compose service and file behind it.
func TestComposeAgreesWithPrometheusConfig(t *testing.T) {
	c := loadCompose(t)
	prom := c.Services["prometheus"]
	cfgFile, ok := prom.resolve(flagValue(prom.Command, "config.file"))
	if !ok || cfgFile != filepath.Join("deploy", "prometheus.yml") {
		t.Fatalf("prometheus: --config.file %q is not deploy/prometheus.yml mounted into the container", flagValue(prom.Command, "config.file"))
	}
	cfg := loadPrometheusConfig(t, repoPath(t, cfgFile))

	// Rule files: each loaded one is a mounted rule file of alerts/, and
	// every rule file of alerts/ is loaded.
	loaded := map[string]bool{}
	for _, rf := range cfg.RuleFiles {
		src, ok := prom.resolve(rf)
		if !ok {
			t.Errorf("prometheus.yml loads %s, which no volume of the prometheus service provides", rf)
			continue
		}
		loaded[filepath.ToSlash(src)] = true
	}
	for _, rf := range ruleFiles {
		if !loaded[rf] {
			t.Errorf("%s is not loaded by deploy/prometheus.yml through a compose mount (loaded: %v)", rf, slices.Sorted(maps.Keys(loaded)))
		}
	}

	jobs := map[string][]string{}
	for _, sc := range cfg.ScrapeConfigs {
		for _, s := range sc.StaticConfigs {
			jobs[sc.JobName] = append(jobs[sc.JobName], s.Targets...)
		}
	}
	exporterTargets := jobs["kafka-rebalance-exporter"]
	if len(exporterTargets) == 0 {
		t.Fatal("prometheus.yml has no kafka-rebalance-exporter job (KafkaExporterDown expects that name)")
	}
	exporterPort := listenPort(c.Services["exporter"].Environment["KRE_LISTEN_ADDRESS"], "9308")
	if !dockerfileExposes(t, exporterPort) {
		t.Errorf("the Dockerfile does not EXPOSE the exporter's port %s", exporterPort)
	}
	for _, target := range exporterTargets {
		checkTarget(t, c, target, "exporter", exporterPort)
	}
	var amTargets []string
	for _, am := range cfg.Alerting.Alertmanagers {
		for _, s := range am.StaticConfigs {
			amTargets = append(amTargets, s.Targets...)
		}
	}
	if len(amTargets) == 0 {
		t.Error("prometheus.yml sends alerts to no alertmanager")
	}
	am := c.Services["alertmanager"]
	for _, target := range amTargets {
		checkTarget(t, c, target, "alertmanager", listenPort(flagValue(am.Command, "web.listen-address"), "9093"))
	}
	amCfg, ok := am.resolve(flagValue(am.Command, "config.file"))
	if !ok || amCfg != filepath.Join("deploy", "alertmanager.yml") {
		t.Errorf("alertmanager: --config.file is not deploy/alertmanager.yml mounted into the container")
	}
}

func TestComposeAgreesWithGrafanaProvisioning(t *testing.T) {
	c := loadCompose(t)
	g := c.Services["grafana"]
	if src, ok := g.resolve("/etc/grafana/provisioning/datasources/prometheus.yml"); !ok || src != filepath.Join("grafana", "provisioning", "datasources", "prometheus.yml") {
		t.Errorf("grafana: grafana/provisioning is not mounted at /etc/grafana/provisioning")
	}
	for _, ds := range loadGrafanaDatasources(t).Datasources {
		u, err := url.Parse(ds.URL)
		if err != nil {
			t.Fatalf("datasource url %q: %v", ds.URL, err)
		}
		checkTarget(t, c, u.Host, "prometheus", listenPort(flagValue(c.Services["prometheus"].Command, "web.listen-address"), "9090"))
	}
	for _, p := range loadGrafanaProviders(t).Providers {
		src, ok := g.resolve(p.Options.Path)
		if !ok || src != filepath.Join("grafana", "dashboards") {
			t.Errorf("grafana: dashboard provider path %s is not grafana/dashboards mounted into the container", p.Options.Path)
		}
	}
	if home := g.Environment["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]; home != "" {
		src, ok := g.resolve(home)
		if !ok {
			t.Errorf("grafana: home dashboard %s is not mounted", home)
		} else if _, err := os.Stat(repoPath(t, src)); err != nil {
			t.Errorf("grafana: home dashboard %s: %v", home, err)
		}
	}
}

// checkTarget requires host:port to name a compose service that listens on
// that port.
func checkTarget(t testing.TB, c composeFile, target, wantService, wantPort string) {
	t.Helper()
	host, port, err := net.SplitHostPort(target)
	if err != nil {
		t.Errorf("target %q: %v", target, err)
		return
	}
	if host != wantService {
		t.Errorf("target %s: host should be the compose service %s", target, wantService)
	}
	if _, ok := c.Services[host]; !ok {
		t.Errorf("target %s: no compose service %s", target, host)
	}
	if port != wantPort {
		t.Errorf("target %s: %s listens on %s", target, wantService, wantPort)
	}
	if !c.Services[wantService].containerPorts()[wantPort] {
		t.Errorf("service %s does not publish port %s (ports %v)", wantService, wantPort, c.Services[wantService].Ports)
	}
}

// listenPort is the port of a listen address such as ":9308", or def.
func listenPort(addr, def string) string {
	if addr == "" {
		return def
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return def
	}
	return port
}

// prometheusConfig is the part of prometheus.yml the checks read. The
// end-to-end test rewrites a generic copy instead, so no key is lost.
type prometheusConfig struct {
	RuleFiles []string `yaml:"rule_files"`
	Alerting  struct {
		Alertmanagers []struct {
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"alertmanagers"`
	} `yaml:"alerting"`
	ScrapeConfigs []struct {
		JobName       string `yaml:"job_name"`
		StaticConfigs []struct {
			Targets []string `yaml:"targets"`
		} `yaml:"static_configs"`
	} `yaml:"scrape_configs"`
}

func loadPrometheusConfig(t testing.TB, p string) prometheusConfig {
	var cfg prometheusConfig
	loadYAML(t, p, &cfg)
	return cfg
}

// TestDeployConfigsAreValid runs the tools' own checkers: promtool on
// deploy/prometheus.yml (with its rule files mapped to this repository, as
// compose mounts them) and amtool on deploy/alertmanager.yml.
func TestDeployConfigsAreValid(t *testing.T) {
	promtool := tool(t, "promtool")
	amtool := tool(t, "amtool")
	c := loadCompose(t)
	prom := c.Services["prometheus"]

	var doc map[string]any
	loadYAML(t, repoPath(t, "deploy", "prometheus.yml"), &doc)
	rfs, _ := doc["rule_files"].([]any)
	for i, rf := range rfs {
		src, ok := prom.resolve(rf.(string))
		if !ok {
			t.Fatalf("rule file %v is not mounted", rf)
		}
		rfs[i] = repoPath(t, src)
	}
	b, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	p := path.Join(t.TempDir(), "prometheus.yml")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := run(t, repoRoot(t), nil, promtool, "check", "config", p); err != nil {
		t.Errorf("promtool check config deploy/prometheus.yml: %v\n%s", err, out)
	}
	if out, err := run(t, repoRoot(t), nil, amtool, "check-config", repoPath(t, "deploy", "alertmanager.yml")); err != nil {
		t.Errorf("amtool check-config deploy/alertmanager.yml: %v\n%s", err, out)
	}
}
