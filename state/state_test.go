package state_test

import (
	"errors"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/poller"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/snapshot"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/state"
)

// A failed poll keeps serving the last good observation and counts the
// failed stages; the published snapshot never changes afterwards.
func TestFailedPollKeepsLastGoodSnapshot(t *testing.T) {
	st := state.NewStore(zerolog.Nop())
	good := &snapshot.GroupsObservation{Time: time.Unix(1, 0), Groups: map[string]*snapshot.Group{"g": {Name: "g", State: "Stable"}}}
	st.GroupsPolled(good, time.Millisecond, nil)
	before := st.Current()

	err := errors.Join(
		&poller.StageError{Stage: poller.StageListGroups, Broker: 1, Err: errors.New("timeout")},
		&poller.StageError{Stage: poller.StageDescribeGroups, Broker: 2, Err: errors.New("not coordinator")},
	)
	st.GroupsPolled(nil, 2*time.Millisecond, err)
	after := st.Current()

	if after.Groups != good {
		t.Fatal("failed poll replaced the last good groups observation")
	}
	ls := after.Loops[state.LoopGroups]
	if ls.LastOK || ls.Polls != 2 || ls.LastError == "" || ls.LastSuccess.IsZero() {
		t.Fatalf("loop status after failure: %+v", ls)
	}
	if after.StageErrors[poller.StageListGroups] != 1 || after.StageErrors[poller.StageDescribeGroups] != 1 || after.StageErrors[poller.StageConnect] != 0 {
		t.Fatalf("stage errors: %v", after.StageErrors)
	}
	if before.Loops[state.LoopGroups].Polls != 1 || before.StageErrors[poller.StageListGroups] != 0 || before.PollDurations[state.LoopGroups].Count != 1 {
		t.Fatal("a published snapshot was modified by a later poll")
	}
	if after.PollDurations[state.LoopGroups].Count != 2 {
		t.Fatalf("poll durations: %+v", after.PollDurations[state.LoopGroups])
	}
	if after.Ready() {
		t.Fatal("ready without an offsets poll")
	}
}
