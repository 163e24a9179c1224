package kafka_test

import (
	"os"
	"testing"

	"github.com/IBM/sarama"
	"go.uber.org/goleak"
)

// fullSize (KRE_TEST_FULL_SIZE=1) keeps sarama's response size limit at
// its 100 MiB default for TestHostileMemberMetadata's full-size case;
// otherwise the limit is 8 MiB for the package, set here before any
// client exists (sarama reads the global from its connections'
// goroutines). No other test of the package gets a response near it.
var fullSize = os.Getenv("KRE_TEST_FULL_SIZE") == "1"

// Every test of the package, kfake clusters and sarama clients included,
// must leave no goroutine behind: a poller that leaks across reconnects
// or broker restarts fails the package here.
//
// Ignored: go-metrics' meter arbiter, one goroutine per process that
// sarama's metrics start on first use and that never ends by design; and
// kfake's goroutine that runs a control function (ControlKey, used for
// fault injection): when the cluster closes while one is still returning,
// it waits forever for a lock the closed cluster's loop no longer
// releases; and, the other side of the same shutdown race, kfake's run
// loop resuming a slept control function (SleepControl, used by the
// hung-broker tests), which waits for that lock too (seen once on a
// loaded CI machine). Both are kfake's, after its Close; the exporter's
// goroutines are all still checked.
func TestMain(m *testing.M) {
	if !fullSize {
		sarama.MaxResponseSize = 8 << 20
	}
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("github.com/rcrowley/go-metrics.(*meterArbiter).tick"),
		goleak.IgnoreAnyFunction("github.com/twmb/franz-go/pkg/kfake.(*Cluster).runControl.func1"),
		goleak.IgnoreAnyFunction("github.com/twmb/franz-go/pkg/kfake.(*Cluster).continueSleptControl"))
}
