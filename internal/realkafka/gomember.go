package realkafka

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Go member kinds, run as a child process (so that they can be killed and
// frozen like the others) by a test binary that calls GoMemberMain.
const (
	KindSarama = "sarama"
	KindFranz  = "franz-go"
)

// GoMemberEnv is the environment variable that tells a test binary to run
// a Go member instead of its tests; it holds the JSON GoMemberConfig.
const GoMemberEnv = "REALKAFKA_GO_MEMBER"

// GoMemberConfig configures a Go member process.
type GoMemberConfig struct {
	Kind           string   `json:"kind"`
	Brokers        []string `json:"brokers"`
	Group          string   `json:"group"`
	Topics         []string `json:"topics"`
	ClientID       string   `json:"client_id"`
	SessionTimeout Duration `json:"session_timeout"`
	RebalanceTO    Duration `json:"rebalance_timeout"`
	// Balancer: sarama "range" (default), "roundrobin", "sticky",
	// "cooperative-sticky"; franz-go "cooperative-sticky" (default),
	// "range".
	Balancer string `json:"balancer"`
}

// Duration is a time.Duration in JSON as a string ("6s").
type Duration time.Duration

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	*d = Duration(v)
	return err
}

// StartGoMember re-executes bin (a test binary whose TestMain calls
// GoMemberMain) as a member of cfg's kind.
func StartGoMember(bin, name string, cfg GoMemberConfig) (*Member, error) {
	b, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	m := newMember(cfg.Kind, cfg.Group)
	p, err := StartProc(name, []string{GoMemberEnv + "=" + string(b)}, m.onJSONLine, nil, bin, "-test.run=^$")
	if err != nil {
		return nil, err
	}
	m.Proc = p
	return m, nil
}

// GoMemberMain runs the member that GoMemberEnv describes until SIGTERM,
// printing its events as JSON lines; SIGUSR1 toggles a stall (it stops
// consuming but keeps its session). It returns the exit code; ok is false
// when the variable is not set (run the tests).
func GoMemberMain() (code int, ok bool) {
	raw := os.Getenv(GoMemberEnv)
	if raw == "" {
		return 0, false
	}
	var cfg GoMemberConfig
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		fmt.Fprintln(os.Stderr, "member config:", err)
		return 2, true
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	stall := &atomic.Bool{}
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	go func() {
		for range usr1 {
			stall.Store(!stall.Load())
		}
	}()
	var err error
	switch cfg.Kind {
	case KindSarama:
		err = runSarama(ctx, cfg, stall)
	case KindFranz:
		err = runFranz(ctx, cfg, stall)
	default:
		err = fmt.Errorf("unknown member kind %q", cfg.Kind)
	}
	emit(jsonEvent{Name: EvShutdown})
	if err != nil {
		fmt.Fprintln(os.Stderr, "member:", err)
		return 1, true
	}
	return 0, true
}

var emitMu sync.Mutex

func emit(e jsonEvent) {
	e.Timestamp = time.Now().UnixMilli()
	b, _ := json.Marshal(e)
	emitMu.Lock()
	defer emitMu.Unlock()
	fmt.Println(string(b))
}

func gen(g int32) *int32 { return &g }

func partitionsOf(m map[string][]int32) []TopicPartition {
	var out []TopicPartition
	for t, ps := range m {
		for _, p := range ps {
			out = append(out, TopicPartition{Topic: t, Partition: p})
		}
	}
	SortPartitions(out)
	return out
}

// saramaHandler reports Setup and Cleanup as assigned and revoked.
type saramaHandler struct{ stall *atomic.Bool }

func (h saramaHandler) Setup(s sarama.ConsumerGroupSession) error {
	emit(jsonEvent{Name: EvAssigned, Partitions: partitionsOf(s.Claims()), Generation: gen(s.GenerationID())})
	return nil
}

func (h saramaHandler) Cleanup(s sarama.ConsumerGroupSession) error {
	emit(jsonEvent{Name: EvRevoked, Partitions: partitionsOf(s.Claims()), Generation: gen(s.GenerationID())})
	return nil
}

