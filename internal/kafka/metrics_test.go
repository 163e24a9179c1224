package kafka

import (
	"context"
	"errors"
	"flag"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

var update = flag.Bool("update", false, "rewrite testdata/metrics.prom from the current output")

// The poller's instruments after a fixed history: three groups polls (the
// first failed to connect), two offsets polls, two undecodable members and
// nine requests. Every stage and API has a series from the start.
func TestMetricsExposition(t *testing.T) {
	m := NewMetrics()
	m.ObservePoll("groups", 30*time.Millisecond, &StageError{Stage: StageConnect, Broker: -1, Err: os.ErrDeadlineExceeded})
	m.ObservePoll("groups", 12*time.Millisecond, nil)
	m.ObservePoll("offsets", 40*time.Millisecond, nil)
	m.ObservePoll("groups", 11*time.Millisecond, nil)
	m.ObservePoll("offsets", 35*time.Millisecond, nil)
	m.stageError(StageDecodeMember)
	m.stageError(StageDecodeMember)
	for range 6 {
		m.request(apiListGroups)
	}
	for range 3 {
		m.request(apiDescribeGroups)
	}
	if *update {
		f, err := os.Create("testdata/metrics.prom")
		if err != nil {
			t.Fatal(err)
		}
		if err := writeText(f, m); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	want, err := os.Open("testdata/metrics.prom")
	if err != nil {
		t.Fatal(err)
	}
	defer want.Close()
	if err := testutil.CollectAndCompare(m, want); err != nil {
		t.Fatal(err)
	}
	if problems, err := testutil.CollectAndLint(m); err != nil || len(problems) > 0 {
		t.Fatalf("lint: %v %v", err, problems)
	}
}

// A poll cut off by its deadline before a step could start is a timeout,
// not a connection failure; a step's own error keeps its stage.
func TestStageErrorsFileTimeouts(t *testing.T) {
	err := errors.Join(context.DeadlineExceeded,
		&StageError{Stage: StageOffsetFetch, Broker: 2, Err: context.DeadlineExceeded},
		errors.New("client: closed"))
	var got []string
	for _, se := range StageErrors(err) {
		got = append(got, se.Stage)
	}
	want := []string{StageTimeout, StageOffsetFetch, StageConnect}
	if len(got) != len(want) {
		t.Fatalf("stages %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("stages %v, want %v", got, want)
		}
	}
}
