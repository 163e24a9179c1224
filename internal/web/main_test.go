package web_test

import (
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/testkit"
)

// No test may leave a goroutine behind (handlers, scrapes of the cached
// rendering, kfake clusters of the server tests). The binaries built for
// the server tests are removed afterwards.
func TestMain(m *testing.M) {
	code := m.Run()
	testkit.RemoveBinaries()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			os.Stderr.WriteString("goleak: " + err.Error() + "\n")
			code = 1
		}
	}
	os.Exit(code)
}