func (h saramaHandler) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for {
		if h.stall.Load() {
			select {
			case <-s.Context().Done():
				return nil
			case <-time.After(100 * time.Millisecond):
				continue
			}
		}
		select {
		case <-s.Context().Done():
			return nil
		case msg, ok := <-c.Messages():
			if !ok {
				return nil
			}
			s.MarkMessage(msg, "")
		}
	}
}

func saramaConfig(cfg GoMemberConfig) *sarama.Config {
	sc := sarama.NewConfig()
	sc.Version = sarama.V3_6_0_0
	sc.ClientID = cfg.ClientID
	sc.Consumer.Offsets.Initial = sarama.OffsetOldest
	sc.Consumer.Offsets.AutoCommit.Interval = 200 * time.Millisecond
	sc.Consumer.Group.Session.Timeout = time.Duration(cfg.SessionTimeout)
	sc.Consumer.Group.Heartbeat.Interval = time.Second
	sc.Consumer.Group.Rebalance.Timeout = time.Duration(cfg.RebalanceTO)
	sc.Consumer.Group.Rebalance.Retry.Backoff = 500 * time.Millisecond
	switch cfg.Balancer {
	case "roundrobin":
		sc.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{sarama.NewBalanceStrategyRoundRobin()}
	case "sticky":
		sc.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{sarama.NewBalanceStrategySticky()}
	default:
		sc.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{sarama.NewBalanceStrategyRange()}
	}
	return sc
}

func runSarama(ctx context.Context, cfg GoMemberConfig, stall *atomic.Bool) error {
	g, err := sarama.NewConsumerGroup(cfg.Brokers, cfg.Group, saramaConfig(cfg))
	if err != nil {
		return err
	}
	go func() {
		for err := range g.Errors() {
			fmt.Fprintln(os.Stderr, "sarama:", err)
		}
	}()
	emit(jsonEvent{Name: EvStartup})
	for ctx.Err() == nil {
		if err := g.Consume(ctx, cfg.Topics, saramaHandler{stall: stall}); err != nil && !errors.Is(err, sarama.ErrClosedConsumerGroup) {
			fmt.Fprintln(os.Stderr, "sarama consume:", err)
			time.Sleep(500 * time.Millisecond)
		}
	}
	return g.Close()
}

func runFranz(ctx context.Context, cfg GoMemberConfig, stall *atomic.Bool) error {
	var cl *kgo.Client
	report := func(name string) func(context.Context, *kgo.Client, map[string][]int32) {
		return func(_ context.Context, c *kgo.Client, m map[string][]int32) {
			_, g := c.GroupMetadata()
			emit(jsonEvent{Name: name, Partitions: partitionsOf(m), Generation: gen(g)})
		}
	}
	balancer := kgo.CooperativeStickyBalancer()
	if cfg.Balancer == "range" {
		balancer = kgo.RangeBalancer()
	}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ClientID(cfg.ClientID),
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(cfg.Topics...),
		kgo.Balancers(balancer),
		kgo.SessionTimeout(time.Duration(cfg.SessionTimeout)),
		kgo.RebalanceTimeout(time.Duration(cfg.RebalanceTO)),
		kgo.HeartbeatInterval(time.Second),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.AutoCommitInterval(200*time.Millisecond),
		kgo.OnPartitionsAssigned(report(EvAssigned)),
		kgo.OnPartitionsRevoked(report(EvRevoked)),
		kgo.OnPartitionsLost(report(EvRevoked)),
	)
	if err != nil {
		return err
	}
	emit(jsonEvent{Name: EvStartup})
	for ctx.Err() == nil {
		if stall.Load() {
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		fs := cl.PollFetches(pctx)
		cancel()
		fs.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				fmt.Fprintf(os.Stderr, "franz-go fetch %s[%d]: %v\n", t, p, err)
			}
		})
	}
	cl.Close() // commits and leaves the group
	return nil
}
