package realkafka

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// Client is a franz-go client on the PLAINTEXT listener (a super user).
func (c *Cluster) Client(opts ...kgo.Opt) (*kgo.Client, error) {
	return kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.Plaintext...)}, opts...)...)
}

// Admin is a kadm client on the PLAINTEXT listener.
func (c *Cluster) Admin() (*kadm.Client, error) {
	cl, err := c.Client()
	if err != nil {
		return nil, err
	}
	return kadm.NewClient(cl), nil
}

// SASLClient is a franz-go client for user on the SASL_PLAINTEXT listener.
func (c *Cluster) SASLClient(mechanism, user string, opts ...kgo.Opt) (*kgo.Client, error) {
	var m kgo.Opt
	switch mechanism {
	case "PLAIN":
		m = kgo.SASL(plain.Auth{User: user, Pass: Password(user)}.AsMechanism())
	case "SCRAM-SHA-256":
		m = kgo.SASL(scram.Auth{User: user, Pass: Password(user)}.AsSha256Mechanism())
	case "SCRAM-SHA-512":
		m = kgo.SASL(scram.Auth{User: user, Pass: Password(user)}.AsSha512Mechanism())
	default:
		return nil, fmt.Errorf("unknown SASL mechanism %s", mechanism)
	}
	return kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.SASLPlaintext...), m}, opts...)...)
}

// TLSConfig trusts the cluster's CA.
func (c *Cluster) TLSConfig() (*tls.Config, error) {
	pem, err := os.ReadFile(c.CAFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("no certificate in %s", c.CAFile)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

// CreateTopic creates a topic with replication factor 3 and waits until
// the metadata lists it with a leader for every partition (a broker
// asked right after may still not know it: clients must refresh).
func CreateTopic(ctx context.Context, adm *kadm.Client, topic string, partitions int32) error {
	res, err := adm.CreateTopic(ctx, partitions, 3, nil, topic)
	if err != nil {
		return err
	}
	if res.Err != nil {
		return fmt.Errorf("create topic %s: %w", topic, res.Err)
	}
	for {
		md, err := adm.Metadata(ctx, topic)
		if err == nil {
			if d, ok := md.Topics[topic]; ok && d.Err == nil && len(d.Partitions) == int(partitions) && allLeaders(d) {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("topic %s not ready: %w", topic, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func allLeaders(d kadm.TopicDetail) bool {
	for _, p := range d.Partitions {
		if p.Leader < 0 || p.Err != nil {
			return false
		}
	}
	return true
}

// Group848 is a KIP-848 group as ConsumerGroupDescribe answers it.
type Group848 struct {
	Group           string
	State           string
	Epoch           int32
	AssignmentEpoch int32
	Assignor        string
	Members         []kmsg.ConsumerGroupDescribeResponseGroupMember
}

// DescribeConsumerGroup sends ConsumerGroupDescribe for group to its
// coordinator (franz-go routes it) and returns the broker's answer.
func DescribeConsumerGroup(ctx context.Context, cl *kgo.Client, group string) (Group848, error) {
	req := kmsg.NewPtrConsumerGroupDescribeRequest()
	req.Groups = []string{group}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return Group848{}, err
	}
	if len(resp.Groups) != 1 {
		return Group848{}, fmt.Errorf("ConsumerGroupDescribe %s: %d groups in the answer", group, len(resp.Groups))
	}
	g := resp.Groups[0]
	if err := kerr.ErrorForCode(g.ErrorCode); err != nil {
		return Group848{}, fmt.Errorf("ConsumerGroupDescribe %s: %w", group, err)
	}
	return Group848{Group: g.Group, State: g.State, Epoch: g.Epoch, AssignmentEpoch: g.AssignmentEpoch,
		Assignor: g.AssignorName, Members: g.Members}, nil
}
