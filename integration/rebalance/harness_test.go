// Package rebalance_test checks the exporter's rebalance monitoring
// against real consumer group clients (sarama, franz-go, kcat) on a kfake
// cluster. The clients are the ground truth: the generations they were
// handed and the joins and leaves the tests make them do. A background
// groups poller feeds the exporter's store the way the daemon's groups loop
// does, so the tracker sees groups at the poll interval, not at moments the
// test picks.
package rebalance_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/collector"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/config"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/kafkatest"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/rebalance"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/store"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/testkit"
)

const (
	// groupPollInterval plays GROUP_POLL_INTERVAL: short enough that the
	// tracker sees most rebalances in progress, as a 1–2 s interval does
	// with real Kafka's slower rebalances.
	groupPollInterval = 150 * time.Millisecond

	// Classic member timeouts. The session timeout bounds how long a
	// crashed member lingers; the rebalance timeout how long the
	// coordinator waits for a member that does not rejoin. kfake keeps
	// running the session timer of a member parked in JoinGroup (Kafka
	// does not), so the session timeout must outlast the rebalance
	// timeout, or the members that did rejoin expire while they wait for
	// the one that did not.
	sessionTimeout   = 3000 * time.Millisecond
	heartbeat        = 250 * time.Millisecond
	rebalanceTimeout = 1500 * time.Millisecond

	// KIP-848 timeouts are the broker's (group.consumer.*).
	consumerSessionTimeout = 1500 * time.Millisecond
	consumerHeartbeat      = 250 * time.Millisecond

	// quietFor is how long a group must look settled to the clients
	// before its exported state is compared: longer than a heartbeat, so
	// a follow-up rebalance (cooperative revocation) has begun by then.
	quietFor = 800 * time.Millisecond

	settleTimeout = 40 * time.Second
	partitions    = 6
)

// env is one test's cluster, exporter and background groups poller.
type env struct {
	t     *testing.T
	addrs []string
	exp   *kafkatest.Exporter
	adm   *kadm.Client

	// published is the start time (UnixNano) of the poll whose result
	// the store published last; a snapshot read after it exceeds t holds
	// only data read after t.
	published atomic.Int64
	pollErrs  atomic.Uint64
	lastErr   atomic.Value // string

	// leaves are the member IDs the coordinator was asked to remove:
	// LeaveGroup, or a KIP-848 heartbeat leaving the group. They tell a
	// clean leave from a crash.
	leavesMu sync.Mutex
	leaves   []string
}

func newEnv(t *testing.T, topics ...string) *env {
	t.Helper()
	cluster := kafkatest.NewCluster(t, kfake.BrokerConfigs(map[string]string{
		"group.consumer.session.timeout.ms":    fmt.Sprint(consumerSessionTimeout.Milliseconds()),
		"group.consumer.heartbeat.interval.ms": fmt.Sprint(consumerHeartbeat.Milliseconds()),
	}))
	e := &env{t: t, addrs: cluster.ListenAddrs()}
	// Observers only: returning "not handled" lets kfake serve the
	// request as usual.
	cluster.ControlKey(int16(kmsg.LeaveGroup), func(req kmsg.Request) (kmsg.Response, error, bool) {
		cluster.KeepControl()
		r := req.(*kmsg.LeaveGroupRequest)
		ids := []string{r.MemberID}
		for _, m := range r.Members {
			ids = append(ids, m.MemberID)
		}
		e.sawLeave(ids...)
		return nil, nil, false
	})
	cluster.ControlKey(int16(kmsg.ConsumerGroupHeartbeat), func(req kmsg.Request) (kmsg.Response, error, bool) {
		cluster.KeepControl()
		if r := req.(*kmsg.ConsumerGroupHeartbeatRequest); r.MemberEpoch < 0 {
			e.sawLeave(r.MemberID)
		}
		return nil, nil, false
	})
	for _, topic := range topics {
		kafkatest.CreateTopic(t, e.addrs, topic, partitions)
		all := make([]int32, partitions)
		for i := range all {
			all[i] = int32(i)
		}
		// Records everywhere, so that a franz-go member's first poll
		// returns something and BlockRebalanceOnPoll engages.
		kafkatest.Produce(t, e.addrs, topic, all, 5)
	}
	e.adm = kafkatest.Admin(t, e.addrs)

	e.exp = kafkatest.NewExporter(t, loadConfig(t, e.addrs))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.pollGroups(ctx)
	}()
	// Registered after the exporter's own cleanup, so the loop stops
	// before the poller is closed.
	t.Cleanup(func() {
		cancel()
		<-done
		if n := e.pollErrs.Load(); n > 0 {
			t.Logf("groups polls failed %d times; last error: %v", n, e.lastErr.Load())
		}
	})
	return e
}

