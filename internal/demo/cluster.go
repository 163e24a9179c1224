package demo

import (
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// ClusterOptions configures StartCluster. Zero values take the defaults.
type ClusterOptions struct {
	// Brokers is the number of brokers; default 3.
	Brokers int
	// MinSessionTimeout is the smallest classic-group session timeout the
	// brokers accept; default 500ms so tests can make dead members expire
	// quickly. Real Kafka defaults to 6s.
	MinSessionTimeout time.Duration
	// ConsumerSessionTimeout is the broker-side KIP-848 session timeout
	// (group.consumer.session.timeout.ms); default 10s instead of Kafka's
	// 45s so a member that dies without leaving is fenced visibly soon.
	ConsumerSessionTimeout time.Duration
	// ConsumerHeartbeatInterval is the broker-side KIP-848 heartbeat
	// interval (group.consumer.heartbeat.interval.ms); default 1s.
	ConsumerHeartbeatInterval time.Duration
	// ExtraOpts are applied after the options above, so they win; for
	// example kfake.MaxVersions(kversion.V2_8_0()).
	ExtraOpts []kfake.Opt
}

// Cluster is an in-process kfake cluster.
type Cluster struct {
	fake *kfake.Cluster
}

// StartCluster starts an in-process Kafka cluster listening on loopback.
func StartCluster(opts ClusterOptions) (*Cluster, error) {
	if opts.Brokers <= 0 {
		opts.Brokers = 3
	}
	if opts.MinSessionTimeout <= 0 {
		opts.MinSessionTimeout = 500 * time.Millisecond
	}
	if opts.ConsumerSessionTimeout <= 0 {
		opts.ConsumerSessionTimeout = 10 * time.Second
	}
	if opts.ConsumerHeartbeatInterval <= 0 {
		opts.ConsumerHeartbeatInterval = time.Second
	}
	kopts := []kfake.Opt{
		kfake.NumBrokers(opts.Brokers),
		kfake.GroupMinSessionTimeout(opts.MinSessionTimeout),
		kfake.BrokerConfigs(map[string]string{
			"group.consumer.session.timeout.ms":    strconv.FormatInt(opts.ConsumerSessionTimeout.Milliseconds(), 10),
			"group.consumer.heartbeat.interval.ms": strconv.FormatInt(opts.ConsumerHeartbeatInterval.Milliseconds(), 10),
		}),
	}
	kopts = append(kopts, opts.ExtraOpts...)
	fake, err := kfake.NewCluster(kopts...)
	if err != nil {
		return nil, fmt.Errorf("starting kfake cluster: %w", err)
	}
	return &Cluster{fake: fake}, nil
}

// Addrs returns the brokers' host:port addresses.
func (c *Cluster) Addrs() []string { return c.fake.ListenAddrs() }

// Fake exposes the kfake cluster for tests that need its Control hooks.
func (c *Cluster) Fake() *kfake.Cluster { return c.fake }

// Close shuts the cluster down. Stop workloads against it first, or their
// clients will spend their retry budgets on a cluster that is gone.
func (c *Cluster) Close() { c.fake.Close() }
