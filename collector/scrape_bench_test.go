package collector_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/collector"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/cluster"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/exposition"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/kafkatest"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/store"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/web"
)

// bigStore holds a world of groups groups, each committed on all 40
// partitions of one of 50 topics (2,000 groups: 80,000 group-partitions),
// after two polls of both loops.
func bigStore(b *testing.B, groups int) *store.Store {
	cfg := kafkatest.ConfigTB(b, []string{"localhost:9092"}, nil)
	st := store.New(store.Options{Log: zerolog.Nop(), Analyzers: store.NewAnalyzers(cfg, zerolog.Nop())})
	t0 := time.Now()
	for poll := range 2 {
		at := t0.Add(time.Duration(poll) * 10 * time.Second)
		gobs := &cluster.GroupsObservation{Time: at, Groups: map[string]*cluster.Group{}}
		oobs := &cluster.OffsetsObservation{Time: at, Brokers: 3, Topics: map[string]*cluster.Topic{}, Committed: map[string]map[string]map[int32]int64{}}
		for ti := range 50 {
			name := fmt.Sprintf("topic-%02d", ti)
			t := &cluster.Topic{Name: name, Partitions: map[int32]cluster.Partition{}}
			for p := range int32(40) {
				t.Partitions[p] = cluster.Partition{Leader: p % 3, Newest: int64(1000 + poll*100), Oldest: 0}
			}
			oobs.Topics[name] = t
		}
		for g := range groups {
			name := fmt.Sprintf("group-%05d", g)
			topic := fmt.Sprintf("topic-%02d", g%50)
			gobs.Groups[name] = &cluster.Group{Name: name, Type: cluster.GroupTypeClassic, ProtocolType: "consumer", State: "Stable",
				Assignor: "range", Coordinator: int32(g % 3), Members: []cluster.Member{{MemberID: "m-" + name, ClientID: "c", ClientHost: "/10.0.0.1", Generation: 3,
					Assignment: cluster.Assignment{topic: {0, 1, 2, 3}}}}}
			parts := map[int32]int64{}
			for p := range int32(40) {
				parts[p] = int64(900 + poll*50)
			}
			oobs.Committed[name] = map[string]map[int32]int64{topic: parts}
		}
		st.GroupsPolled(gobs, nil)
		st.OffsetsPolled(oobs, nil)
	}
	return st
}

// BenchmarkScrape measures the one rendering of a snapshot (per format)
// and a scrape served from it.
//
//	go test -run '^$' -bench Scrape -benchmem ./collector/
func BenchmarkScrape(b *testing.B) {
	for _, groups := range []int{2000} {
		st := bigStore(b, groups)
		for _, f := range []exposition.Format{exposition.Text, exposition.OpenMetrics} {
			b.Run(fmt.Sprintf("groups=%d/render/format=%d", groups, f), func(b *testing.B) {
				render := collector.SnapshotRenderer(collector.Options{})
				b.ReportAllocs()
				var n int
				for b.Loop() {
					n = len(render(st.Current(), f))
				}
				b.ReportMetric(float64(n), "bytes")
			})
		}
		b.Run(fmt.Sprintf("groups=%d/cached", groups), func(b *testing.B) {
			live, err := collector.LiveRegistry(st, collector.Options{})
			if err != nil {
				b.Fatal(err)
			}
			h := web.Handler(web.Options{TelemetryPath: "/metrics", Source: st, Log: zerolog.Nop(),
				Metrics: web.MetricsOptions{Render: collector.SnapshotRenderer(collector.Options{}), Live: live, MaxInFlight: 8, Log: zerolog.Nop()}})
			req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req) // the one rendering of this snapshot
			b.ReportMetric(float64(rec.Body.Len()), "bytes/scrape")
			b.ReportAllocs()
			for b.Loop() {
				h.ServeHTTP(discard{}, req)
			}
		})
	}
}

type discard struct{}

func (discard) Header() http.Header         { return http.Header{} }
func (discard) Write(p []byte) (int, error) { return len(p), nil }
func (discard) WriteHeader(int)             {}
