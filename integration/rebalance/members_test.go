package rebalance_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/testkit"
)

// cuttable hands out connections it can cut all at once. A client dialing
// through it dies without a goodbye once it is cut: every open connection
// is closed under it and new ones are refused, so neither LeaveGroup nor a
// last heartbeat reaches the broker.
type cuttable struct {
	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]struct{}
}

func newCuttable() *cuttable { return &cuttable{conns: map[net.Conn]struct{}{}} }

var errCut = errors.New("connections cut by the test")

func (c *cuttable) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	c.mu.Lock()
	cut := c.cut
	c.mu.Unlock()
	if cut {
		return nil, errCut
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cut {
		conn.Close()
		return nil, errCut
	}
	tc := &trackedConn{Conn: conn, owner: c}
	c.conns[tc] = struct{}{}
	return tc, nil
}

// trackedConn leaves its cuttable's set when the client closes it.
type trackedConn struct {
	net.Conn
	owner *cuttable
}

func (c *trackedConn) Close() error {
	c.owner.mu.Lock()
	delete(c.owner.conns, c)
	c.owner.mu.Unlock()
	return c.Conn.Close()
}

// Dial is the form sarama's Net.Proxy.Dialer wants.
func (c *cuttable) Dial(network, addr string) (net.Conn, error) {
	return c.DialContext(context.Background(), network, addr)
}

func (c *cuttable) cutAll() {
	c.mu.Lock()
	c.cut = true
	conns := c.conns
	c.conns = nil
	c.mu.Unlock()
	for conn := range conns {
		conn.(*trackedConn).Conn.Close()
	}
}

// gate is closed by the test to let a deliberately stuck member go on.
type gate struct {
	ch   chan struct{}
	once sync.Once
}

func newGate() *gate  { return &gate{ch: make(chan struct{})} }
func (g *gate) open() { g.once.Do(func() { close(g.ch) }) }

// saramaSpec describes a sarama member.
type saramaSpec struct {
	group, topic string
	clientID     string
	version      sarama.KafkaVersion
	strategy     sarama.BalanceStrategy
	truth        *truth
	// rebalanceTimeout and sessionTimeout override the defaults.
	rebalanceTimeout, sessionTimeout time.Duration
	// stuckSetup makes Setup block until the gate opens: the member joined
	// and keeps heartbeating, but cannot rejoin any later rebalance.
	stuckSetup *gate
	// stuckClaims makes ConsumeClaim ignore the end of its session until
	// the gate opens: an eager member then keeps heartbeating through a
	// rebalance without rejoining it.
	stuckClaims *gate
}

type saramaMember struct {
	spec   saramaSpec
	dialer *cuttable
	cancel context.CancelFunc
	done   chan struct{}
	t      *testing.T
	// sess is the running session; nil between sessions.
	sess atomic.Pointer[sessionRef]
	once sync.Once
	// stalled is closed once a stuckSetup member is stuck.
	stalled     chan struct{}
	stalledOnce sync.Once
}

type sessionRef struct{ s sarama.ConsumerGroupSession }

