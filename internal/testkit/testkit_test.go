package testkit

import (
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestPoll(t *testing.T) {
	calls := 0
	if err := Poll(time.Second, time.Millisecond, func() error {
		if calls++; calls < 3 {
			return errors.New("not yet")
		}
		return nil
	}); err != nil || calls != 3 {
		t.Fatalf("Poll = %v after %d calls, want nil after 3", err, calls)
	}

	calls = 0
	gone := fmt.Errorf("%w: it exited", ErrStop)
	if err := Poll(time.Minute, time.Millisecond, func() error { calls++; return gone }); err != gone || calls != 1 {
		t.Fatalf("Poll = %v after %d calls, want the ErrStop error after 1", err, calls)
	}

	last := errors.New("still waiting")
	err := Poll(20*time.Millisecond, time.Millisecond, func() error { return last })
	if !errors.Is(err, last) || !strings.Contains(err.Error(), "not reached within 20ms: still waiting") {
		t.Fatalf("Poll after the timeout = %v, want it to wrap the last error", err)
	}
}

// oddValues are label values with quotes, backslashes, separators,
// newlines and non-ASCII.
var oddValues = []string{"", `q"uote`, `back\slash`, `,a="x"`, "}", "{", "line\nbreak", "tab\t", "ünï", `a=\"b\"`, "="}

func collectors() []prometheus.Collector {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "a_total", Help: "x"}, []string{"x", "y"})
	for i, v := range oddValues {
		c.WithLabelValues(fmt.Sprint(i), v).Add(float64(i + 1))
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "b", Help: "x"})
	g.Set(1.5)
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "h_seconds", Help: "x", Buckets: []float64{0.5, 1, 2.5}}, []string{"stage"})
	for _, v := range []float64{0.1, 0.7, 3} {
		h.WithLabelValues("connect").Observe(v)
	}
	s := prometheus.NewSummary(prometheus.SummaryOpts{Name: "s_seconds", Help: "x", Objectives: map[float64]float64{0.5: 0.05}})
	s.Observe(2)
	return []prometheus.Collector{c, g, h, s}
}

// What collectors hold and what their text exposition parses back to are
// the same series, with the series Prometheus stores for histograms and
// summaries.
func TestParseReadsWhatCollectReads(t *testing.T) {
	cs := collectors()
	collected := Collect(t, cs...)
	parsed, err := Parse(strings.NewReader(Text(t, cs...)))
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(collected, parsed) {
		t.Fatalf("collected %v\nparsed    %v", collected, parsed)
	}
	for i, v := range oddValues {
		if got, ok := parsed.Get("a_total", "y", v, "x", fmt.Sprint(i)); !ok || got != float64(i+1) {
			t.Errorf("a_total{x=%d,y=%q} = %v (present %v), want %d", i, v, got, ok, i+1)
		}
	}
	for key, want := range map[string]float64{
		`b`: 1.5,
		`h_seconds_bucket{le="0.5",stage="connect"}`:  1,
		`h_seconds_bucket{le="1",stage="connect"}`:    2,
		`h_seconds_bucket{le="2.5",stage="connect"}`:  2,
		`h_seconds_bucket{le="+Inf",stage="connect"}`: 3,
		`h_seconds_count{stage="connect"}`:            3,
		`h_seconds_sum{stage="connect"}`:              3.8,
		`s_seconds{quantile="0.5"}`:                   2,
		`s_seconds_count`:                             1,
		`s_seconds_sum`:                               2,
	} {
		if got, ok := parsed[key]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", key, got, ok, want)
		}
	}
	if n := len(parsed); n != len(oddValues)+1+6+3 {
		t.Errorf("%d series, want %d: %v", n, len(oddValues)+1+6+3, parsed)
	}
}

func TestParseRejectsBrokenExposition(t *testing.T) {
	if _, err := Parse(strings.NewReader("a_total{x=\"1} 3\n")); err == nil {
		t.Fatal("an unterminated label value parsed")
	}
}

func TestSplitKeyInvertsKey(t *testing.T) {
	for _, v := range oddValues {
		key := Key("m", "b", v, "a", "x")
		name, labels, ok := SplitKey(key)
		if !ok || name != "m" || len(labels) != 2 || labels["a"] != "x" || labels["b"] != v {
			t.Errorf("SplitKey(%s) = %q %q %v", key, name, labels, ok)
		}
	}
	if name, labels, ok := SplitKey("up"); !ok || name != "up" || len(labels) != 0 {
		t.Errorf("SplitKey(up) = %q %q %v", name, labels, ok)
	}
	for _, bad := range []string{"", "m{}", "m{a}", `m{a="x"`, `m{a="x"b="y"}`, `m{a=x}`, `m{="x"}`} {
		if _, _, ok := SplitKey(bad); ok {
			t.Errorf("SplitKey(%s) accepted", bad)
		}
	}
}

