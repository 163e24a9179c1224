package realkafka

import (
	"context"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/realkafka"
)

// TestClusterScriptRefusesSecondStart: starting the running cluster's
// directory again, or another directory on its ports, fails at once with a
// message that says why.
func TestClusterScriptRefusesSecondStart(t *testing.T) {
	_, port, err := net.SplitHostPort(world.cluster.Plaintext[0])
	if err != nil {
		t.Fatal(err)
	}
	base, _ := strconv.Atoi(port)
	for _, c := range []struct {
		name, dir, want string
	}{
		{"same directory", world.cluster.Dir, "already running"},
		{"ports taken", filepath.Join(t.TempDir(), "other"), "ports in use"},
	} {
		_, err := realkafka.Start(context.Background(), realkafka.StartOptions{Version: world.cluster.Version, Dir: c.dir, BasePort: base})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: start returned %v, want an error saying %q", c.name, err, c.want)
		}
	}
}
