package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/demo"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/kafkatest"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/testkit"
)

// TestLoadgen runs the loadgen binary, as docker compose does, against a
// Kafka it did not start (an in-process kfake cluster), with the storm on
// and the normal churn made too slow to matter. It checks that the demo
// groups consume and commit, that a churn group's membership changes (only
// the storm can do that within the bound), and that SIGTERM stops it
// cleanly.
func TestLoadgen(t *testing.T) {
	bin := testkit.Binary(t, "loadgen")
	cluster, err := demo.StartCluster(demo.ClusterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)

	lg := testkit.StartT(t, "loadgen", repoRoot(t), []string{
		"KRE_BROKERS=" + strings.Join(cluster.Addrs(), ","),
		"KRE_DEMO_CHURN_INTERVAL=1h",
		"KRE_LOG_LEVEL=warn",
	}, bin, "-storm", "-produce-rate", "50")

	adm := kafkatest.Admin(t, cluster.Addrs())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	testkit.Eventually(t, 60*time.Second, 500*time.Millisecond, "demo-fast commits offsets", lg.Alive(func() error {
		offsets, err := adm.FetchOffsets(ctx, demo.GroupFast)
		if err != nil {
			return err
		}
		var committed int64
		offsets.Each(func(o kadm.OffsetResponse) { committed += max(o.At, 0) })
		if committed == 0 {
			return fmt.Errorf("no committed offsets yet")
		}
		return nil
	}))

	seen := map[int]bool{}
	testkit.Eventually(t, 60*time.Second, 200*time.Millisecond, "storm changes demo-churn-coop's membership", lg.Alive(func() error {
		groups, err := adm.DescribeGroups(ctx, demo.GroupChurnCoop)
		if err != nil {
			return err
		}
		g, ok := groups[demo.GroupChurnCoop]
		if !ok || g.Err != nil {
			return fmt.Errorf("describe %s: %v", demo.GroupChurnCoop, g.Err)
		}
		if g.State == "Stable" {
			seen[len(g.Members)] = true
		}
		if len(seen) < 2 {
			return fmt.Errorf("stable member counts seen so far: %v", seen)
		}
		return nil
	}))

	if err := lg.Stop(20 * time.Second); err != nil {
		t.Fatalf("loadgen on SIGTERM: %v", err)
	}
	if err := lg.ExitErr(); err != nil {
		t.Fatalf("loadgen exited with %v\n%s", err, lg.Out.Tail(2000))
	}
}
