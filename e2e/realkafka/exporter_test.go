package realkafka

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/realkafka"
)

// exporter is a running exporter binary.
type exporter struct {
	proc *realkafka.Proc
	addr string
}

// startExporter runs the exporter with short poll intervals on the
// PLAINTEXT listener, plus env (KEY=VALUE) overrides.
func startExporter(t testing.TB, groupInclude string, env ...string) *exporter {
	t.Helper()
	return startExporterLog(t, groupInclude, nil, env...)
}

// startExporterLog is startExporter with onLog receiving every line the
// exporter logs (it logs to standard error).
func startExporterLog(t testing.TB, groupInclude string, onLog realkafka.LineFunc, env ...string) *exporter {
	t.Helper()
	addr := freeAddr(t)
	base := []string{
		"KRE_BROKERS=" + realkafka.Bootstrap(world.cluster.Plaintext),
		"KRE_LISTEN_ADDRESS=" + addr,
		"KRE_GROUP_POLL_INTERVAL=500ms",
		"KRE_POLL_INTERVAL=1s",
		"KRE_LOG_FORMAT=console",
		"KRE_GROUP_INCLUDE=" + groupInclude,
		"KRE_REBALANCE_HISTORY=100",
	}
	p, err := realkafka.StartProc("exporter", append(base, env...), nil, onLog, world.exporter)
	if err != nil {
		t.Fatal(err)
	}
	e := &exporter{proc: p, addr: addr}
	t.Cleanup(func() {
		if !p.Stop(10 * time.Second) {
			t.Errorf("exporter did not stop within 10s of SIGTERM")
		}
		if t.Failed() {
			t.Logf("exporter output:\n%s", p.Tail())
		}
	})
	eventually(t, 2*time.Minute, "exporter ready", func() error {
		if p.Exited() {
			return fmt.Errorf("%w: exporter exited:\n%s", errStop, p.Tail())
		}
		_, err := httpGet("http://" + addr + "/readyz")
		return err
	})
	return e
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func httpGet(url string) ([]byte, error) {
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return body, fmt.Errorf("GET %s: %s: %.300s", url, resp.Status, body)
	}
	return body, nil
}

// metrics is one scrape, parsed by expfmt.
type metrics struct {
	at       time.Time
	families map[string]*dto.MetricFamily
}

func (e *exporter) scrape() (metrics, error) {
	at := time.Now()
	body, err := httpGet("http://" + e.addr + "/metrics")
	if err != nil {
		return metrics{}, err
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		return metrics{}, fmt.Errorf("parsing /metrics: %w", err)
	}
	return metrics{at: at, families: fams}, nil
}

func mustScrape(t testing.TB, e *exporter) metrics {
	t.Helper()
	m, err := e.scrape()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// sample is one series: its labels and value.
type sample struct {
	labels map[string]string
	value  float64
}

// series returns the samples of a gauge or counter family whose labels
// include match.
func (m metrics) series(name string, match map[string]string) []sample {
	f := m.families[name]
	if f == nil {
		return nil
	}
	var out []sample
	for _, mt := range f.GetMetric() {
		labels := map[string]string{}
		for _, lp := range mt.GetLabel() {
			labels[lp.GetName()] = lp.GetValue()
		}
		if !matches(labels, match) {
			continue
		}
		v := 0.0
		switch {
		case mt.Gauge != nil:
			v = mt.GetGauge().GetValue()
		case mt.Counter != nil:
			v = mt.GetCounter().GetValue()
		case mt.Untyped != nil:
			v = mt.GetUntyped().GetValue()
		}
		out = append(out, sample{labels: labels, value: v})
	}
	return out
}

func matches(labels, match map[string]string) bool {
	for k, v := range match {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// value is the single series' value; ok is false when there is none.
func (m metrics) value(name string, match map[string]string) (float64, bool) {
	s := m.series(name, match)
	if len(s) != 1 {
		return 0, false
	}
	return s[0].value, true
}

// sum adds every series that matches (0 when none).
func (m metrics) sum(name string, match map[string]string) float64 {
	total := 0.0
	for _, s := range m.series(name, match) {
		total += s.value
	}
	return total
}

// pollTime is the exporter's last successful poll of loop ("groups",
// "offsets").
func (m metrics) pollTime(loop string) time.Time {
	v, _ := m.value("kafka_rebalance_exporter_last_successful_poll_timestamp_seconds", map[string]string{"loop": loop})
	return time.Unix(0, int64(v*1e9))
}

// groupView is the exporter's /api/v1/groups/{group} answer, the fields
// the tests compare.
type groupView struct {
	Name        string    `json:"name"`
	Type        string    `json:"type"`
	State       string    `json:"state"`
	Assignor    string    `json:"assignor"`
	Coordinator int32     `json:"coordinator"`
	ObservedAt  time.Time `json:"observed_at"`
	Members     []struct {
		MemberID           string             `json:"member_id"`
		ClientID           string             `json:"client_id"`
		ClientHost         string             `json:"client_host"`
		Assignment         map[string][]int32 `json:"assignment"`
		Generation         *int32             `json:"kip792_generation"`
		MemberEpoch        *int32             `json:"member_epoch"`
		TargetAssignment   map[string][]int32 `json:"target_assignment"`
		SessionTimeoutMs   *int64             `json:"session_timeout_ms"`
		RebalanceTimeoutMs *int64             `json:"rebalance_timeout_ms"`
	} `json:"members"`
	Generation       *int32 `json:"generation"`
	GenerationSource string `json:"generation_source"`
	Rebalances       uint64 `json:"rebalances"`
	OffsetsLog       *struct {
		Live       bool   `json:"live"`
		Generation *int32 `json:"generation"`
		Commits    uint64 `json:"commits"`
	} `json:"offsets_log"`
	Rebalancing bool            `json:"rebalancing"`
	History     json.RawMessage `json:"recent_rebalances"`
}

// group reads the exporter's JSON view of group; ok is false on 404.
func (e *exporter) group(name string) (groupView, bool, error) {
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + e.addr + "/api/v1/groups/" + name)
	if err != nil {
		return groupView{}, false, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return groupView{}, false, err
	}
	if resp.StatusCode == http.StatusNotFound {
		return groupView{}, false, nil
	}
	if resp.StatusCode != http.StatusOK {
		return groupView{}, false, fmt.Errorf("group %s: %s: %.300s", name, resp.Status, body)
	}
	var g groupView
	if err := json.Unmarshal(body, &g); err != nil {
		return groupView{}, false, fmt.Errorf("group %s: %w: %.300s", name, err, body)
	}
	return g, true, nil
}

func (g groupView) generation() int32 {
	if g.Generation == nil {
		return -1
	}
	return *g.Generation
}

func (g groupView) String() string {
	ids := make([]string, 0, len(g.Members))
	for _, m := range g.Members {
		ids = append(ids, m.ClientID)
	}
	return fmt.Sprintf("%s state=%s gen=%d(%s) rebalances=%d rebalancing=%v members=[%s] observed=%s",
		g.Name, g.State, g.generation(), g.GenerationSource, g.Rebalances, g.Rebalancing, strings.Join(ids, ","), g.ObservedAt.Format("15:04:05.000"))
}