func TestMatchSumAndLabelValues(t *testing.T) {
	s := Series{
		Key("lag", "group", "g", "topic", "t1"):  3,
		Key("lag", "group", "g", "topic", "t2"):  4,
		Key("lag", "group", "gg", "topic", "t1"): 5,
		Key("lag", "group", `x",group="g`):       6,
		Key("lag_sum", "group", "g"):             7,
		Key("up"):                                1,
	}
	if got := s.Match("lag", "group", "g"); len(got) != 2 || s.Sum("lag", "group", "g") != 7 {
		t.Errorf("Match(lag, group=g) = %v", got)
	}
	if got := s.Match("", "group", "g"); len(got) != 3 {
		t.Errorf("Match(any, group=g) = %v", got)
	}
	if got := s.Match("lag"); len(got) != 4 {
		t.Errorf("Match(lag) = %v", got)
	}
	if got := s.Sum("nothing"); got != 0 {
		t.Errorf("Sum of nothing = %v", got)
	}
	lv := s.LabelValues()
	if len(lv) != 3 || len(lv["up"]) != 0 || len(lv["lag"]["group"]) != 3 || !lv["lag"]["topic"]["t2"] || !lv["lag"]["group"][`x",group="g`] {
		t.Errorf("LabelValues = %v", lv)
	}
}

func TestHTTPGetAndScrape(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.Error(w, "no such page", http.StatusNotFound)
			return
		}
		fmt.Fprint(w, "# TYPE up gauge\nup 1\n")
	}))
	defer srv.Close()
	s, err := Scrape(srv.URL + "/metrics")
	if err != nil || len(s) != 1 || s["up"] != 1 {
		t.Fatalf("Scrape = %v, %v", s, err)
	}
	body, err := HTTPGet(srv.URL + "/other")
	if err == nil || !strings.Contains(err.Error(), "404 Not Found: no such page") || !strings.Contains(string(body), "no such page") {
		t.Fatalf("HTTPGet of a 404 = %q, %v", body, err)
	}
	if code, _, err := Get(srv.URL + "/other"); err != nil || code != http.StatusNotFound {
		t.Fatalf("Get of a 404 = %d, %v", code, err)
	}
	if ports := FreePorts(t, 3); len(ports) != 3 || ports[0] == ports[1] || ports[1] == ports[2] || ports[0] == ports[2] {
		t.Fatalf("FreePorts = %v", ports)
	}
}

// TestHelperProcess is the child that the process tests start: it prints
// a line, then exits 0 on SIGTERM, or ignores SIGTERM.
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv("TESTKIT_HELPER")
	if mode == "" {
		return
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	fmt.Println("child started")
	if mode == "exit" {
		os.Exit(3)
	}
	<-term
	if mode == "ignore-term" {
		select {}
	}
	os.Exit(0)
}

func startHelper(t *testing.T, mode string) *Process {
	t.Helper()
	p := StartT(t, "helper", "", []string{"TESTKIT_HELPER=" + mode}, os.Args[0], "-test.run=^TestHelperProcess$")
	Eventually(t, 30*time.Second, 10*time.Millisecond, "the child's first line", func() error {
		if !strings.Contains(p.Out.String(), "child started") {
			return errors.New("not printed yet")
		}
		return nil
	})
	return p
}

func TestProcessStopsOnSIGTERM(t *testing.T) {
	p := startHelper(t, "term")
	if gone, err := p.Exited(); gone {
		t.Fatalf("exited early: %v", err)
	}
	if err := p.Alive(func() error { return nil })(); err != nil {
		t.Fatalf("Alive of a running process = %v", err)
	}
	if err := p.Stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := p.ExitErr(); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	if gone, _ := p.Exited(); !gone {
		t.Fatal("not exited after Stop")
	}
}

func TestProcessKilledAfterGrace(t *testing.T) {
	p := startHelper(t, "ignore-term")
	if err := p.Stop(200 * time.Millisecond); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("Stop of a process that ignores SIGTERM = %v, want it killed", err)
	}
	if p.ExitErr() == nil {
		t.Fatal("a killed process exited 0")
	}
}

func TestAliveStopsOnExit(t *testing.T) {
	p := startHelper(t, "exit")
	err := Poll(30*time.Second, 10*time.Millisecond, p.Alive(func() error { return errors.New("waiting") }))
	if !errors.Is(err, ErrStop) || !strings.Contains(err.Error(), "helper exited: exit status 3") || !strings.Contains(err.Error(), "child started") {
		t.Fatalf("Poll on an exited process = %v, want ErrStop with its exit and output", err)
	}
}

func TestModuleRoot(t *testing.T) {
	root, err := ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(root + "/internal/testkit/testkit.go"); err != nil {
		t.Fatalf("ModuleRoot = %s: %v", root, err)
	}
}

// A server certificate from the CA is trusted by a client that trusts the
// CA, and a client certificate from another CA is refused.
func TestCA(t *testing.T) {
	ca, other := NewCA(t, "test CA"), NewCA(t, "other CA")
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{ca.Server(t, "server").TLS},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: ca.Pool(), MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	defer srv.Close()
	get := func(cert KeyPair) error {
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
			RootCAs: ca.Pool(), Certificates: []tls.Certificate{cert.TLS}, MinVersion: tls.VersionTLS12}}}
		resp, err := c.Get(srv.URL)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	if err := get(ca.Client(t, "client")); err != nil {
		t.Fatalf("a client certificate of the CA: %v", err)
	}
	if err := get(other.Client(t, "client")); err == nil {
		t.Fatal("a client certificate of another CA was accepted")
	}
	if _, err := tls.X509KeyPair(ca.Server(t, "x").CertPEM, ca.Server(t, "y").KeyPEM); err == nil {
		t.Fatal("two issued certificates share a key")
	}
}
