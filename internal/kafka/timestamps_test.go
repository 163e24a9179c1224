package kafka

import (
	"testing"
	"time"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/cluster"
)

func offsetsObs(ends map[string]map[int32]int64) *cluster.OffsetsObservation {
	obs := &cluster.OffsetsObservation{Topics: map[string]*cluster.Topic{}}
	for name, parts := range ends {
		t := &cluster.Topic{Name: name, Partitions: map[int32]cluster.Partition{}}
		for id, end := range parts {
			t.Partitions[id] = cluster.Partition{Newest: end, Oldest: 0}
		}
		obs.Topics[name] = t
	}
	return obs
}

// A record timestamp is kept while its log exists and forgotten when the
// partition goes away or its log end goes backwards (recreated topic); an
// unknown log end (leader down this poll) forgets nothing.
func TestTimestampCacheForgetsReplacedLogs(t *testing.T) {
	c := newTimestampCache(100)
	at := time.Unix(1_800_000_000, 0)
	for _, r := range []cluster.Record{
		{Topic: "kept", Partition: 0, Offset: 5},
		{Topic: "recreated", Partition: 0, Offset: 5},
		{Topic: "recreated", Partition: 1, Offset: 5},
		{Topic: "leaderless", Partition: 0, Offset: 5},
		{Topic: "deleted", Partition: 0, Offset: 5},
	} {
		c.lru.Add(r, at)
	}
	prev := offsetsObs(map[string]map[int32]int64{
		"kept": {0: 10}, "recreated": {0: 10, 1: 10}, "leaderless": {0: 10}, "deleted": {0: 10}})
	cur := offsetsObs(map[string]map[int32]int64{
		"kept": {0: 12}, "recreated": {0: 3, 1: 11}, "leaderless": {0: -1}})
	c.forgetReplaced(prev, cur)

	for r, want := range map[cluster.Record]bool{
		{Topic: "kept", Partition: 0, Offset: 5}:       true,
		{Topic: "recreated", Partition: 0, Offset: 5}:  false,
		{Topic: "recreated", Partition: 1, Offset: 5}:  true,
		{Topic: "leaderless", Partition: 0, Offset: 5}: true,
		{Topic: "deleted", Partition: 0, Offset: 5}:    false,
	} {
		if _, got := c.lru.Get(r); got != want {
			t.Errorf("%+v cached %v, want %v", r, got, want)
		}
	}
}