func (e *env) sawLeave(ids ...string) {
	e.leavesMu.Lock()
	defer e.leavesMu.Unlock()
	for _, id := range ids {
		if id != "" {
			e.leaves = append(e.leaves, id)
		}
	}
}

// leaveSent reports whether the coordinator was asked to remove m. Members
// that cannot tell their member ID are matched by the client ID prefix the
// coordinator puts in the IDs it hands out.
func (e *env) leaveSent(m member, memberID string) bool {
	e.leavesMu.Lock()
	defer e.leavesMu.Unlock()
	for _, id := range e.leaves {
		if id == memberID || memberID == "" && strings.HasPrefix(id, m.name()+"-") {
			return true
		}
	}
	return false
}

// leave stops m cleanly and checks that it did ask the coordinator to
// remove it, so the step is a clean leave and not a session timeout.
func (e *env) leave(m member) {
	e.t.Helper()
	id, _ := m.current()
	m.leave()
	if !e.leaveSent(m, id) {
		e.t.Errorf("%s stopped without leaving the group", m.name())
	}
}

// crash stops m without a goodbye; checkSilent later confirms that it
// never asked to leave.
func (e *env) crash(m member) (memberID string) {
	id, _ := m.current()
	m.crash()
	return id
}

// checkSilent asserts that the coordinator dropped m (by session or
// rebalance timeout) without m asking to leave.
func (e *env) checkSilent(m member, memberID string) {
	e.t.Helper()
	if e.leaveSent(m, memberID) {
		e.t.Errorf("%s was meant to vanish silently but asked to leave the group", m.name())
	}
}

// configMu serialises configuration loads. The configuration comes from
// process environment variables, and parallel tests each have their own
// cluster: each load sets its variables, reads them and puts the old values
// back while holding the lock.
var configMu sync.Mutex

