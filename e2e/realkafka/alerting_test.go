package realkafka

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/realkafka"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/testkit"
)

// ruleScale divides every range window and `for:` of the shipped rules, so
// that the storm alert's 15 minutes become 30 seconds; thresholds are rates
// and stay.
const ruleScale = 30

var promDur = regexp.MustCompile(`^(\d+)(s|m|h)$`)
var rangeSel = regexp.MustCompile(`\[(\d+(?:s|m|h))\]`)

func scaleDuration(t testing.TB, s string) string {
	t.Helper()
	m := promDur.FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("rule duration %q: not NNs/m/h", s)
	}
	n, _ := strconv.Atoi(m[1])
	unit := map[string]int{"s": 1, "m": 60, "h": 3600}[m[2]]
	return strconv.Itoa(max(n*unit/ruleScale, 1)) + "s"
}

// writeShortRules writes alerts/*.yml with scaled windows into dir.
func writeShortRules(t testing.TB, dir string) []string {
	t.Helper()
	root, err := realkafka.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range []string{"alerts/alerts.yml", "alerts/recording-rules.yml"} {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Groups []map[string]any `yaml:"groups"`
		}
		if err := yaml.Unmarshal(b, &doc); err != nil {
			t.Fatal(err)
		}
		for _, g := range doc.Groups {
			rules, _ := g["rules"].([]any)
			for _, r := range rules {
				rule := r.(map[string]any)
				expr := fmt.Sprint(rule["expr"])
				rule["expr"] = rangeSel.ReplaceAllStringFunc(expr, func(s string) string { return "[" + scaleDuration(t, s[1:len(s)-1]) + "]" })
				if f, ok := rule["for"].(string); ok {
					rule["for"] = scaleDuration(t, f)
				}
			}
		}
		nb, err := yaml.Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.Base(f))
		if err := os.WriteFile(p, nb, 0o644); err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

func writePromConfig(t testing.TB, dir string, rules []string, amAddr, exporterAddr string) string {
	t.Helper()
	cfg := map[string]any{
		"global":     map[string]any{"scrape_interval": "1s", "evaluation_interval": "1s"},
		"rule_files": rules,
		"alerting":   map[string]any{"alertmanagers": []any{map[string]any{"static_configs": []any{map[string]any{"targets": []string{amAddr}}}}}},
		"scrape_configs": []any{map[string]any{"job_name": "kafka-rebalance-exporter",
			"static_configs": []any{map[string]any{"targets": []string{exporterAddr}}}}},
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

func lookTool(t testing.TB, names ...string) string {
	t.Helper()
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	t.Fatalf("none of %v installed: run scripts/install-test-deps.sh", names)
	return ""
}

// TestStormAlertReachesAlertmanager: a real Prometheus with the shipped
// rules (windows shortened) scrapes the exporter watching the real cluster
// while a Java group is in a rebalance storm; KafkaConsumerGroupRebalanceStorm
// must reach a real Alertmanager for that group.
func TestStormAlertReachesAlertmanager(t *testing.T) {
	root, err := realkafka.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	adm := admin(t)
	group := "storm-" + world.run
	createTopic(t, adm, group, 6)
	e := startExporter(t, group)
	dir := t.TempDir()
	amAddr, promAddr := testkit.FreeAddr(t), testkit.FreeAddr(t)
	am := testkit.StartT(t, "alertmanager", dir, nil, lookTool(t, "prometheus-alertmanager", "alertmanager"),
		"--config.file="+filepath.Join(root, "deploy", "alertmanager.yml"), "--storage.path="+filepath.Join(dir, "am"),
		"--web.listen-address="+amAddr, "--cluster.listen-address=")
	prom := testkit.StartT(t, "prometheus", dir, nil, lookTool(t, "prometheus"),
		"--config.file="+writePromConfig(t, dir, writeShortRules(t, dir), amAddr, e.addr),
		"--storage.tsdb.path="+filepath.Join(dir, "prom"), "--web.listen-address="+promAddr, "--rules.alert.resend-delay=1s")
	testkit.WaitHTTP(t, am, "http://"+amAddr+"/-/ready", 2*time.Minute)
	testkit.WaitHTTP(t, prom, "http://"+promAddr+"/-/ready", 2*time.Minute)

	startMember(t, realkafka.KindJavaEager, group+"-steady", group, group)
	stop := make(chan struct{})
	churned := make(chan int)
	go churn(t, group, stop, churned)
	eventually(t, 4*time.Minute, "KafkaConsumerGroupRebalanceStorm in Alertmanager", func() error {
		if ok, _ := prom.Exited(); ok {
			return fmt.Errorf("%w: prometheus exited", errStop)
		}
		return alertIn(amAddr, "KafkaConsumerGroupRebalanceStorm", group)
	})
	close(stop)
	t.Logf("the storm alert reached Alertmanager after %d churn rounds", <-churned)
}

// churn starts and stops members of group until stop is closed; it sends
// the number of rounds on done.
func churn(t *testing.T, group string, stop chan struct{}, done chan<- int) {
	n := 0
	defer func() { done <- n }()
	for {
		select {
		case <-stop:
			return
		default:
		}
		n++
		m := startMember(t, realkafka.KindJavaEager, fmt.Sprintf("%s-churn%d", group, n), group, group)
		err := m.WaitFor(time.Minute, "assignment", func(evs []realkafka.Event) bool {
			for _, e := range evs {
				if e.Name == realkafka.EvAssigned && len(e.Partitions) > 0 {
					return true
				}
			}
			return false
		})
		m.Stop(30 * time.Second)
		if err != nil {
			t.Errorf("churn member: %v", err)
			return
		}
	}
}

// alertIn checks Alertmanager's API for alert name on group.
func alertIn(amAddr, name, group string) error {
	body, err := testkit.HTTPGet("http://" + amAddr + "/api/v2/alerts")
	if err != nil {
		return err
	}
	var alerts []struct {
		Labels map[string]string `json:"labels"`
	}
	if err := json.Unmarshal(body, &alerts); err != nil {
		return err
	}
	var seen []string
	for _, a := range alerts {
		if a.Labels["alertname"] == name && a.Labels["consumergroup"] == group {
			return nil
		}
		seen = append(seen, a.Labels["alertname"]+"/"+a.Labels["consumergroup"])
	}
	return fmt.Errorf("alertmanager has %v", seen)
}
