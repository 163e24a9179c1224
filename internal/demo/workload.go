package demo

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// WorkloadOptions configures RunWorkload. ProduceRate and ChurnInterval
// are required (the exporter's configuration holds their defaults:
// KRE_DEMO_PRODUCE_RATE, KRE_DEMO_CHURN_INTERVAL); the other fields are
// the demo's own tuning, and zero values take the defaults given.
type WorkloadOptions struct {
	// ProduceRate is records per second across all topics, split by
	// Topic.Weight.
	ProduceRate int
	// ChurnInterval is how often each churn group gains or loses its extra
	// member, i.e. how often it rebalances.
	ChurnInterval time.Duration
	// StormInterval replaces ChurnInterval while a Storm runs; default 3s.
	StormInterval time.Duration
	// CrashEvery makes every Nth removal of an extra member a crash (no
	// LeaveGroup) instead of a clean leave; default 3, negative disables.
	// Storms only do clean leaves.
	CrashEvery int

	// SlowRate is the records per second demo-slow processes while
	// throttled; default ProduceRate/4 (at least 1).
	SlowRate int
	// SlowPhase is how long demo-slow stays throttled; default 5m.
	SlowPhase time.Duration
	// CatchUpPhase is how long demo-slow then runs unthrottled to work its
	// lag off; default 1m, negative means it never catches up.
	CatchUpPhase time.Duration

	// IdleRecords is how many records demo-idle consumes before it commits
	// and leaves; default 50.
	IdleRecords int

	// SessionTimeout for classic groups; default 6s, the smallest real
	// Kafka accepts by default. KIP-848 session timeouts are broker-side
	// (see ClusterOptions.ConsumerSessionTimeout).
	SessionTimeout time.Duration
	// HeartbeatInterval for classic groups; default SessionTimeout/6.
	HeartbeatInterval time.Duration
	// RebalanceTimeout for classic groups; default 2*SessionTimeout.
	RebalanceTimeout time.Duration
	// CommitInterval is the auto-commit interval of every group member;
	// default 1s.
	CommitInterval time.Duration
	// ShutdownTimeout bounds how long a franz-go member waits to leave its
	// group on stop; default 10s.
	ShutdownTimeout time.Duration

	// ClientIDPrefix starts every client ID; default "demo".
	ClientIDPrefix string
	// Logger receives the workload's logs; the zero value logs nothing.
	Logger zerolog.Logger
}

func (o WorkloadOptions) withDefaults() WorkloadOptions {
	if o.StormInterval <= 0 {
		o.StormInterval = 3 * time.Second
	}
	if o.CrashEvery == 0 {
		o.CrashEvery = 3
	}
	if o.SlowRate <= 0 {
		o.SlowRate = max(o.ProduceRate/4, 1)
	}
	if o.SlowPhase <= 0 {
		o.SlowPhase = 5 * time.Minute
	}
	if o.CatchUpPhase == 0 {
		o.CatchUpPhase = time.Minute
	}
	if o.IdleRecords <= 0 {
		o.IdleRecords = 50
	}
	if o.SessionTimeout <= 0 {
		o.SessionTimeout = 6 * time.Second
	}
	if o.HeartbeatInterval <= 0 {
		o.HeartbeatInterval = (o.SessionTimeout / 6).Truncate(time.Millisecond)
	}
	if o.RebalanceTimeout <= 0 {
		o.RebalanceTimeout = 2 * o.SessionTimeout
	}
	if o.CommitInterval <= 0 {
		o.CommitInterval = time.Second
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = 10 * time.Second
	}
	if o.ClientIDPrefix == "" {
		o.ClientIDPrefix = "demo"
	}
	return o
}

// Workload is a running producer plus the demo consumer groups.
type Workload struct {
	opts    WorkloadOptions
	log     zerolog.Logger
	brokers []string
	kip848  bool
	groups  []string
	started time.Time

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	gens       *generationTracker
	produced   atomic.Int64
	memberSeq  atomic.Int64
	stormUntil atomic.Int64 // unix nanos
	churners   []*churner
	closeOnce  sync.Once
}