func loadConfig(t *testing.T, addrs []string) *config.Config {
	t.Helper()
	configMu.Lock()
	defer configMu.Unlock()
	for k, v := range map[string]string{
		"BROKERS":             strings.Join(addrs, ","),
		"REQUEST_TIMEOUT":     "5s",
		"GROUP_POLL_INTERVAL": groupPollInterval.String(),
	} {
		key := config.Prefix + "_" + k
		old, had := os.LookupEnv(key)
		os.Setenv(key, v)
		defer func() {
			if had {
				os.Setenv(key, old)
			} else {
				os.Unsetenv(key)
			}
		}()
	}
	cfg, err := config.Load()
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

// pollGroups is the daemon's groups loop, without the offsets side.
func (e *env) pollGroups(ctx context.Context) {
	tick := time.NewTicker(groupPollInterval)
	defer tick.Stop()
	for {
		start := time.Now()
		err := e.exp.Poller.GroupsPoll(ctx, e.exp.Store)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			e.pollErrs.Add(1)
			e.lastErr.Store(err.Error())
		} else {
			e.published.Store(start.UnixNano())
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// snapshotAfter waits for a published groups poll that started after t
// and returns the store's snapshot.
func (e *env) snapshotAfter(t time.Time) *store.Snapshot {
	e.t.Helper()
	testkit.Eventually(e.t, 20*time.Second, 25*time.Millisecond, "a groups poll published after "+t.Format(time.StampMilli), func() error {
		if e.published.Load() <= t.UnixNano() {
			return fmt.Errorf("no groups poll started after %s has been published (failed polls: %d, last error: %v)",
				t.Format(time.StampMilli), e.pollErrs.Load(), e.lastErr.Load())
		}
		return nil
	})
	return e.exp.Store.Current()
}

// stats returns the group's statistics in snap, failing if it has none.
func stats(t *testing.T, snap *store.Snapshot, group string) rebalance.GroupStats {
	t.Helper()
	st, ok := snap.Rebalance[group]
	if !ok {
		t.Fatalf("group %s has no rebalance statistics; tracked: %v", group, slices.Sorted(maps.Keys(snap.Rebalance)))
	}
	return st
}

// settled is a group's settled state as the clients and an independent
// admin client see it. key identifies it: the same key twice means nothing
// moved in between.
type settled struct {
	gen int32 // classic: the live members' generation; KIP-848: the group epoch
	// assignmentEpoch is the KIP-848 target assignment epoch.
	assignmentEpoch int32
	// empty: the group has no member, so no client holds gen.
	empty bool
	key   string
}

// probe reports the group's settled state, or why it is not settled.
type probe func(ctx context.Context) (settled, error)

// settle waits until probe has reported the same settled state for
// quietFor, then returns that state together with a snapshot of a groups
// poll that started after the quiet period and before probe confirmed the
// state again. Whatever the snapshot shows was true of that settled state.
func (e *env) settle(group string, p probe) (settled, *store.Snapshot) {
	e.t.Helper()
	deadline := time.Now().Add(settleTimeout)
	var (
		s    settled
		snap *store.Snapshot
	)
	// Each attempt waits (quiet, snapshotAfter) by itself: no interval.
	err := testkit.Poll(settleTimeout, 0, func() error {
		var err error
		if s, err = e.quiet(p, deadline); err != nil {
			return fmt.Errorf("%w: %v", testkit.ErrStop, err)
		}
		snap = e.snapshotAfter(time.Now())
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		again, err := p(ctx)
		cancel()
		if err == nil && again.key == s.key {
			return nil
		}
		return fmt.Errorf("group moved while it was being polled: %v / %q -> %q", err, s.key, again.key)
	})
	if err != nil {
		e.t.Fatalf("group %s did not settle within %s: %v", group, settleTimeout, err)
	}
	return s, snap
}

// quiet probes every 50 ms until p has reported the same settled state for
// quietFor, or deadline passes.
func (e *env) quiet(p probe, deadline time.Time) (settled, error) {
	var (
		cur   settled
		since time.Time
		last  error
	)
	err := testkit.Poll(time.Until(deadline), 50*time.Millisecond, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		s, err := p(ctx)
		cancel()
		switch {
		case err != nil:
			last, since = err, time.Time{}
		case since.IsZero() || s.key != cur.key:
			cur, since = s, time.Now()
		case time.Since(since) >= quietFor:
			return nil
		}
		return fmt.Errorf("never quiet for %s; last: %v", quietFor, last)
	})
	if err != nil {
		return settled{}, err
	}
	return cur, nil
}

// classicProbe is settled when the admin client describes the group as
// Stable with exactly the live members, and every live member that can
// tell holds the same generation. Members that cannot tell (kcat) are
// matched by client ID. With no live member it is settled when the group
// is Empty; its generation is then one past the highest any client held,
// as the coordinator moves a group that loses its last member to a new
// generation (the next member to join confirms it).
func (e *env) classicProbe(group string, live []member, tr *truth) probe {
	return func(ctx context.Context) (settled, error) {
		desc, err := e.adm.DescribeGroups(ctx, group)
		if err != nil {
			return settled{}, err
		}
		d := desc[group]
		if d.Err != nil {
			return settled{}, d.Err
		}
		if len(live) == 0 {
			if d.State != "Empty" || len(d.Members) != 0 {
				return settled{}, fmt.Errorf("state %s with %d members, want Empty", d.State, len(d.Members))
			}
			gen := tr.highest() + 1
			return settled{gen: gen, empty: true, key: fmt.Sprintf("%d/", gen)}, nil
		}
		if d.State != "Stable" {
			return settled{}, fmt.Errorf("state %s", d.State)
		}
		described := map[string]string{} // member ID -> client ID
		var all []string
		for _, m := range d.Members {
			described[m.MemberID] = m.ClientID
			all = append(all, m.MemberID)
		}
		sort.Strings(all)
		var opaqueWant, opaqueGot []string
		gen := int32(math.MinInt32)
		for _, m := range live {
			if _, ok := m.(opaque); ok {
				opaqueWant = append(opaqueWant, m.name())
				continue
			}
			id, g := m.current()
			if g <= 0 || id == "" {
				return settled{}, fmt.Errorf("member %s holds no generation", m.name())
			}
			if gen != math.MinInt32 && g != gen {
				return settled{}, fmt.Errorf("members disagree on the generation (%d, %s has %d)", gen, m.name(), g)
			}
			gen = g
			if _, ok := described[id]; !ok {
				return settled{}, fmt.Errorf("member %s (%s) not described; described %v", m.name(), id, all)
			}
			delete(described, id)
		}
		if gen == math.MinInt32 {
			return settled{}, errors.New("no live member tells its generation")
		}
		for _, client := range described {
			opaqueGot = append(opaqueGot, client)
		}
		sort.Strings(opaqueWant)
		sort.Strings(opaqueGot)
		if fmt.Sprint(opaqueWant) != fmt.Sprint(opaqueGot) {
			return settled{}, fmt.Errorf("described members %v (unmatched clients %v), want unmatched %v", all, opaqueGot, opaqueWant)
		}
		return settled{gen: gen, key: fmt.Sprintf("%d/%s", gen, strings.Join(all, ","))}, nil
	}
}

// consumerProbe is settled when ConsumerGroupDescribe shows the KIP-848
// group Stable with exactly the live members, every member at the group
// epoch and owning its target assignment, and each live client agreeing
// on its member epoch; or Empty when no member is live.
func (e *env) consumerProbe(group string, live []member) probe {
	return func(ctx context.Context) (settled, error) {
		desc, err := e.adm.DescribeConsumerGroups(ctx, group)
		if err != nil {
			return settled{}, err
		}
		d := desc[group]
		if d.Err != nil {
			return settled{}, d.Err
		}
		if len(live) == 0 {
			// Everyone left: the group stays, Empty, at its last epoch.
			if d.State != "Empty" || len(d.Members) != 0 {
				return settled{}, fmt.Errorf("state %s with %d members, want Empty", d.State, len(d.Members))
			}
			return settled{gen: d.Epoch, assignmentEpoch: d.AssignmentEpoch, empty: true, key: fmt.Sprintf("%d/%d/", d.Epoch, d.AssignmentEpoch)}, nil
		}
		if d.State != "Stable" || d.AssignmentEpoch != d.Epoch {
			return settled{}, fmt.Errorf("state %s, epoch %d, assignment epoch %d", d.State, d.Epoch, d.AssignmentEpoch)
		}
		var described []string
		for _, m := range d.Members {
			if m.MemberEpoch != d.Epoch {
				return settled{}, fmt.Errorf("member %s at epoch %d, group at %d", m.MemberID, m.MemberEpoch, d.Epoch)
			}
			if fmt.Sprint(m.Assignment.Sorted()) != fmt.Sprint(m.TargetAssignment.Sorted()) {
				return settled{}, fmt.Errorf("member %s still reconciling", m.MemberID)
			}
			described = append(described, m.MemberID)
		}
		sort.Strings(described)
		var ids []string
		for _, m := range live {
			id, epoch := m.current()
			if epoch != d.Epoch {
				return settled{}, fmt.Errorf("client %s at epoch %d, group at %d", m.name(), epoch, d.Epoch)
			}
			ids = append(ids, id)
		}
		sort.Strings(ids)
		if strings.Join(ids, ",") != strings.Join(described, ",") {
			return settled{}, fmt.Errorf("described members %v, live members %v", described, ids)
		}
		return settled{gen: d.Epoch, assignmentEpoch: d.AssignmentEpoch, key: fmt.Sprintf("%d/%s", d.Epoch, strings.Join(ids, ","))}, nil
	}
}

// frozen serves one snapshot to a collector, so that metrics and the
// statistics compared with them come from the same poll.
type frozen struct{ s *store.Snapshot }

func (f frozen) Current() *store.Snapshot { return f.s }

// scrape renders snap through the exporter's collector and returns the
// group's own series (labelled by consumergroup alone) by metric name;
// histograms as name_count and name_sum.
func scrape(t *testing.T, snap *store.Snapshot, group string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for key, v := range testkit.Collect(t, collector.New(frozen{snap}, collector.Options{})).Match("", "consumergroup", group) {
		if name, labels, _ := testkit.SplitKey(key); len(labels) == 1 {
			out[name] = v
		}
	}
	return out
}

// truth records the highest generation (or epoch) any client of a group
// was handed, including clients that are gone.
type truth struct {
	mu  sync.Mutex
	max int32
}

func newTruth() *truth { return &truth{max: -1} }

func (tr *truth) saw(gen int32) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.max = max(tr.max, gen)
}

func (tr *truth) highest() int32 {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.max
}

// member is one running group member, whatever its client.
type member interface {
	name() string
	// current is the member ID and generation (KIP-848: member epoch)
	// the client holds now; generation <= 0 when it holds none.
	current() (memberID string, gen int32)
	// leave stops the member cleanly: it sends LeaveGroup.
	leave()
	// crash stops the member without a goodbye: its connections are cut
	// first, so the coordinator only notices at the session timeout.
	crash()
}

// opaque marks members whose client cannot report its member ID or
// generation.
type opaque interface{ opaque() }

// waitDone waits for a member's goroutine, bounded so that a wedged
// client fails the test instead of hanging it.
func waitDone(done <-chan struct{}, what string) error {
	select {
	case <-done:
		return nil
	case <-time.After(30 * time.Second):
		return errors.New(what + " did not stop within 30s")
	}
}
