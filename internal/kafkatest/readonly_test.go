package kafkatest

import (
	"strings"
	"testing"

	"github.com/IBM/sarama"
)

// The recorder sees the exporter's own requests, and would see a write.
func TestRequestRecorderSeesReadsAndWrites(t *testing.T) {
	c := NewCluster(t)
	addrs := c.ListenAddrs()
	CreateTopic(t, addrs, "rec", 2)

	// The exporter's poll: reads only, and some of them.
	e := NewExporter(t, Config(t, addrs, nil))
	e.Poll(t)

	// A producer through the same recorder is caught.
	sc := sarama.NewConfig()
	sc.Version = sarama.V2_8_0_0
	sc.Producer.Return.Successes = true
	log := recordRequests(sc)
	p, err := sarama.NewSyncProducer(addrs, sc)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: "rec", Value: sarama.StringEncoder("x")}); err != nil {
		t.Fatal(err)
	}
	_ = p.Close()
	writes, total := log.writes()
	if total < 2 || len(writes) != 1 || !strings.HasSuffix(writes[0], " Produce") {
		t.Fatalf("recorded writes %v of %d requests, want the Produce", writes, total)
	}
}
