package offsetslog

import (
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/cluster"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/rebalance"
)

// The wiring the exporter is to use: the log's source between the
// KIP-848 epoch and the KIP-792 member metadata. A classic group whose
// members send no generation (sarama's eager balancers) gets the exact
// generation from the log, and rebalances are counted by its deltas; when
// the log cannot be read, the tracker falls back to the other evidence.
func TestSourceInTheTracker(t *testing.T) {
	o := newOffline(t, 0)
	tr := rebalance.NewTracker(rebalance.Options{HistorySize: 5, Sources: []rebalance.GenerationSource{
		rebalance.KIP848Epoch{}, o.r.Source(), rebalance.KIP792Metadata{}}})
	now := t0
	observe := func() rebalance.GroupStats {
		t.Helper()
		now = now.Add(2 * time.Second)
		g := &cluster.Group{Name: "eager", Type: cluster.GroupTypeClassic, ProtocolType: "consumer", State: "Stable", Assignor: "range",
			Members: []cluster.Member{{MemberID: "m", ClientID: "sarama", Generation: -1, MemberEpoch: -1,
				Assignment: cluster.Assignment{"orders": {0}}}}}
		tr.Observe(&cluster.GroupsObservation{Time: now, Groups: map[string]*cluster.Group{"eager": g}})
		return tr.Stats()["eager"]
	}
	o.answer(0, 1, batch(0, t0, metaKV("eager", 5, "m")))
	st := observe()
	if !st.GenerationKnown || st.Generation != 5 || st.GenerationSource != SourceName || st.Rebalances != 0 {
		t.Fatalf("first observation: %+v", st)
	}
	// Three generations between two polls, invisible in describe output.
	o.answer(0, 4, batch(1, t0, metaKV("eager", 6, "m"), metaKV("eager", 7, "m"), metaKV("eager", 8, "m")))
	if st = observe(); st.Generation != 8 || st.Rebalances != 3 {
		t.Fatalf("after three generations: generation %d, rebalances %d", st.Generation, st.Rebalances)
	}
	// The log's partition fails: the source stops answering, and losing
	// it invents no rebalance.
	o.apply(0, &sarama.FetchResponseBlock{Err: sarama.ErrTopicAuthorizationFailed})
	if st = observe(); st.Rebalances != 3 {
		t.Fatalf("losing the source counted rebalances: %+v", st)
	}
	if _, ok := o.r.Source().Generation(&cluster.Group{Name: "eager", Type: cluster.GroupTypeClassic}); ok {
		t.Fatal("source answered while its partition is unreadable")
	}
}
