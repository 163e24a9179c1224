// Package web serves the exporter's HTTP endpoints: metrics, a landing
// page, liveness and readiness probes, and the JSON group API.
//
// A scrape never touches Kafka and costs about one write of prepared
// bytes: each snapshot's metrics are rendered once per format (text or
// OpenMetrics, plain or gzip), when the first scrape asks, and shared by
// every scrape of that snapshot; only the small set of live metrics is
// gathered per scrape. Concurrent scrapes are bounded.
package web

import (
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"strings"

	"github.com/rs/zerolog"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/cluster"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/store"
)

// Source is where the handlers read the cluster view from.
type Source interface {
	Current() *store.Snapshot
}

// Options configure the handler.
type Options struct {
	TelemetryPath string
	Metrics       MetricsOptions
	Source        Source
	Log           zerolog.Logger
	// Groups renders the JSON group API; nil disables it.
	Groups GroupAPI
}

// GroupAPI builds the JSON views of the group API from a snapshot.
type GroupAPI interface {
	List(s *store.Snapshot) any
	Get(s *store.Snapshot, group string) (any, bool)
}

// Handler returns the exporter's HTTP handler.
func Handler(o Options) http.Handler {
	mux := http.NewServeMux()
	mux.Handle(o.TelemetryPath, newMetricsHandler(o.Source, o.Metrics))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		s := o.Source.Current()
		if !s.Ready() {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "not ready: the poll loops have not both produced data yet")
			for _, l := range cluster.Loops {
				if e := s.Loops[l].LastError; e != "" {
					fmt.Fprintf(w, "%s: %s\n", l, e)
				}
			}
			return
		}
		fmt.Fprintln(w, "ready")
	})
	if o.Groups != nil {
		mux.HandleFunc("/api/v1/groups", func(w http.ResponseWriter, _ *http.Request) {
			writeJSON(w, http.StatusOK, o.Groups.List(o.Source.Current()))
		})
		mux.HandleFunc("/api/v1/groups/", func(w http.ResponseWriter, r *http.Request) {
			name := strings.TrimPrefix(r.URL.Path, "/api/v1/groups/")
			v, ok := o.Groups.Get(o.Source.Current(), name)
			if !ok {
				writeJSON(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("consumer group %q not found", name)})
				return
			}
			writeJSON(w, http.StatusOK, v)
		})
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		s := o.Source.Current()
		groups := 0
		if s.Groups != nil {
			groups = len(s.Groups.Groups)
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = landing.Execute(w, map[string]any{"Path": o.TelemetryPath, "Ready": s.Ready(), "Groups": groups, "API": o.Groups != nil})
	})
	return mux
}

var landing = template.Must(template.New("landing").Parse(`<!doctype html>
<html><head><title>Kafka Rebalance Exporter</title></head>
<body>
<h1>Kafka Rebalance Exporter</h1>
<p>Consumer lag, group state, generations and rebalances of Apache Kafka consumer groups.</p>
<p>Ready: {{.Ready}} &middot; groups in view: {{.Groups}}</p>
<ul>
<li><a href="{{.Path}}">{{.Path}}</a>: Prometheus metrics</li>
{{if .API}}<li><a href="/api/v1/groups">/api/v1/groups</a>: groups, members, generations and recent rebalances (JSON)</li>{{end}}
<li><a href="/healthz">/healthz</a>: liveness</li>
<li><a href="/readyz">/readyz</a>: readiness (a first poll has completed)</li>
</ul>
</body></html>
`))

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