// RunWorkload creates the demo topics on brokers (existing ones are kept)
// and starts the producer and every demo group. It returns once setup
// requests succeeded; the groups join in the background. Everything runs
// until ctx is cancelled or Close is called.
//
// If the brokers do not support KIP-848 consumer groups, GroupChurn848 is
// not started and a warning is logged; Groups reports what runs.
func RunWorkload(ctx context.Context, brokers []string, opts WorkloadOptions) (*Workload, error) {
	if len(brokers) == 0 {
		return nil, errors.New("demo: no brokers given")
	}
	if opts.ProduceRate <= 0 || opts.ChurnInterval <= 0 {
		return nil, fmt.Errorf("demo: ProduceRate (%d) and ChurnInterval (%s) must be positive", opts.ProduceRate, opts.ChurnInterval)
	}
	opts = opts.withDefaults()
	w := &Workload{
		opts:    opts,
		log:     opts.Logger,
		brokers: append([]string(nil), brokers...),
		gens:    newGenerationTracker(),
	}

	setupCtx, cancelSetup := context.WithTimeout(ctx, 30*time.Second)
	defer cancelSetup()
	if err := w.setup(setupCtx); err != nil {
		return nil, err
	}

	producer, err := kgo.NewClient(
		kgo.SeedBrokers(w.brokers...),
		kgo.ClientID(opts.ClientIDPrefix+"-producer"),
		kgo.WithLogger(kgoLogger{w.log}),
		kgo.ProducerLinger(20*time.Millisecond),
	)
	if err != nil {
		return nil, fmt.Errorf("demo: creating producer: %w", err)
	}

	w.ctx, w.cancel = context.WithCancel(ctx)
	w.started = time.Now()

	w.groups = []string{GroupFast, GroupSlow, GroupIdle, GroupChurnRange, GroupChurnCoop}
	if w.kip848 {
		w.groups = append(w.groups, GroupChurn848)
	}

	w.spawn(func() { w.runProducer(w.ctx, producer) })
	for range 2 {
		w.startMember(memberSpec{group: GroupFast, kind: saramaCooperative})
	}
	w.startMember(memberSpec{group: GroupSlow, kind: saramaCooperative, pace: newPacer(time.Second/time.Duration(opts.SlowRate), w.slowCatchingUp)})
	w.spawn(func() { w.runIdle(w.ctx) })

	churnKinds := []memberSpec{
		{group: GroupChurnRange, kind: saramaRangeNoGeneration},
		{group: GroupChurnCoop, kind: kgoClassic},
	}
	if w.kip848 {
		churnKinds = append(churnKinds, memberSpec{group: GroupChurn848, kind: kgoConsumer848})
	}
	for _, spec := range churnKinds {
		c := &churner{w: w, spec: spec, wake: make(chan struct{}, 1)}
		w.churners = append(w.churners, c)
		w.spawn(func() { c.run(w.ctx) })
	}

	w.log.Info().
		Strs("brokers", w.brokers).
		Strs("groups", w.groups).
		Int("produce_rate", opts.ProduceRate).
		Dur("churn_interval", opts.ChurnInterval).
		Msg("demo workload started")
	return w, nil
}

