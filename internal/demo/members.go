package demo

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"
)

type memberKind int

const (
	// saramaCooperative: cooperative-sticky, protocol version 3.2 so the
	// subscription metadata carries the KIP-792 generation.
	saramaCooperative memberKind = iota
	// saramaRangeNoGeneration: range balancer at protocol version 2.4,
	// whose subscription metadata (v1) has no generation field.
	saramaRangeNoGeneration
	// kgoClassic: franz-go classic cooperative-sticky; franz-go always
	// sends the generation.
	kgoClassic
	// kgoConsumer848: franz-go KIP-848 member, server-side assignor.
	kgoConsumer848
)

type memberSpec struct {
	group string
	kind  memberKind
	pace  *pacer // nil: consume as fast as possible
}

// member is one running group member. stop leaves the group cleanly; crash
// cuts the member's connections first so it vanishes without leaving and
// the coordinator only notices at the session timeout.
type member struct {
	clientID string
	cancel   context.CancelFunc
	dialer   *severableDialer
	done     chan struct{}
}

func (m *member) stop() {
	m.cancel()
	<-m.done
}

func (m *member) crash() {
	m.dialer.sever()
	m.cancel()
	<-m.done
}

func (w *Workload) startMember(spec memberSpec) *member {
	ctx, cancel := context.WithCancel(w.ctx)
	m := &member{
		clientID: fmt.Sprintf("%s-%s-%d", w.opts.ClientIDPrefix, strings.TrimPrefix(spec.group, "demo-"), w.memberSeq.Add(1)),
		cancel:   cancel,
		dialer:   newSeverableDialer(),
		done:     make(chan struct{}),
	}
	log := w.log.With().Str("group", spec.group).Str("client_id", m.clientID).Logger()
	w.spawn(func() {
		defer close(m.done)
		defer cancel()
		switch spec.kind {
		case saramaCooperative, saramaRangeNoGeneration:
			w.runSaramaMember(ctx, m, spec, log)
		default:
			w.runKgoMember(ctx, m, spec, log)
		}
	})
	return m
}

func (w *Workload) saramaConfig(m *member, kind memberKind) *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.ClientID = m.clientID
	switch kind {
	case saramaRangeNoGeneration:
		cfg.Version = sarama.V2_4_0_0
		cfg.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{sarama.NewBalanceStrategyRange()}
	default:
		cfg.Version = sarama.V3_2_0_0
		cfg.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{sarama.NewBalanceStrategyCooperativeSticky()}
	}
	// JoinGroup and SyncGroup may legitimately block for the rebalance
	// timeout; beyond that a reply is not coming, and sarama's default 30s
	// read timeout would leave the member hanging for long after.
	cfg.Net.ReadTimeout = w.opts.RebalanceTimeout + 5*time.Second
	cfg.Net.Proxy.Enable = true
	cfg.Net.Proxy.Dialer = m.dialer
	cfg.Consumer.Return.Errors = true
	// A fetch long-poll delays whatever sarama queued behind it on the same
	// connection, including a group leader's metadata refresh between
	// JoinGroup and SyncGroup; a short wait keeps rebalances quick.
	cfg.Consumer.MaxWaitTime = 200 * time.Millisecond
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.Offsets.AutoCommit.Enable = true
	cfg.Consumer.Offsets.AutoCommit.Interval = w.opts.CommitInterval
	cfg.Consumer.Group.Session.Timeout = w.opts.SessionTimeout
	cfg.Consumer.Group.Heartbeat.Interval = w.opts.HeartbeatInterval
	cfg.Consumer.Group.Rebalance.Timeout = w.opts.RebalanceTimeout
	// A member whose join or sync hits REBALANCE_IN_PROGRESS does not
	// heartbeat while it backs off; sarama's default 2s backoff would let
	// short sessions expire and turn every join into two rebalances.
	cfg.Consumer.Group.Rebalance.Retry.Backoff = w.opts.HeartbeatInterval
	return cfg
}

