package bench

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// PrometheusAccept is the Accept header Prometheus 2.42 sends on every
// scrape (without the native-histograms feature flag): OpenMetrics first.
// With Accept-Encoding: gzip it is what the exporter sees in production.
const PrometheusAccept = `application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1`

// TextAccept asks for the Prometheus text format, which expfmt parses.
const TextAccept = `text/plain;version=0.0.4`

// ScrapeSample is one scrape.
type ScrapeSample struct {
	Start   time.Time
	Latency time.Duration // until the last body byte was read
	Header  time.Duration // until the response header arrived
	Status  int           // 0: no response
	Bytes   int64         // body bytes as sent (compressed when gzip)
	Err     string
	// From the live self-metrics at the end of the body (NaN when they
	// could not be read): the Go heap in use, and the age of each loop's
	// data, which with the scrape's end time dates the snapshot served.
	Heap                  float64
	GroupsAge, OffsetsAge float64
}

// snapshotTimes are when the snapshot served was polled, by loop (Unix
// seconds, NaN when unknown). The live age metric is taken just before
// the response header is sent, so the header's arrival dates it.
func (s ScrapeSample) snapshotTimes() (groups, offsets float64) {
	at := float64(s.Start.Add(s.Header).UnixNano()) / 1e9
	return at - s.GroupsAge, at - s.OffsetsAge
}

// LoadOptions bound one scrape load.
type LoadOptions struct {
	Scrapers   int           // concurrent closed-loop scrapers
	Duration   time.Duration // stop starting scrapes after this
	MaxScrapes int           // and after this many in total
	Backoff    time.Duration // a scraper's pause after a 503
	Timeout    time.Duration // of one scrape
	// Every, when set, paces each scraper: a scrape starts every Every
	// (as a Prometheus scrape interval does) instead of back to back.
	Every  time.Duration
	Accept string // default PrometheusAccept
	NoGzip bool
}

// Load runs o.Scrapers closed-loop scrapers of url until o.Duration has
// passed or o.MaxScrapes scrapes were started, and returns every scrape.
func Load(ctx context.Context, url string, o LoadOptions) []ScrapeSample {
	if o.Accept == "" {
		o.Accept = PrometheusAccept
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		DisableCompression:  true, // keep the body as sent; we ask for gzip ourselves
		MaxIdleConns:        o.Scrapers,
		MaxIdleConnsPerHost: o.Scrapers,
		IdleConnTimeout:     time.Minute,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: o.Timeout}
	deadline := time.Now().Add(o.Duration)
	var (
		started atomic.Int64
		mu      sync.Mutex
		out     []ScrapeSample
		wg      sync.WaitGroup
	)
	for range o.Scrapers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			next := time.Now()
			for ctx.Err() == nil && time.Now().Before(deadline) && started.Add(1) <= int64(o.MaxScrapes) {
				s := scrapeOnce(ctx, client, url, o)
				mu.Lock()
				out = append(out, s)
				mu.Unlock()
				var pause time.Duration
				if s.Status == http.StatusServiceUnavailable {
					pause = o.Backoff
				}
				if o.Every > 0 {
					next = next.Add(o.Every)
					pause = max(pause, time.Until(next))
				}
				if pause > 0 {
					select {
					case <-ctx.Done():
					case <-time.After(pause):
					}
				}
			}
		}()
	}
	wg.Wait()
	slices.SortFunc(out, func(a, b ScrapeSample) int { return a.Start.Compare(b.Start) })
	return out
}