// setup creates the topics and finds out whether KIP-848 is available.
func (w *Workload) setup(ctx context.Context) error {
	admin, err := kgo.NewClient(
		kgo.SeedBrokers(w.brokers...),
		kgo.ClientID(w.opts.ClientIDPrefix+"-admin"),
		kgo.WithLogger(kgoLogger{w.log}),
	)
	if err != nil {
		return fmt.Errorf("demo: creating admin client: %w", err)
	}
	defer admin.Close()
	adm := kadm.NewClient(admin)

	for _, t := range Topics() {
		// Replication factor -1 lets the broker pick its default, which
		// works on one broker and on many.
		resp, err := adm.CreateTopic(ctx, t.Partitions, -1, nil, t.Name)
		if err != nil {
			return fmt.Errorf("demo: creating topic %s: %w", t.Name, err)
		}
		if resp.Err != nil && !errors.Is(resp.Err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("demo: creating topic %s: %w", t.Name, resp.Err)
		}
	}

	versions, err := adm.ApiVersions(ctx)
	if err != nil {
		return fmt.Errorf("demo: asking brokers for API versions: %w", err)
	}
	w.kip848 = supportsKIP848(versions)
	if !w.kip848 {
		w.log.Warn().
			Str("group", GroupChurn848).
			Msg("brokers do not support KIP-848 consumer groups (ConsumerGroupHeartbeat v1); not starting this group")
	}
	return nil
}

// supportsKIP848 reports whether every broker that answered can host a
// KIP-848 group. franz-go itself would silently fall back to the classic
// protocol, which would make demo-churn-848 a misleadingly named classic
// group, so the workload decides up front.
func supportsKIP848(versions kadm.BrokersApiVersions) bool {
	answered := 0
	for _, v := range versions {
		if v.Err != nil {
			continue
		}
		answered++
		maxV, ok := v.KeyMaxVersion(kmsg.ConsumerGroupHeartbeat.Int16())
		if !ok || maxV < 1 {
			return false
		}
	}
	return answered > 0
}

func (w *Workload) spawn(fn func()) {
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		fn()
	}()
}

// slowCatchingUp reports whether demo-slow is in its unthrottled phase.
func (w *Workload) slowCatchingUp() bool {
	if w.opts.CatchUpPhase < 0 {
		return false
	}
	cycle := w.opts.SlowPhase + w.opts.CatchUpPhase
	return time.Since(w.started)%cycle >= w.opts.SlowPhase
}

// Groups returns the groups this workload runs.
func (w *Workload) Groups() []string { return append([]string(nil), w.groups...) }

// KIP848 reports whether the brokers support KIP-848 and GroupChurn848 runs.
func (w *Workload) KIP848() bool { return w.kip848 }

// Produced returns how many records the brokers acknowledged so far.
func (w *Workload) Produced() int64 { return w.produced.Load() }

// GroupGenerations returns, per group, the highest generation any of the
// workload's own members was handed (the member epoch for KIP-848). It is
// the clients' view, independent of what the brokers report to observers.
func (w *Workload) GroupGenerations() map[string]int32 { return w.gens.snapshot() }

// Storm makes the churn groups add or remove a member every StormInterval
// instead of every ChurnInterval, until d has passed. It blocks until then,
// or until ctx or the workload ends; run it in a goroutine to keep going.
func (w *Workload) Storm(ctx context.Context, d time.Duration) {
	until := time.Now().Add(d).UnixNano()
	for {
		cur := w.stormUntil.Load()
		if cur >= until || w.stormUntil.CompareAndSwap(cur, until) {
			break
		}
	}
	w.log.Info().Dur("duration", d).Dur("interval", w.opts.StormInterval).Msg("rebalance storm starting")
	w.wakeChurners()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		// The caller gave up on the storm: end it now, unless a later
		// Storm call has extended it meanwhile.
		w.stormUntil.CompareAndSwap(until, 0)
	case <-w.ctx.Done():
	}
	w.wakeChurners()
	w.log.Info().Msg("rebalance storm over")
}

func (w *Workload) storming() bool { return time.Now().UnixNano() < w.stormUntil.Load() }

func (w *Workload) wakeChurners() {
	for _, c := range w.churners {
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
}

// Close stops the producer and every member (members leave their groups
// cleanly) and waits for all goroutines. It is safe to call more than once
// and after ctx was cancelled.
func (w *Workload) Close() {
	w.closeOnce.Do(func() {
		w.cancel()
		w.wg.Wait()
		w.log.Info().Msg("demo workload stopped")
	})
}
