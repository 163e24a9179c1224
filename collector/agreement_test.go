package collector_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/collector"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/cluster"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/store"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/testkit"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/web"
)

// /metrics and /api/v1/groups/{group} give the same lag for every group
// and topic, also where a partition's log end is unknown (its leader did
// not answer): then neither has a topic lag, and /metrics has no lag for
// that partition either.
func TestMetricsAndJSONAgreeOnLag(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	st := store.New(store.Options{Log: zerolog.Nop()})
	groups := &cluster.GroupsObservation{Time: t0, Groups: map[string]*cluster.Group{}}
	for _, g := range []string{"complete", "partial", "ahead"} {
		groups.Groups[g] = &cluster.Group{Name: g, Type: cluster.GroupTypeClassic, State: "Empty", Coordinator: 1}
	}
	st.GroupsPolled(groups, nil)
	st.OffsetsPolled(&cluster.OffsetsObservation{Time: t0, Brokers: 3,
		Topics: map[string]*cluster.Topic{
			"known":      {Name: "known", Partitions: map[int32]cluster.Partition{0: {Newest: 10}, 1: {Newest: 7}}},
			"leaderless": {Name: "leaderless", Partitions: map[int32]cluster.Partition{0: {Newest: 30}, 1: {Newest: -1}}},
		},
		Committed: map[string]map[string]map[int32]int64{
			"complete": {"known": {0: 4, 1: 5}},
			"partial":  {"known": {0: 10}, "leaderless": {0: 20, 1: 3}},
			"ahead":    {"known": {0: 12, 1: 7}}, // committed past the log end: lag 0
		}}, nil)
	snap := st.Current()
	series := testkit.Collect(t, collector.New(st, collector.Options{}))

	for group, topics := range snap.Offsets.Committed {
		v, ok := web.Groups{}.Get(snap, group)
		if !ok {
			t.Fatalf("group %s missing from the API", group)
		}
		api := v.(web.GroupView).Lag
		for topic, parts := range topics {
			sum, inMetrics := series.Get("kafka_consumergroup_lag_sum", "consumergroup", group, "topic", topic)
			lag, inAPI := api[topic]
			if inMetrics != inAPI || (inAPI && float64(lag) != sum) {
				t.Errorf("%s/%s: lag_sum %v (present %v), API lag %d (present %v)", group, topic, sum, inMetrics, lag, inAPI)
			}
			var partSum float64
			complete := true
			for id := range parts {
				p, ok := series.Get("kafka_consumergroup_lag", "consumergroup", group, "topic", topic, "partition", strconv.Itoa(int(id)))
				complete = complete && ok
				partSum += p
			}
			if complete != inMetrics || (complete && partSum != sum) {
				t.Errorf("%s/%s: partition lags sum to %v (all known %v), lag_sum %v (present %v)", group, topic, partSum, complete, sum, inMetrics)
			}
		}
	}
	// The figures themselves: 6+2, none for the leaderless topic, 0.
	want := map[string]map[string]int64{"complete": {"known": 8}, "partial": {"known": 0}, "ahead": {"known": 0}}
	for group, topics := range want {
		v, _ := web.Groups{}.Get(snap, group)
		got := v.(web.GroupView).Lag
		if len(got) != len(topics) {
			t.Errorf("%s: API lag %v, want %v", group, got, topics)
		}
		for topic, lag := range topics {
			if got[topic] != lag {
				t.Errorf("%s/%s: API lag %d, want %d", group, topic, got[topic], lag)
			}
		}
	}
}
