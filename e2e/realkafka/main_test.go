// Package realkafka tests the exporter, as a black box, against a real
// Apache Kafka cluster (scripts/kafka-cluster.sh) with real Java, kcat,
// sarama and franz-go consumer groups, and compares what it exports with
// the broker's own answers: kafka-consumer-groups, the GroupMetadata records
// in __consumer_offsets, and ConsumerGroupDescribe.
//
// TestMain starts one cluster for the package (about 15 s once the jars are
// cached), or uses a running one: KRE_REALKAFKA_DIR=<dir of
// `scripts/kafka-cluster.sh start --dir <dir>`>.
package realkafka

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/realkafka"
)

// world is what TestMain sets up for every test.
var world struct {
	cluster  *realkafka.Cluster
	exporter string // the exporter binary
	self     string // this test binary, re-executed as Go members
	offsets  *realkafka.OffsetsLog
	client   *kgo.Client // super user, PLAINTEXT
	tmp      string
	run      string // suffix of this run's topic and group names
}

func TestMain(m *testing.M) {
	if code, ok := realkafka.GoMemberMain(); ok {
		os.Exit(code)
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
	tmp, err := os.MkdirTemp("", "realkafka-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	world.tmp = tmp
	world.run = strconv.FormatInt(time.Now().Unix()%100000, 36)
	if world.self, err = os.Executable(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	built := make(chan error, 1)
	go func() { built <- buildExporter(tmp) }()
	stop, err := startCluster(tmp)
	if err != nil {
		fmt.Fprintln(os.Stderr, "real Kafka cluster:", err)
		return 1
	}
	defer stop()
	if err := <-built; err != nil {
		fmt.Fprintln(os.Stderr, "building the exporter:", err)
		return 1
	}
	if world.offsets, err = realkafka.TailOffsetsLog(world.cluster.Plaintext); err != nil {
		fmt.Fprintln(os.Stderr, "tailing __consumer_offsets:", err)
		return 1
	}
	defer world.offsets.Close()
	if world.client, err = world.cluster.Client(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer world.client.Close()
	return m.Run()
}

func startCluster(tmp string) (func(), error) {
	if dir := os.Getenv("KRE_REALKAFKA_DIR"); dir != "" {
		c, err := realkafka.Attach(dir)
		world.cluster = c
		return func() {}, err
	}
	t0 := time.Now()
	c, err := realkafka.Start(context.Background(), realkafka.StartOptions{
		Version: os.Getenv("KRE_REALKAFKA_VERSION"), Dir: filepath.Join(tmp, "cluster"),
		BasePort: 19092,
	})
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "realkafka: Kafka %s cluster started in %s\n", c.Version, time.Since(t0).Round(time.Millisecond))
	world.cluster = c
	return func() {
		t1 := time.Now()
		if err := c.Stop(context.Background()); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
		fmt.Fprintf(os.Stderr, "realkafka: cluster stopped in %s\n", time.Since(t1).Round(time.Millisecond))
	}, nil
}

func buildExporter(tmp string) error {
	root, err := realkafka.RepoRoot()
	if err != nil {
		return err
	}
	world.exporter = filepath.Join(tmp, "exporter")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", world.exporter, "./cmd/exporter")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%w\n%s", err, out)
	}
	return nil
}
