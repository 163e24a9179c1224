package store_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/cluster"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/kafka"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/store"
)

// A failed poll keeps serving the last good observation and records the
// failure; the published snapshot never changes afterwards.
func TestFailedPollKeepsLastGoodSnapshot(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	st := store.New(store.Options{Log: zerolog.Nop(), Now: func() time.Time { return t0 }})
	good := &cluster.GroupsObservation{Time: time.Unix(1, 0), Groups: map[string]*cluster.Group{"g": {Name: "g", State: "Stable"}}}
	st.GroupsPolled(good, nil)
	before := st.Current()

	err := errors.Join(
		&kafka.StageError{Stage: kafka.StageListGroups, Broker: 1, Err: errors.New("timeout")},
		&kafka.StageError{Stage: kafka.StageDescribeGroups, Broker: 2, Err: errors.New("not coordinator")},
	)
	st.GroupsPolled(nil, err)
	after := st.Current()

	if after.Groups != good {
		t.Fatal("failed poll replaced the last good groups observation")
	}
	ls := after.Loops[cluster.LoopGroups]
	if ls.LastOK || !strings.Contains(ls.LastError, "not coordinator") || !ls.LastSuccess.Equal(t0) {
		t.Fatalf("loop status after failure: %+v", ls)
	}
	if b := before.Loops[cluster.LoopGroups]; !b.LastOK || b.LastError != "" {
		t.Fatalf("a published snapshot was modified by a later poll: %+v", b)
	}
	if after.Ready() {
		t.Fatal("ready without an offsets poll")
	}
}