func scrapeOnce(ctx context.Context, client *http.Client, url string, o LoadOptions) ScrapeSample {
	s := ScrapeSample{Start: time.Now(), Heap: math.NaN(), GroupsAge: math.NaN(), OffsetsAge: math.NaN()}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		s.Err = err.Error()
		return s
	}
	req.Header.Set("Accept", o.Accept)
	if !o.NoGzip {
		req.Header.Set("Accept-Encoding", "gzip")
	}
	req.Header.Set("User-Agent", "Prometheus/2.42.0")
	req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", "10")
	resp, err := client.Do(req)
	if err != nil {
		s.Latency = time.Since(s.Start)
		s.Err = err.Error()
		return s
	}
	s.Header = time.Since(s.Start)
	s.Status = resp.StatusCode
	var tail tailBuffer
	s.Bytes, err = io.Copy(&tail, resp.Body)
	resp.Body.Close()
	s.Latency = time.Since(s.Start)
	if err != nil {
		s.Err = err.Error()
		return s
	}
	if s.Status == http.StatusOK {
		s.Heap, s.GroupsAge, s.OffsetsAge = liveFigures(tail.Bytes(), resp.Header.Get("Content-Encoding") == "gzip")
	}
	return s
}

// tailSize is how much of a body's end is kept: the live self-metrics
// (Go, process and poller metrics) are a few KiB at the end.
const tailSize = 256 << 10

// tailBuffer keeps the last tailSize bytes written to it.
type tailBuffer struct{ b []byte }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > 2*tailSize {
		t.b = append(t.b[:0], t.b[len(t.b)-tailSize:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) Bytes() []byte {
	if len(t.b) > tailSize {
		return t.b[len(t.b)-tailSize:]
	}
	return t.b
}

// gzipMember is how Go's compress/gzip starts a stream (no name, no
// modification time); the exporter appends the live metrics to the cached
// rendering as a gzip member of their own.
var gzipMember = []byte{0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00}

// liveFigures reads the Go heap in use and the age of each loop's data
// from the end of a body.
func liveFigures(tail []byte, gz bool) (heap, groupsAge, offsetsAge float64) {
	heap, groupsAge, offsetsAge = math.NaN(), math.NaN(), math.NaN()
	text := tail
	if gz {
		text = nil
		for end := len(tail); end > 0; {
			i := bytes.LastIndex(tail[:end], gzipMember)
			if i < 0 {
				break
			}
			if zr, err := gzip.NewReader(bytes.NewReader(tail[i:])); err == nil {
				if b, err := io.ReadAll(zr); err == nil {
					text = b
					break
				}
			}
			end = i
		}
	} else if i := bytes.IndexByte(text, '\n'); i >= 0 {
		text = text[i+1:] // the first line may be cut
	}
	_ = ScanSamples(bytes.NewReader(text), func(s Sample) {
		switch s.Name {
		case "kafka_rebalance_exporter_snapshot_age_seconds":
			switch s.Label("loop") {
			case "groups":
				groupsAge = s.Value
			case "offsets":
				offsetsAge = s.Value
			}
		case "go_memstats_heap_inuse_bytes":
			heap = s.Value
		}
	})
	return heap, groupsAge, offsetsAge
}

// FetchProm is one scrape as Prometheus makes it (PrometheusAccept, gzip),
// decompressed into memory; wire is the body's size as sent.
func FetchProm(ctx context.Context, url string) (body []byte, wire int, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Accept", PrometheusAccept)
	req.Header.Set("Accept-Encoding", "gzip")
	c := &http.Client{Timeout: time.Minute, Transport: &http.Transport{DisableCompression: true}}
	defer c.CloseIdleConnections()
	resp, err := c.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, len(raw), fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	if resp.Header.Get("Content-Encoding") != "gzip" {
		return raw, len(raw), nil
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw)) // multistream: the cached part, then the live part
	if err != nil {
		return nil, len(raw), err
	}
	body, err = io.ReadAll(zr)
	return body, len(raw), err
}

// Fetch is one plain scrape read into memory.
func Fetch(ctx context.Context, url, accept string) ([]byte, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Accept", accept)
	start := time.Now()
	resp, err := (&http.Client{Timeout: time.Minute}).Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(b[:min(len(b), 200)])))
	}
	return b, time.Since(start), err
}

