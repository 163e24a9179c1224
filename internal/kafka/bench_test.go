package kafka_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/kafkatest"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/testkit"
)

// BenchmarkPollCycle measures one groups poll plus one offsets poll against
// a three-broker kfake cluster holding N groups with committed offsets on
// a 12-partition topic, and reports the Kafka requests one cycle sends.
//
//	go test -run '^$' -bench PollCycle -benchtime 20x ./poller/
func BenchmarkPollCycle(b *testing.B) {
	for _, groups := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("groups=%d", groups), func(b *testing.B) {
			c := kafkatest.NewCluster(b)
			addrs := c.ListenAddrs()
			kafkatest.CreateTopic(b, addrs, "bench", 12)
			parts := make([]int32, 12)
			for i := range parts {
				parts[i] = int32(i)
			}
			kafkatest.Produce(b, addrs, "bench", parts, 10)
			cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
			if err != nil {
				b.Fatal(err)
			}
			defer cl.Close()
			adm := kadm.NewClient(cl)
			ctx := context.Background()
			for g := 0; g < groups; g++ {
				var os kadm.Offsets
				for _, p := range parts {
					os.AddOffset("bench", p, int64(g%10), -1)
				}
				if _, err := adm.CommitOffsets(ctx, fmt.Sprintf("bench-%05d", g), os); err != nil {
					b.Fatal(err)
				}
			}
			e := kafkatest.NewExporter(b, kafkatest.ConfigTB(b, addrs, nil))
			e.Poll(b)
			before := requests(b, e)
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				e.Poll(b)
			}
			elapsed := time.Since(start)
			b.StopTimer()
			if n := len(e.Store.Current().Groups.Groups); n != groups {
				b.Fatalf("saw %d groups, want %d", n, groups)
			}
			b.ReportMetric((requests(b, e)-before)/float64(b.N), "requests/cycle")
			b.ReportMetric(elapsed.Seconds()*1000/float64(b.N), "ms/cycle")
		})
	}
}

// requests is how many Kafka requests the exporter has sent.
func requests(b *testing.B, e *kafkatest.Exporter) float64 {
	return testkit.Collect(b, e.Poller.Metrics()).Sum("kafka_rebalance_exporter_kafka_requests_total")
}
