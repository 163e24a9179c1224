package rebalance

import (
	"fmt"
	"testing"
	"time"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/cluster"
)

// benchGroups builds n settled classic groups of members members each,
// every member carrying a KIP-792 generation and owning two partitions.
// Each call returns new values, as every describe poll does.
func benchGroups(n, members int) map[string]*cluster.Group {
	out := make(map[string]*cluster.Group, n)
	for i := range n {
		name := fmt.Sprintf("group-%05d", i)
		g := &cluster.Group{Name: name, Type: cluster.GroupTypeClassic, ProtocolType: "consumer", State: "Stable",
			Assignor: "cooperative-sticky", Coordinator: int32(i % 3)}
		for m := range members {
			id := fmt.Sprintf("%s-member-%d", name, m)
			g.Members = append(g.Members, cluster.Member{MemberID: id, ClientID: "client-" + id, ClientHost: "/10.0.0.1",
				Generation: 41, MemberEpoch: -1, Assignment: cluster.Assignment{"orders": {int32(2 * m), int32(2*m + 1)}}})
		}
		out[name] = g
	}
	return out
}

// BenchmarkTrackerObserve is one groups poll at steady state, as the store
// runs it every poll interval: Observe, then Stats. 10,000 groups of five
// members, nothing changes from poll to poll; each poll brings freshly
// decoded (equal, not identical) groups, the way describe output arrives.
func BenchmarkTrackerObserve(b *testing.B) {
	const groups, members = 10_000, 5
	polls := [2]map[string]*cluster.Group{benchGroups(groups, members), benchGroups(groups, members)}
	tr := NewTracker(Options{HistorySize: 20})
	now := t0
	poll := func(i int) map[string]GroupStats {
		now = now.Add(2 * time.Second)
		tr.Observe(&cluster.GroupsObservation{Time: now, Groups: polls[i%2]})
		return tr.Stats()
	}
	poll(0)
	poll(1)
	b.ReportAllocs()
	b.ResetTimer()
	var st map[string]GroupStats
	for i := 0; b.Loop(); i++ {
		st = poll(i)
	}
	b.StopTimer()
	if len(st) != groups {
		b.Fatalf("%d groups in Stats, want %d", len(st), groups)
	}
}
