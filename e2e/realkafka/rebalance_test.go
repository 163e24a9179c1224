package realkafka

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/realkafka"
)

// stepResult is one scenario step of one client kind: rebalances the
// broker made (generation or epoch delta), what the exporter counted, and
// the fewest the step must have caused.
type stepResult struct {
	kind, step          string
	truth, counted, min int
}

type results struct {
	mu   sync.Mutex
	rows []stepResult
}

func (r *results) add(s stepResult) {
	r.mu.Lock()
	r.rows = append(r.rows, s)
	r.mu.Unlock()
}

// TestRebalanceScenarios runs, for every client kind, a group through a
// join, a clean leave, a crash (SIGKILL: no LeaveGroup), a member that stops
// polling past max.poll.interval.ms, a frozen member (SIGSTOP past the
// session timeout) and a short storm, and after each step compares the
// exporter's rebalance count and generation with the broker's own record:
// the GroupMetadata generations in __consumer_offsets (classic) or the
// ConsumerGroupDescribe epoch (KIP-848). Kinds whose generation the
// exporter knows must match exactly; the others must stay within the
// README's bound: changes made <= counted <= true.
func TestRebalanceScenarios(t *testing.T) {
	rebalanceScenarios(t, "rb-", false)
}

// TestRebalanceScenariosOffsetsLog runs the same scenarios with the
// __consumer_offsets source on (KRE_OFFSETS_LOG_ENABLED): every client kind
// must then be exact, the classic ones by generation_source
// consumer_offsets, sarama and kcat included, which send no generation.
func TestRebalanceScenariosOffsetsLog(t *testing.T) {
	rebalanceScenarios(t, "rbl-", true)
}

func rebalanceScenarios(t *testing.T, prefix string, offsetsLog bool) {
	var env []string
	if offsetsLog {
		env = append(env, "KRE_OFFSETS_LOG_ENABLED=true")
	}
	e := startExporter(t, prefix+world.run+"-.*", env...)
	res := &results{}
	// All kinds at once: t.Run from goroutines is not bound by -parallel
	// (GOMAXPROCS, 2 here), and the kinds spend their time waiting.
	var wg sync.WaitGroup
	for _, kind := range allKinds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.Run(kind, func(t *testing.T) { runScenario(t, e, prefix, kind, offsetsLog, res) })
		}()
	}
	wg.Wait()
	sort.SliceStable(res.rows, func(i, j int) bool { return res.rows[i].kind < res.rows[j].kind })
	var b strings.Builder
	fmt.Fprintf(&b, "%-24s %-8s %5s %7s %4s\n", "kind", "step", "true", "counted", "min")
	for _, r := range res.rows {
		fmt.Fprintf(&b, "%-24s %-8s %5d %7d %4d\n", r.kind, r.step, r.truth, r.counted, r.min)
	}
	t.Logf("rebalances per step, broker (true) vs exporter (counted):\n%s", b.String())
}

// scenario is one kind's group and what was seen of it so far.
type scenario struct {
	t                *testing.T
	e                *exporter
	adm              *kadm.Client
	kind, group, top string
	res              *results
	offsetsLog       bool  // the exporter reads __consumer_offsets
	lastGen          int32 // broker generation at the last settled step
	lastCount        uint64
	members          []*realkafka.Member
	n                int
}

func runScenario(t *testing.T, e *exporter, prefix, kind string, offsetsLog bool, res *results) {
	s := &scenario{t: t, e: e, adm: admin(t), kind: kind, res: res, offsetsLog: offsetsLog,
		group: prefix + world.run + "-" + kind, top: prefix + world.run + "-" + kind}
	createTopic(t, s.adm, s.top, 6)
	startProducer(t, s.top, 25*time.Millisecond)
	// One member first, then the second: a KIP-792 generation is known only
	// once some member survives a rebalance (README), which members that
	// join a new group together never do.
	a := s.start()
	s.settledAt(1, false)
	b := s.start()
	s.baseline(2)

	c := s.start()
	s.step("join", 3, 1)

	stopClean(t, c)
	s.step("leave", 2, 1)

	b.Kill()
	s.step("crash", 1, 1)
	b = s.start()
	s.step("rejoin", 2, 1)

	a = s.stall(a)
	s.freeze(a)
	s.storm(3)
}

// offsetsLogSource is the generation_source of the __consumer_offsets
// source (offsetslog.SourceName; the exporter is a black box here).
const offsetsLogSource = "consumer_offsets"