func startSarama(t *testing.T, e *env, spec saramaSpec) *saramaMember {
	t.Helper()
	cfg := saramaConfig(spec)
	m := &saramaMember{spec: spec, dialer: newCuttable(), done: make(chan struct{}), stalled: make(chan struct{}), t: t}
	cfg.Net.Proxy.Enable = true
	cfg.Net.Proxy.Dialer = m.dialer
	cg, err := sarama.NewConsumerGroup(e.addrs, spec.group, cfg)
	if err != nil {
		t.Fatalf("sarama member %s: %v", spec.clientID, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	go func() {
		for range cg.Errors() {
			// Expected while members come and go and connections are cut.
		}
	}()
	go func() {
		defer close(m.done)
		h := &saramaHandler{m: m}
		for ctx.Err() == nil {
			// An eager session ends at every rebalance and Consume returns;
			// a cooperative one lives on inside Consume.
			if err := cg.Consume(ctx, []string{spec.topic}, h); err != nil && ctx.Err() == nil {
				select {
				case <-ctx.Done():
				case <-time.After(100 * time.Millisecond):
				}
			}
		}
		_ = cg.Close() // after a crash its LeaveGroup cannot get out: intended
	}()
	return m
}

// saramaConfig is a consumer configuration with this package's short
// timeouts.
func saramaConfig(spec saramaSpec) *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.Version = spec.version
	cfg.ClientID = spec.clientID
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.Offsets.AutoCommit.Enable = false
	// Fetches long-poll on the connection the group requests share, and
	// the broker answers a connection's requests in order: the default
	// 500ms wait delays a leader's metadata refresh, and so its
	// SyncGroup, past the rebalance timeout.
	cfg.Consumer.MaxWaitTime = 50 * time.Millisecond
	cfg.Consumer.Group.Session.Timeout = sessionTimeout
	cfg.Consumer.Group.Heartbeat.Interval = heartbeat
	cfg.Consumer.Group.Rebalance.Timeout = rebalanceTimeout
	if spec.rebalanceTimeout > 0 {
		cfg.Consumer.Group.Rebalance.Timeout = spec.rebalanceTimeout
	}
	if spec.sessionTimeout > 0 {
		cfg.Consumer.Group.Session.Timeout = spec.sessionTimeout
	}
	cfg.Consumer.Group.Rebalance.Retry.Backoff = 100 * time.Millisecond
	cfg.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{spec.strategy}
	cfg.Consumer.Return.Errors = true
	cfg.Metadata.RefreshFrequency = 0
	cfg.Metadata.Retry.Backoff = 100 * time.Millisecond
	// A request kfake never answers (it drops the JoinGroup of a member
	// it expired) costs a read timeout; keep that short.
	cfg.Net.ReadTimeout = 8 * time.Second
	return cfg
}

func (m *saramaMember) name() string { return m.spec.clientID }

func (m *saramaMember) current() (string, int32) {
	ref := m.sess.Load()
	if ref == nil {
		return "", -1
	}
	gen := ref.s.GenerationID()
	m.spec.truth.saw(gen)
	return ref.s.MemberID(), gen
}

func (m *saramaMember) leave() { m.stop(false) }
func (m *saramaMember) crash() { m.stop(true) }

func (m *saramaMember) stop(cut bool) {
	m.once.Do(func() {
		m.current() // its last generation joins the ground truth
		if cut {
			m.dialer.cutAll()
		}
		m.cancel()
		if m.spec.stuckSetup != nil {
			m.spec.stuckSetup.open()
		}
		if m.spec.stuckClaims != nil {
			m.spec.stuckClaims.open()
		}
		if err := waitDone(m.done, "sarama member "+m.spec.clientID); err != nil {
			m.t.Error(err)
		}
	})
}

type saramaHandler struct{ m *saramaMember }

func (h *saramaHandler) Setup(s sarama.ConsumerGroupSession) error {
	// Every session starts with a generation the coordinator handed out:
	// the ground truth, whether or not the member sends it in its
	// subscription metadata.
	h.m.spec.truth.saw(s.GenerationID())
	h.m.sess.Store(&sessionRef{s})
	if g := h.m.spec.stuckSetup; g != nil {
		h.m.stalledOnce.Do(func() { close(h.m.stalled) })
		<-g.ch
	}
	return nil
}

func (h *saramaHandler) Cleanup(s sarama.ConsumerGroupSession) error {
	if ref := h.m.sess.Load(); ref != nil && ref.s == s {
		h.m.sess.CompareAndSwap(ref, nil)
	}
	return nil
}

func (h *saramaHandler) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	if g := h.m.spec.stuckClaims; g != nil {
		<-g.ch
		return nil
	}
	for {
		select {
		case _, ok := <-c.Messages():
			if !ok {
				return nil // revoked (cooperative) or session over
			}
		case <-s.Context().Done():
			return nil
		}
	}
}

// kgoSpec describes a franz-go member.
type kgoSpec struct {
	group, topic string
	clientID     string
	// consumer848 makes it a KIP-848 member with the server-side
	// assignor; otherwise it is a classic member with franz-go's default
	// cooperative-sticky balancer, which always sends its generation.
	consumer848 bool
	truth       *truth
	// stall makes the member stop polling after its first non-empty poll,
	// with BlockRebalanceOnPoll: it keeps heartbeating but will not give
	// up its partitions, so it misses the next rebalance.
	stall *gate
}

type kgoMember struct {
	spec    kgoSpec
	cl      *kgo.Client
	dialer  *cuttable
	cancel  context.CancelFunc // stops the poll loop
	endLife context.CancelFunc // the client's own context: cancelling it skips LeaveGroup
	done    chan struct{}
	stalled chan struct{} // closed once a stalling member stopped polling
	t       *testing.T
	once    sync.Once
}

