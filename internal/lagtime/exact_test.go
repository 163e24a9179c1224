package lagtime

import (
	"testing"
	"time"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/cluster"
)

// Record timestamps in the observation (exact mode) replace the estimate
// for the partitions that are behind; the others keep it.
func TestComputeWithRecordTimes(t *testing.T) {
	now := 100 * time.Second
	e := New(testOptions)
	step(e, poll(0, 0, nil))
	commits := map[string]int64{"exact": 500, "exact2": 500, "future": 600, "fallback": 900, "up": 1000}
	obs := poll(now, 1000, commits)
	obs.RecordTimes = map[cluster.Record]time.Time{
		{Topic: topic, Partition: 0, Offset: 500}:  t0.Add(now - 42*time.Second),
		{Topic: topic, Partition: 0, Offset: 600}:  t0.Add(now + time.Minute), // producer clock ahead
		{Topic: topic, Partition: 0, Offset: 1000}: t0,                        // caught up: never used
	}
	e.Observe(obs)
	r := e.Compute(obs)

	for _, g := range []string{"exact", "exact2"} {
		if p := mustLag(t, r, g); p.Method != MethodExact || !near(p.Seconds, 42, 1e-9) {
			t.Fatalf("%s: %+v, want 42 s exact", g, p)
		}
	}
	if p := mustLag(t, r, "future"); p.Method != MethodExact || p.Seconds != 0 {
		t.Fatalf("future timestamp: %+v, want 0", p)
	}
	// No timestamp: offset 901 interpolated on (0 @ 0 s, 1000 @ 100 s).
	if p := mustLag(t, r, "fallback"); p.Method != MethodInterpolated || !near(p.Seconds, 100-90.1, 1e-6) {
		t.Fatalf("fallback: %+v, want the 9.9 s estimate", p)
	}
	if p := mustLag(t, r, "up"); p.Method != MethodCaughtUp || p.Seconds != 0 {
		t.Fatalf("caught up: %+v", p)
	}
}