// exact tells whether the exporter must know the kind's generations
// exactly: the kinds that send them, and every kind with the
// __consumer_offsets source.
func (s *scenario) exact() bool { return exactKind(s.kind) || s.offsetsLog }

func (s *scenario) start() *realkafka.Member {
	s.n++
	m := startMember(s.t, s.kind, fmt.Sprintf("%s-m%d", s.group, s.n), s.group, s.top)
	s.members = append(s.members, m)
	return m
}

func stopClean(t testing.TB, m *realkafka.Member) {
	t.Helper()
	if !m.Stop(30 * time.Second) {
		t.Errorf("%s did not stop within 30s of SIGTERM", m.Name)
	}
}

// settled waits until the broker shows the group Stable with n members,
// reconciled, at the same generation in two reads a second apart, and then
// until the exporter has observed the group after that; it returns the
// broker's generation and the exporter's view.
func (s *scenario) settled(n int) (int32, groupView) {
	s.t.Helper()
	return s.settledAt(n, true)
}

// settledAt is settled; with exact false the exporter's generation is not
// required to be known yet.
func (s *scenario) settledAt(n int, exact bool) (int32, groupView) {
	s.t.Helper()
	var gen int32
	eventually(s.t, 3*time.Minute, fmt.Sprintf("%s settled with %d members", s.group, n), func() error {
		g1, err := s.brokerGeneration(n)
		if err != nil {
			return err
		}
		time.Sleep(time.Second) // two reads a second apart: no rebalance under way
		g2, err := s.brokerGeneration(n)
		if err != nil {
			return err
		}
		if g1 != g2 {
			return fmt.Errorf("generation moved from %d to %d", g1, g2)
		}
		gen = g2
		return nil
	})
	since := time.Now()
	var v groupView
	eventually(s.t, 2*time.Minute, s.group+" observed by the exporter", func() error {
		var ok bool
		var err error
		v, ok, err = s.e.group(s.group)
		switch {
		case err != nil:
			return err
		case !ok:
			return fmt.Errorf("not in the exporter yet")
		case !v.ObservedAt.After(since) || v.State != "Stable" || v.Rebalancing || len(v.Members) != n:
			return fmt.Errorf("exporter: %s", v)
		case exact && s.exact() && v.generation() != gen:
			return fmt.Errorf("exporter generation %d, broker %d: %s", v.generation(), gen, v)
		case exact && s.offsetsLog && !is848(s.kind) && v.GenerationSource != offsetsLogSource:
			return fmt.Errorf("generation source %q, want %s: %s", v.GenerationSource, offsetsLogSource, v)
		}
		return nil
	})
	return gen, v
}

// brokerGeneration is the broker's generation of a Stable group with n
// members: the latest GroupMetadata record (classic) or the group epoch
// (KIP-848).
func (s *scenario) brokerGeneration(n int) (int32, error) {
	return brokerGeneration(s.adm, s.group, n, is848(s.kind))
}

func (s *scenario) baseline(n int) {
	s.t.Helper()
	gen, v := s.settled(n)
	s.lastGen, s.lastCount = gen, v.Rebalances
	s.checkGenerationMetric(gen)
}

// step settles the group with n members and compares the rebalances since
// the last step: exact kinds must equal the broker's, the others must be
// within [min, true].
func (s *scenario) step(name string, n, min int) {
	s.t.Helper()
	gen, v := s.settled(n)
	truth, counted := int(gen-s.lastGen), int(v.Rebalances-s.lastCount)
	s.res.add(stepResult{kind: s.kind, step: name, truth: truth, counted: counted, min: min})
	if s.exact() {
		if counted != truth {
			s.t.Errorf("%s: broker made %d rebalances (generation %d -> %d), exporter counted %d; history %s",
				name, truth, s.lastGen, gen, counted, v.History)
		}
	} else if counted < min || counted > truth {
		s.t.Errorf("%s: exporter counted %d rebalances, want between %d (changes made) and %d (broker generation %d -> %d); history %s",
			name, counted, min, truth, s.lastGen, gen, v.History)
	}
	s.checkGenerationMetric(gen)
	s.checkClientGenerations(gen)
	s.lastGen, s.lastCount = gen, v.Rebalances
}

