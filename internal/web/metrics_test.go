package web

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/cluster"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/exposition"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/store"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/testkit"
)

// snapshotGauge exports one gauge per group of the snapshot it is built
// for, and counts how often a snapshot was rendered.
type snapshotGauge struct {
	renders atomic.Int64
}

func (g *snapshotGauge) render(s *store.Snapshot, f exposition.Format) []byte {
	g.renders.Add(1)
	n := 0
	if s.Groups != nil {
		n = len(s.Groups.Groups)
	}
	w := exposition.NewWriter(f, 0)
	w.Family("test_groups", "Groups in the snapshot.", exposition.Gauge)
	w.Int("test_groups", int64(n))
	return w.Bytes()
}

func publish(st *store.Store, groups int) {
	obs := &cluster.GroupsObservation{Time: time.Now(), Groups: map[string]*cluster.Group{}}
	for i := range groups {
		name := string(rune('a' + i))
		obs.Groups[name] = &cluster.Group{Name: name, State: "Stable"}
	}
	st.GroupsPolled(obs, nil)
}

func scrapeWith(t *testing.T, h http.Handler, accept string, gz bool) (int, http.Header, string) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	if gz {
		req.Header.Set("Accept-Encoding", "gzip")
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	body := rec.Body.Bytes()
	if rec.Header().Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if body, err = io.ReadAll(zr); err != nil {
			t.Fatal(err)
		}
	}
	return rec.Code, rec.Header(), string(body)
}

const openMetricsAccept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"

// Concurrent scrapes of one snapshot share one rendering per format and
// encoding; a new snapshot is rendered again; every variant carries the
// snapshot part and the live part, and OpenMetrics ends with one # EOF.
func TestMetricsRenderedOncePerSnapshot(t *testing.T) {
	st := store.New(store.Options{Log: zerolog.Nop()})
	publish(st, 3)
	g := &snapshotGauge{}
	var liveCalls atomic.Int64
	live := prometheus.NewPedanticRegistry()
	live.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "test_live_total", Help: "Live."}, func() float64 {
		return float64(liveCalls.Add(1))
	}))
	h := newMetricsHandler(st, MetricsOptions{Render: g.render, Live: live, MaxInFlight: 100, Log: zerolog.Nop()})

	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if code, _, body := scrapeWith(t, h, "", false); code != http.StatusOK || !strings.Contains(body, "test_groups 3") {
				t.Errorf("scrape: %d %q", code, body)
			}
		})
	}
	wg.Wait()
	if n := g.renders.Load(); n != 1 {
		t.Fatalf("50 scrapes of one snapshot rendered it %d times, want 1", n)
	}
	if n := liveCalls.Load(); n != 50 {
		t.Fatalf("live metrics gathered %d times for 50 scrapes", n)
	}

	for _, c := range []struct {
		accept string
		gz     bool
		ct     string
	}{
		{"", true, "text/plain"},
		{openMetricsAccept, false, "application/openmetrics-text"},
		{openMetricsAccept, true, "application/openmetrics-text"},
	} {
		code, hdr, body := scrapeWith(t, h, c.accept, c.gz)
		if code != http.StatusOK || !strings.HasPrefix(hdr.Get("Content-Type"), c.ct) {
			t.Fatalf("accept %q gzip %v: %d %s", c.accept, c.gz, code, hdr.Get("Content-Type"))
		}
		if !strings.Contains(body, "test_groups 3") || !strings.Contains(body, "test_live_total") {
			t.Fatalf("accept %q gzip %v: body lacks a part:\n%s", c.accept, c.gz, body)
		}
		if c.ct == "application/openmetrics-text" {
			if strings.Count(body, "# EOF") != 1 || !strings.HasSuffix(body, "# EOF\n") {
				t.Fatalf("OpenMetrics body does not end with exactly one # EOF:\n%s", body)
			}
		} else if _, err := testkit.Parse(strings.NewReader(body)); err != nil {
			t.Fatalf("text exposition does not parse: %v\n%s", err, body)
		}
	}
	if n := g.renders.Load(); n != 4 {
		t.Fatalf("four variants of one snapshot rendered %d times, want 4", n)
	}

	publish(st, 5)
	if _, _, body := scrapeWith(t, h, "", false); !strings.Contains(body, "test_groups 5") {
		t.Fatalf("new snapshot not served:\n%s", body)
	}
	if n := g.renders.Load(); n != 5 {
		t.Fatalf("a new snapshot was not rendered once: %d renders", n)
	}
}

// Scrapes beyond the in-flight bound get a clear 503 at once.
func TestMetricsInFlightBound(t *testing.T) {
	st := store.New(store.Options{Log: zerolog.Nop()})
	publish(st, 1)
	g := &snapshotGauge{}
	release := make(chan struct{})
	var entered sync.WaitGroup
	entered.Add(2)
	live := prometheus.NewPedanticRegistry()
	live.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "test_blocking", Help: "Blocks."}, func() float64 {
		entered.Done()
		<-release
		return 1
	}))
	h := newMetricsHandler(st, MetricsOptions{Render: g.render, Live: live, MaxInFlight: 2, Log: zerolog.Nop()})
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			if code, _, _ := scrapeWith(t, h, "", false); code != http.StatusOK {
				t.Errorf("scrape within the bound: %d", code)
			}
		})
	}
	entered.Wait()
	code, _, body := scrapeWith(t, h, "", false)
	close(release)
	wg.Wait()
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "too many concurrent scrapes") {
		t.Fatalf("third scrape: %d %q, want 503", code, body)
	}
}
