package web_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/collector"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/cluster"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/kafka"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/rebalance"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/store"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/testkit"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/web"
)

func get(t *testing.T, srv *httptest.Server, path string) (int, string) {
	t.Helper()
	code, body, err := testkit.Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	return code, string(body)
}

func TestEndpoints(t *testing.T) {
	st := store.New(store.Options{Log: zerolog.Nop(), Analyzers: store.Analyzers{Rebalance: rebalance.NewTracker(rebalance.Options{})}})
	live, err := collector.LiveRegistry(st, collector.Options{})
	if err != nil {
		t.Fatal(err)
	}
	metrics := web.MetricsOptions{Render: collector.SnapshotRenderer(collector.Options{}), Live: live, MaxInFlight: 4, Log: zerolog.Nop()}
	srv := httptest.NewServer(web.Handler(web.Options{TelemetryPath: "/metrics", Metrics: metrics, Source: st, Log: zerolog.Nop(), Groups: web.Groups{}}))
	defer srv.Close()

	st.GroupsPolled(nil, &kafka.StageError{Stage: kafka.StageConnect, Broker: -1, Err: errors.New("dial tcp: connection refused")})
	if code, body := get(t, srv, "/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "connection refused") {
		t.Fatalf("/readyz before a poll: %d %q", code, body)
	}
	if code, _ := get(t, srv, "/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz: %d", code)
	}

	t0 := time.Unix(1_800_000_000, 0)
	g := &cluster.Group{Name: "orders", Type: cluster.GroupTypeClassic, ProtocolType: "consumer", State: "Stable", Coordinator: 2,
		Members: []cluster.Member{{MemberID: "m1", ClientID: "c1", ClientHost: "/10.0.0.1", Generation: 6, Assignment: cluster.Assignment{"t": {0, 1}}}}}
	st.GroupsPolled(&cluster.GroupsObservation{Time: t0, Groups: map[string]*cluster.Group{"orders": g}}, nil)
	st.OffsetsPolled(&cluster.OffsetsObservation{Time: t0, Brokers: 1,
		Topics:    map[string]*cluster.Topic{"t": {Name: "t", Partitions: map[int32]cluster.Partition{0: {Newest: 10}, 1: {Newest: 5}}}},
		Committed: map[string]map[string]map[int32]int64{"orders": {"t": {0: 4, 1: 5}}}}, nil)

	if code, body := get(t, srv, "/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz after polls: %d %q", code, body)
	}
	code, body := get(t, srv, "/api/v1/groups/orders")
	if code != http.StatusOK {
		t.Fatalf("group API: %d %s", code, body)
	}
	var v web.GroupView
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatal(err)
	}
	if v.Lag["t"] != 6 || len(v.Members) != 1 || v.Members[0].Generation == nil || *v.Members[0].Generation != 6 ||
		v.Generation == nil || *v.Generation != 7 || v.GenerationSource != rebalance.SourceKIP792Metadata {
		t.Fatalf("group view: %+v", v)
	}
	if code, body := get(t, srv, "/api/v1/groups/missing"); code != http.StatusNotFound || !strings.Contains(body, "missing") {
		t.Fatalf("unknown group: %d %s", code, body)
	}
	if code, body := get(t, srv, "/api/v1/groups"); code != http.StatusOK || !strings.HasPrefix(strings.TrimSpace(body), "[") {
		t.Fatalf("group list: %d %s", code, body)
	}
	if code, body := get(t, srv, "/metrics"); code != http.StatusOK || !strings.Contains(body, `kafka_consumergroup_lag_sum{consumergroup="orders",topic="t"} 6`) {
		t.Fatalf("metrics: %d", code)
	}
	if code, body := get(t, srv, "/"); code != http.StatusOK || !strings.Contains(body, `href="/metrics"`) {
		t.Fatalf("landing: %d %s", code, body)
	}
	if code, _ := get(t, srv, "/nope"); code != http.StatusNotFound {
		t.Fatalf("unknown path: %d", code)
	}
}