func (w *Workload) runSaramaMember(ctx context.Context, m *member, spec memberSpec, log zerolog.Logger) {
	cfg := w.saramaConfig(m, spec.kind)
	var group sarama.ConsumerGroup
	for {
		var err error
		if group, err = sarama.NewConsumerGroup(w.brokers, spec.group, cfg); err == nil {
			break
		}
		log.Warn().Err(err).Msg("creating consumer group member failed; retrying")
		if !sleepCtx(ctx, time.Second) {
			return
		}
	}

	var drained sync.WaitGroup
	drained.Add(1)
	go func() {
		defer drained.Done()
		for err := range group.Errors() {
			log.Debug().Err(err).Msg("consumer group member error")
		}
	}()

	h := &saramaHandler{group: spec.group, gens: w.gens, pace: spec.pace}
	topics := groupTopics[spec.group]
	for ctx.Err() == nil {
		// An eager (range) member returns from Consume at every rebalance
		// and has to be called again; a cooperative one stays inside.
		if err := group.Consume(ctx, topics, h); err != nil && ctx.Err() == nil {
			log.Debug().Err(err).Msg("consume session ended with an error; rejoining")
			sleepCtx(ctx, 500*time.Millisecond)
		}
	}
	// After a crash this LeaveGroup cannot reach the broker: intended.
	if err := group.Close(); err != nil && !m.dialer.isSevered() {
		log.Debug().Err(err).Msg("closing consumer group member")
	}
	drained.Wait()
	h.watchers.Wait()
}

// saramaHandler consumes and marks every message, optionally paced, and
// reports the session's generation to the tracker.
type saramaHandler struct {
	group    string
	gens     *generationTracker
	pace     *pacer
	watchers sync.WaitGroup
}

func (h *saramaHandler) Setup(s sarama.ConsumerGroupSession) error {
	h.gens.observe(h.group, s.GenerationID())
	// A cooperative session outlives rebalances and calls Setup only once,
	// so the generation has to be sampled while the session runs.
	h.watchers.Add(1)
	go func() {
		defer h.watchers.Done()
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-s.Context().Done():
				return
			case <-t.C:
				h.gens.observe(h.group, s.GenerationID())
			}
		}
	}()
	return nil
}

func (h *saramaHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }

func (h *saramaHandler) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	h.gens.observe(h.group, s.GenerationID())
	for {
		select {
		case msg, ok := <-c.Messages():
			if !ok {
				return nil
			}
			if h.pace != nil && !h.pace.wait(s.Context()) {
				return nil
			}
			s.MarkMessage(msg, "")
		case <-s.Context().Done():
			return nil
		}
	}
}

func (w *Workload) runKgoMember(ctx context.Context, m *member, spec memberSpec, log zerolog.Logger) {
	// The client's own context is separate from ctx so that a normal stop
	// can still leave the group; cancelling it makes Close skip the leave.
	life, endLife := context.WithCancel(context.Background())
	defer endLife()

	group := spec.group
	opts := []kgo.Opt{
		kgo.SeedBrokers(w.brokers...),
		kgo.ClientID(m.clientID),
		kgo.WithContext(life),
		kgo.Dialer(m.dialer.DialContext),
		kgo.WithLogger(kgoLogger{log}),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(groupTopics[group]...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.AutoCommitInterval(w.opts.CommitInterval),
		kgo.OnPartitionsAssigned(func(_ context.Context, cl *kgo.Client, _ map[string][]int32) {
			_, gen := cl.GroupMetadata()
			w.gens.observe(group, gen)
		}),
	}
	if spec.kind == kgoConsumer848 {
		opts = append(opts, kgo.ServerSideBalancer())
	} else {
		opts = append(opts,
			kgo.SessionTimeout(w.opts.SessionTimeout),
			kgo.HeartbeatInterval(w.opts.HeartbeatInterval),
			kgo.RebalanceTimeout(w.opts.RebalanceTimeout),
		)
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		log.Error().Err(err).Msg("creating franz-go group member")
		return
	}

	for {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			break
		}
		failed := false
		fetches.EachError(func(topic string, partition int32, err error) {
			failed = true
			log.Debug().Err(err).Str("topic", topic).Int32("partition", partition).Msg("fetch error")
		})
		_, gen := cl.GroupMetadata()
		w.gens.observe(group, gen)
		if failed && fetches.NumRecords() == 0 {
			sleepCtx(ctx, 200*time.Millisecond)
		}
	}

	if m.dialer.isSevered() {
		endLife()
	}
	bound := time.AfterFunc(w.opts.ShutdownTimeout, endLife)
	cl.Close()
	bound.Stop()
}