func startKgo(t *testing.T, e *env, spec kgoSpec) *kgoMember {
	t.Helper()
	life, endLife := context.WithCancel(context.Background())
	m := &kgoMember{spec: spec, dialer: newCuttable(), endLife: endLife, done: make(chan struct{}), stalled: make(chan struct{}), t: t}
	record := func(_ context.Context, cl *kgo.Client, _ map[string][]int32) {
		_, gen := cl.GroupMetadata()
		spec.truth.saw(gen)
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(e.addrs...),
		kgo.ClientID(spec.clientID),
		kgo.WithContext(life),
		kgo.Dialer(m.dialer.DialContext),
		kgo.ConsumerGroup(spec.group),
		kgo.ConsumeTopics(spec.topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.OnPartitionsAssigned(record),
		kgo.OnPartitionsRevoked(record),
		kgo.RetryBackoffFn(func(int) time.Duration { return 100 * time.Millisecond }),
	}
	if spec.consumer848 {
		opts = append(opts, kgo.ServerSideBalancer())
	} else {
		opts = append(opts, kgo.SessionTimeout(sessionTimeout), kgo.HeartbeatInterval(heartbeat), kgo.RebalanceTimeout(rebalanceTimeout))
	}
	if spec.stall != nil {
		opts = append(opts, kgo.BlockRebalanceOnPoll())
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatalf("franz-go member %s: %v", spec.clientID, err)
	}
	m.cl = cl
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	go func() {
		defer close(m.done)
		stall := spec.stall
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			if ctx.Err() != nil {
				return
			}
			if stall != nil && fs.NumRecords() > 0 {
				close(m.stalled)
				select {
				case <-stall.ch:
				case <-ctx.Done():
					return
				}
				stall = nil
				cl.AllowRebalance()
			}
			if fs.NumRecords() == 0 && len(fs.Errors()) > 0 {
				select {
				case <-ctx.Done():
				case <-time.After(100 * time.Millisecond):
				}
			}
		}
	}()
	return m
}

func (m *kgoMember) name() string { return m.spec.clientID }

func (m *kgoMember) current() (string, int32) {
	id, gen := m.cl.GroupMetadata()
	m.spec.truth.saw(gen)
	return id, gen
}

func (m *kgoMember) leave() { m.stop(false) }
func (m *kgoMember) crash() { m.stop(true) }

func (m *kgoMember) stop(cut bool) {
	m.once.Do(func() {
		m.current()
		if cut {
			m.dialer.cutAll()
			m.endLife()
		}
		m.cancel()
		if err := waitDone(m.done, "franz-go member "+m.spec.clientID); err != nil {
			m.t.Error(err)
		}
		// Close leaves the group unless the client context is gone. A
		// stalled member has polled without allowing rebalances, which
		// Close alone would wait for forever.
		m.cl.CloseAllowingRebalance()
		m.endLife()
	})
}

// kcatPath is where scripts/install-test-deps.sh installs kcat.
const kcatPath = "/usr/bin/kcat"

// kcatMember is a librdkafka balanced consumer run by kcat -G.
type kcatMember struct {
	clientID string
	cmd      *exec.Cmd
	out      *testkit.SyncBuffer
	done     chan struct{}
	t        *testing.T
	once     sync.Once
}

func requireKcat(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(kcatPath); err != nil {
		t.Fatalf("kcat is needed at %s (%v): run scripts/install-test-deps.sh", kcatPath, err)
	}
}

func startKcat(t *testing.T, e *env, group, topic, clientID string) *kcatMember {
	t.Helper()
	requireKcat(t)
	m := &kcatMember{clientID: clientID, out: &testkit.SyncBuffer{}, done: make(chan struct{}), t: t}
	m.cmd = exec.Command(kcatPath, "-q", "-b", e.addrs[0], "-G", group,
		"-X", "client.id="+clientID,
		"-X", "partition.assignment.strategy=range",
		"-X", fmt.Sprintf("session.timeout.ms=%d", sessionTimeout.Milliseconds()),
		"-X", fmt.Sprintf("heartbeat.interval.ms=%d", heartbeat.Milliseconds()),
		// librdkafka's rebalance timeout is max.poll.interval.ms; the
		// coordinator waits that long for a member that does not rejoin.
		"-X", "max.poll.interval.ms=5000",
		"-X", "enable.auto.commit=false",
		topic)
	m.cmd.Stdout = &testkit.SyncBuffer{} // records; not looked at
	m.cmd.Stderr = m.out
	if err := m.cmd.Start(); err != nil {
		t.Fatalf("start kcat: %v", err)
	}
	go func() {
		defer close(m.done)
		_ = m.cmd.Wait()
	}()
	return m
}

func (m *kcatMember) leave() { m.stop(syscall.SIGTERM) } // kcat closes its consumer: LeaveGroup
func (m *kcatMember) crash() { m.stop(syscall.SIGKILL) } // gone without a word

func (m *kcatMember) stop(sig syscall.Signal) {
	m.once.Do(func() {
		_ = m.cmd.Process.Signal(sig)
		if err := waitDone(m.done, "kcat "+m.clientID); err != nil {
			_ = m.cmd.Process.Kill()
			m.t.Errorf("%v; stderr: %s", err, m.out.String())
		}
	})
}

func (m *kcatMember) name() string             { return m.clientID }
func (m *kcatMember) current() (string, int32) { return "", -1 }
func (m *kcatMember) opaque()                  {}