// PhaseStats summarise one scrape load.
type PhaseStats struct {
	Scrapers    int     `json:"scrapers"`
	Every       float64 `json:"every_seconds,omitempty"` // paced: one scrape per scraper every this often
	Age         float64 `json:"exporter_age_seconds"`    // how long the exporter had run when the load began
	Foreign     float64 `json:"foreign_cores"`           // other processes' CPU during the load, mean cores
	MaxInFlight int     `json:"max_in_flight"`           // KRE_WEB_MAX_SCRAPES of the exporter
	Wall        float64 `json:"wall_seconds"`
	OK          int     `json:"ok"`
	Rejected    int     `json:"rejected_503"`
	Failed      int     `json:"failed"`
	FirstError  string  `json:"first_error,omitempty"`
	// Latency of successful scrapes, seconds.
	P50, P90, P99, Max, Mean float64
	// Cold are the first successful scrape of each snapshot (the one that
	// waits for its rendering, as nearly every scrape of a Prometheus
	// scraping less often than the groups poll does); warm the others.
	ColdN, WarmN     int
	ColdP50, WarmP50 float64
	ColdMax          float64
	Snapshots        int     `json:"snapshots"`        // distinct snapshots served
	Bytes            float64 `json:"bytes_per_scrape"` // mean body bytes, as sent
	CPU              float64 `json:"cpu_seconds"`      // exporter CPU during the load
	CPUPerScrape     float64 `json:"cpu_per_scrape"`   // minus the idle rate, per successful scrape
	CPUPerSnapshot   float64 `json:"cpu_per_snapshot"` // minus the idle rate, per snapshot served: bounds one rendering's cost
	PeakRSS          int64   `json:"peak_rss_bytes"`
	MaxHeap          float64 `json:"max_heap_inuse_bytes"` // highest heap in use seen in the live metrics
}

// Summarise computes the latency figures of samples.
func Summarise(samples []ScrapeSample) PhaseStats {
	var st PhaseStats
	var lat, cold, warm []float64
	var bytesSum float64
	var snaps [][2]float64 // poll times of the snapshots seen so far
	// The same snapshot: the poll times agree to within what dating them
	// by the header's arrival allows; distinct snapshots are a groups poll
	// interval (2 s) or an offsets poll interval apart in one of them.
	const tolerance = 0.9
	firstOf := func(g, o float64) bool {
		for _, sn := range snaps {
			if math.Abs(sn[0]-g) < tolerance && math.Abs(sn[1]-o) < tolerance {
				return false
			}
		}
		snaps = append(snaps, [2]float64{g, o})
		return true
	}
	st.MaxHeap = math.NaN()
	for _, s := range samples {
		switch {
		case s.Status == http.StatusOK && s.Err == "":
			st.OK++
			l := s.Latency.Seconds()
			lat = append(lat, l)
			bytesSum += float64(s.Bytes)
			if g, o := s.snapshotTimes(); !math.IsNaN(g) && !math.IsNaN(o) {
				if firstOf(g, o) {
					cold = append(cold, l)
				} else {
					warm = append(warm, l)
				}
			}
			if !math.IsNaN(s.Heap) && (math.IsNaN(st.MaxHeap) || s.Heap > st.MaxHeap) {
				st.MaxHeap = s.Heap
			}
		case s.Status == http.StatusServiceUnavailable:
			st.Rejected++
		default:
			st.Failed++
			if st.FirstError == "" {
				st.FirstError = s.Err
				if st.FirstError == "" {
					st.FirstError = fmt.Sprintf("HTTP %d", s.Status)
				}
			}
		}
	}
	st.Snapshots = len(snaps)
	st.P50, st.P90, st.P99, st.Max = Quantile(lat, 0.5), Quantile(lat, 0.9), Quantile(lat, 0.99), Quantile(lat, 1)
	st.Mean = mean(lat)
	st.ColdN, st.WarmN = len(cold), len(warm)
	st.ColdP50, st.WarmP50, st.ColdMax = Quantile(cold, 0.5), Quantile(warm, 0.5), Quantile(cold, 1)
	if st.OK > 0 {
		st.Bytes = bytesSum / float64(st.OK)
	}
	return st
}

// Quantile is the nearest-rank q-quantile of xs (NaN when empty).
func Quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	sort.Float64s(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

func mean(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	var t float64
	for _, x := range xs {
		t += x
	}
	return t / float64(len(xs))
}
