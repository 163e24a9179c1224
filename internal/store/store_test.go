package store_test

import (
	"errors"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/cluster"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/kafka"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/store"
)

// A failed poll keeps serving the last good observation and counts the
// failed stages; the published snapshot never changes afterwards.
func TestFailedPollKeepsLastGoodSnapshot(t *testing.T) {
	st := store.NewStore(zerolog.Nop())
	good := &cluster.GroupsObservation{Time: time.Unix(1, 0), Groups: map[string]*cluster.Group{"g": {Name: "g", State: "Stable"}}}
	st.GroupsPolled(good, time.Millisecond, nil)
	before := st.Current()

	err := errors.Join(
		&kafka.StageError{Stage: kafka.StageListGroups, Broker: 1, Err: errors.New("timeout")},
		&kafka.StageError{Stage: kafka.StageDescribeGroups, Broker: 2, Err: errors.New("not coordinator")},
	)
	st.GroupsPolled(nil, 2*time.Millisecond, err)
	after := st.Current()

	if after.Groups != good {
		t.Fatal("failed poll replaced the last good groups observation")
	}
	ls := after.Loops[store.LoopGroups]
	if ls.LastOK || ls.Polls != 2 || ls.LastError == "" || ls.LastSuccess.IsZero() {
		t.Fatalf("loop status after failure: %+v", ls)
	}
	if after.StageErrors[kafka.StageListGroups] != 1 || after.StageErrors[kafka.StageDescribeGroups] != 1 || after.StageErrors[kafka.StageConnect] != 0 {
		t.Fatalf("stage errors: %v", after.StageErrors)
	}
	if before.Loops[store.LoopGroups].Polls != 1 || before.StageErrors[kafka.StageListGroups] != 0 || before.PollDurations[store.LoopGroups].Count != 1 {
		t.Fatal("a published snapshot was modified by a later poll")
	}
	if after.PollDurations[store.LoopGroups].Count != 2 {
		t.Fatalf("poll durations: %+v", after.PollDurations[store.LoopGroups])
	}
	if after.Ready() {
		t.Fatal("ready without an offsets poll")
	}
}