// checkGenerationMetric: kafka_consumergroup_generation_id equals the
// broker's generation for exact kinds and is absent for the others.
func (s *scenario) checkGenerationMetric(gen int32) {
	s.t.Helper()
	m := mustScrape(s.t, s.e)
	v, ok := m.value("kafka_consumergroup_generation_id", map[string]string{"consumergroup": s.group})
	switch {
	case s.exact() && (!ok || int32(v) != gen):
		s.t.Errorf("kafka_consumergroup_generation_id = %v (present %v), broker generation %d", v, ok, gen)
	case !s.exact() && ok:
		s.t.Errorf("kafka_consumergroup_generation_id = %v for a kind that sends no generation (README: absent)", v)
	}
}

// checkClientGenerations: Go members report the generation of every
// assignment they get; the newest any live member reports is the broker's.
// (A cooperative member whose partitions did not change is not called, a
// frozen one is behind: hence the newest over all.)
func (s *scenario) checkClientGenerations(gen int32) {
	s.t.Helper()
	if s.kind != realkafka.KindSarama && s.kind != realkafka.KindFranz {
		return
	}
	newest := func() int32 {
		g := int32(-1)
		for _, m := range s.members {
			for _, e := range m.Events() {
				if e.Name == realkafka.EvAssigned && !m.Exited() {
					g = max(g, e.Generation)
				}
			}
		}
		return g
	}
	if err := poll(time.Minute, func() error {
		if g := newest(); g != gen {
			return fmt.Errorf("newest generation the members report is %d", g)
		}
		return nil
	}); err != nil {
		s.t.Errorf("clients' own generation differs from the broker's %d: %v", gen, err)
	}
}

// stall stops member a's poll loop past max.poll.interval.ms while its
// heartbeats go on. Java and librdkafka then leave the group; Java rejoins
// when polling again, kcat treats the MAXPOLL error as fatal and exits, so
// a new kcat takes its place. sarama and franz-go have no such limit and
// stay. It returns the member that is in the group afterwards.
func (s *scenario) stall(a *realkafka.Member) *realkafka.Member {
	s.t.Helper()
	live := s.live()
	switch s.kind {
	case realkafka.KindSarama, realkafka.KindFranz:
		_ = a.Signal(syscall.SIGUSR1)
		s.staysStable(live, maxPollInterval+sessionTimeout)
		_ = a.Signal(syscall.SIGUSR1)
		s.step("stall", live, 0)
	default:
		a.PauseOutput()
		s.step("stall", live-1, 1)
		a.ResumeOutput()
		if s.kind == realkafka.KindKcat {
			select {
			case <-a.Done():
			case <-time.After(time.Minute):
				s.t.Fatalf("kcat did not exit after exceeding max.poll.interval.ms:\n%s", a.Tail())
			}
			a = s.start()
		}
		s.step("unstall", live, 1)
	}
	return a
}

// staysStable asserts that the broker keeps the group Stable with n
// members at one generation for d.
func (s *scenario) staysStable(n int, d time.Duration) {
	s.t.Helper()
	first, err := s.brokerGeneration(n)
	if err != nil {
		s.t.Fatal(err)
	}
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(500 * time.Millisecond) {
		g, err := s.brokerGeneration(n)
		if err != nil || g != first {
			s.t.Fatalf("group changed while a member only stopped consuming: generation %d -> %d, %v", first, g, err)
		}
	}
}

// freeze stops member a (SIGSTOP) until the broker expels it at the
// session timeout, then lets it go on: it rejoins.
func (s *scenario) freeze(a *realkafka.Member) {
	s.t.Helper()
	live := s.live()
	if err := a.Signal(syscall.SIGSTOP); err != nil {
		s.t.Fatal(err)
	}
	s.step("freeze", live-1, 1)
	if err := a.Signal(syscall.SIGCONT); err != nil {
		s.t.Fatal(err)
	}
	s.step("thaw", live, 1)
}

// storm adds and removes members back to back, each leaving as soon as it
// has its first assignment.
func (s *scenario) storm(rounds int) {
	s.t.Helper()
	live := s.live()
	for i := 0; i < rounds; i++ {
		m := s.start()
		if err := m.WaitFor(2*time.Minute, "first assignment", func(evs []realkafka.Event) bool {
			for _, e := range evs {
				if e.Name == realkafka.EvAssigned && len(e.Partitions) > 0 {
					return true
				}
			}
			return false
		}); err != nil {
			s.t.Fatal(err)
		}
		stopClean(s.t, m)
	}
	s.step("storm", live, 1)
}

func (s *scenario) live() int {
	n := 0
	for _, m := range s.members {
		if !m.Exited() {
			n++
		}
	}
	return n
}
