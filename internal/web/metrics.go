package web

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/rs/zerolog"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/exposition"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/store"
)

// MetricsOptions configure the metrics handler.
type MetricsOptions struct {
	// Render writes the metrics that depend only on one snapshot. They are
	// rendered once per snapshot and format, when the first scrape asks
	// for them, and every scrape of that snapshot is served the same
	// bytes (gzip-compressed once too, where asked).
	Render func(*store.Snapshot, exposition.Format) []byte
	// Live gathers the metrics that change between snapshots (the
	// poller's counters, snapshot age, Go and process metrics) at every
	// scrape; it must stay small. Its families must not repeat Snapshot's.
	Live prometheus.Gatherer
	// MaxInFlight bounds concurrent scrapes; beyond it a scrape gets 503.
	MaxInFlight int
	Log         zerolog.Logger
}

// metricsHandler serves /metrics from a per-snapshot cache of rendered
// bytes plus the live metrics.
type metricsHandler struct {
	src      Source
	opts     MetricsOptions
	inFlight chan struct{}

	mu  sync.Mutex
	cur *rendering // for the newest snapshot a scrape has seen
}

// rendering holds one snapshot's exposition in each format and encoding,
// each made once, by the first scrape that needs it.
type rendering struct {
	snap  *store.Snapshot
	mu    sync.Mutex
	parts map[variant]*part
}

type variant struct {
	openMetrics, gzip bool
}

type part struct {
	once sync.Once
	b    []byte
	err  error
}

func newMetricsHandler(src Source, o MetricsOptions) *metricsHandler {
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = 1
	}
	return &metricsHandler{src: src, opts: o, inFlight: make(chan struct{}, o.MaxInFlight)}
}

func (h *metricsHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	select {
	case h.inFlight <- struct{}{}:
		defer func() { <-h.inFlight }()
	default:
		http.Error(w, fmt.Sprintf("too many concurrent scrapes (limit %d, KRE_WEB_MAX_SCRAPES)", cap(h.inFlight)), http.StatusServiceUnavailable)
		return
	}
	v := variant{
		openMetrics: expfmt.NegotiateIncludingOpenMetrics(r.Header).FormatType() == expfmt.TypeOpenMetrics,
		gzip:        acceptsGzip(r),
	}
	format := expfmt.NewFormat(expfmt.TypeTextPlain)
	if v.openMetrics {
		format = expfmt.NewFormat(expfmt.TypeOpenMetrics)
	}
	cached, err := h.rendering(h.src.Current()).get(v, h.opts.Render)
	if err != nil {
		h.fail(w, err)
		return
	}
	var live bytes.Buffer
	if err := writeLive(&live, h.opts.Live, format, v); err != nil {
		h.fail(w, err)
		return
	}
	w.Header().Set("Content-Type", string(format))
	if v.gzip {
		w.Header().Set("Content-Encoding", "gzip")
	}
	w.Header().Set("Content-Length", fmt.Sprint(len(cached)+live.Len()))
	_, _ = w.Write(cached)
	_, _ = w.Write(live.Bytes())
}

func (h *metricsHandler) fail(w http.ResponseWriter, err error) {
	h.opts.Log.Error().Err(err).Msg("rendering metrics failed")
	http.Error(w, "rendering metrics failed: "+err.Error(), http.StatusInternalServerError)
}

// rendering returns the cache of snap, replacing that of an older one.
func (h *metricsHandler) rendering(snap *store.Snapshot) *rendering {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cur == nil || h.cur.snap != snap {
		h.cur = &rendering{snap: snap, parts: map[variant]*part{}}
	}
	return h.cur
}

func (r *rendering) get(v variant, render func(*store.Snapshot, exposition.Format) []byte) ([]byte, error) {
	r.mu.Lock()
	p := r.parts[v]
	if p == nil {
		p = &part{}
		r.parts[v] = p
	}
	r.mu.Unlock()
	p.once.Do(func() {
		f := exposition.Text
		if v.openMetrics {
			f = exposition.OpenMetrics
		}
		// The snapshot part ends without OpenMetrics' "# EOF": the live
		// part follows it and closes the exposition.
		p.b = render(r.snap, f)
		if v.gzip {
			var buf bytes.Buffer
			zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
			_, p.err = zw.Write(p.b)
			if err := zw.Close(); p.err == nil {
				p.err = err
			}
			p.b = buf.Bytes()
		}
	})
	return p.b, p.err
}

// writeLive renders the live families, then (OpenMetrics) the end marker.
// A gzip stream may hold several members; readers concatenate them.
func writeLive(w io.Writer, g prometheus.Gatherer, format expfmt.Format, v variant) error {
	var mfs []*dto.MetricFamily
	if g != nil {
		var err error
		if mfs, err = g.Gather(); err != nil {
			return err
		}
	}
	return encode(w, mfs, format, v.gzip, true)
}

// encode writes families in format, then (last, OpenMetrics) the end
// marker.
func encode(w io.Writer, mfs []*dto.MetricFamily, format expfmt.Format, gz, last bool) error {
	var zw *gzip.Writer
	if gz {
		zw, _ = gzip.NewWriterLevel(w, gzip.BestSpeed)
		w = zw
	}
	enc := expfmt.NewEncoder(w, format)
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			return err
		}
	}
	if last {
		if c, ok := enc.(expfmt.Closer); ok {
			if err := c.Close(); err != nil {
				return err
			}
		}
	}
	if zw != nil {
		return zw.Close()
	}
	return nil
}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		enc, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.TrimSpace(enc) == "gzip" && strings.ReplaceAll(strings.TrimSpace(q), " ", "") != "q=0" {
			return true
		}
	}
	return false
}
