package realkafka

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/realkafka"
)

// brokerGroup is a group as its coordinator describes it: DescribeGroups
// for classic groups, ConsumerGroupDescribe for KIP-848 ones.
type brokerGroup struct {
	State   string
	Members int
	// Epoch and AssignmentEpoch: KIP-848 only; Settled: every member's
	// epoch is the group epoch (reconciliation done).
	Epoch, AssignmentEpoch int32
	Settled                bool
}

func brokerState(adm *kadm.Client, group string) (brokerGroup, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		return brokerGroup{}, err
	}
	g, ok := d[group]
	if ok && g.Err == nil && g.State != "Dead" {
		return brokerGroup{State: g.State, Members: len(g.Members), Settled: true}, nil
	}
	c, err := realkafka.DescribeConsumerGroup(ctx, world.client, group)
	if err != nil {
		return brokerGroup{}, fmt.Errorf("DescribeGroups %v; ConsumerGroupDescribe %w", g.Err, err)
	}
	settled := c.Epoch == c.AssignmentEpoch
	for _, m := range c.Members {
		settled = settled && m.MemberEpoch == c.Epoch
	}
	return brokerGroup{State: c.State, Members: len(c.Members), Epoch: c.Epoch, AssignmentEpoch: c.AssignmentEpoch, Settled: settled}, nil
}
