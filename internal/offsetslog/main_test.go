package offsetslog

import (
	"testing"

	"go.uber.org/goleak"
)

// No test of the package may leave a goroutine behind: the reader across
// restarts, leader moves and its consumers. Ignored: go-metrics' meter
// arbiter (one per process, started by sarama's metrics, never ends by
// design).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/rcrowley/go-metrics.(*meterArbiter).tick"))
}
