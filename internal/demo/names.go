package demo

// Topic names the workload creates and produces to.
const (
	TopicOrders   = "demo.orders"
	TopicPayments = "demo.payments"
	TopicAudit    = "demo.audit"
)

// Consumer group names the workload runs.
const (
	GroupFast       = "demo-fast"
	GroupSlow       = "demo-slow"
	GroupIdle       = "demo-idle"
	GroupChurnRange = "demo-churn-range"
	GroupChurnCoop  = "demo-churn-coop"
	GroupChurn848   = "demo-churn-848"
)

// Topic describes one workload topic.
type Topic struct {
	Name       string
	Partitions int32
	// Weight is the topic's share of ProduceRate, out of the sum of all
	// weights.
	Weight int
}

// Topics returns the workload topics in creation order.
func Topics() []Topic {
	return []Topic{
		{Name: TopicOrders, Partitions: 6, Weight: 6},
		{Name: TopicPayments, Partitions: 3, Weight: 3},
		{Name: TopicAudit, Partitions: 2, Weight: 1},
	}
}

// GroupNames returns every group the workload can run, including
// GroupChurn848 which is skipped on brokers without KIP-848.
func GroupNames() []string {
	return []string{GroupFast, GroupSlow, GroupIdle, GroupChurnRange, GroupChurnCoop, GroupChurn848}
}

// ChurnGroupNames returns the groups that rebalance every ChurnInterval.
func ChurnGroupNames() []string {
	return []string{GroupChurnRange, GroupChurnCoop, GroupChurn848}
}

// groupTopics is what each group subscribes to.
var groupTopics = map[string][]string{
	GroupFast:       {TopicOrders, TopicPayments, TopicAudit},
	GroupSlow:       {TopicOrders, TopicPayments},
	GroupIdle:       {TopicAudit},
	GroupChurnRange: {TopicOrders},
	GroupChurnCoop:  {TopicOrders},
	GroupChurn848:   {TopicOrders},
}

// GroupTopics returns the topics a group subscribes to, or nil for an
// unknown group.
func GroupTopics(group string) []string {
	return append([]string(nil), groupTopics[group]...)
}
