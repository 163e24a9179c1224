package realkafka

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/realkafka"
)

// Self-metrics of the __consumer_offsets source (the exporter is a black
// box here: the names are its documented ones).
const (
	olReadable   = "kafka_rebalance_exporter_offsets_log_readable"
	olCaughtUp   = "kafka_rebalance_exporter_offsets_log_caught_up"
	olReadErrors = "kafka_rebalance_exporter_offsets_log_read_errors_total"
	olDeniedLine = "cannot read the group coordinators' log"
)

// TestOffsetsLogDenied runs the exporter with the source on as a principal
// with the README's ACLs but no Read on __consumer_offsets: everything else
// serves, readiness is unaffected, and the denial is one log line and a
// metric. Granting the ACLs then makes the source resume without a
// restart: the group's generation comes from the log.
func TestOffsetsLogDenied(t *testing.T) {
	adm := admin(t)
	prefix := "old-" + world.run
	topic, group := prefix+"-t", prefix+"-g"
	createTopic(t, adm, topic, 3)
	startProducer(t, topic, 50*time.Millisecond)
	m := startMember(t, realkafka.KindSarama, group+"-m1", group, topic)
	principal := "User:" + realkafka.LimitedUser
	grant(t, adm, principal, prefix)
	t.Cleanup(func() { revokeAll(t, adm, principal) })

	var deniedLines atomic.Int32
	onLog := func(line string) {
		if strings.Contains(line, olDeniedLine) {
			deniedLines.Add(1)
		}
	}
	e := startExporterLog(t, prefix+"-.*", onLog, append(saslEnv("SCRAM-SHA-512", realkafka.LimitedUser),
		"KRE_OFFSETS_LOG_ENABLED=true", "KRE_OFFSETS_LOG_RETRY_MAX=2s")...)
	eventually(t, 2*time.Minute, "the group served and the denial counted", func() error {
		mt, err := e.scrape()
		if err != nil {
			return err
		}
		if up, _ := mt.value("kafka_rebalance_exporter_up", nil); up != 1 {
			return fmt.Errorf("up = %v", up)
		}
		if _, ok := mt.value("kafka_consumergroup_members", map[string]string{"consumergroup": group}); !ok {
			return fmt.Errorf("no members series for %s", group)
		}
		if mt.sum("kafka_consumergroup_lag", map[string]string{"consumergroup": group}) < 0 ||
			len(mt.series("kafka_consumergroup_current_offset", map[string]string{"consumergroup": group})) == 0 {
			return fmt.Errorf("no committed offsets for %s yet", group)
		}
		if n, _ := mt.value(olReadErrors, map[string]string{"reason": "denied"}); n < 2 {
			return fmt.Errorf("read_errors_total{reason=denied} = %v, want retries counted", n)
		}
		if r, ok := mt.value(olReadable, nil); !ok || r != 0 {
			return fmt.Errorf("readable = %v (present %v)", r, ok)
		}
		return nil
	})
	if _, err := httpGet("http://" + e.addr + "/readyz"); err != nil {
		t.Errorf("readiness with the source denied: %v", err)
	}
	if n := deniedLines.Load(); n != 1 {
		t.Errorf("%d log lines say the log cannot be read, want 1 (once per episode, retries at debug)", n)
	}
	v, ok, err := e.group(group)
	if err != nil || !ok {
		t.Fatalf("group %s: %v %v", group, ok, err)
	}
	if v.GenerationSource == offsetsLogSource {
		t.Errorf("generation source %s while the log is denied", v.GenerationSource)
	}

	// Read (and Describe) on the internal topic: the source resumes.
	res, err := adm.CreateACLs(ctxT(t, time.Minute), kadm.NewACLs().Allow(principal).AllowHosts("*").
		Operations(kadm.OpRead, kadm.OpDescribe).Topics("__consumer_offsets").ResourcePatternType(kadm.ACLPatternLiteral))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	// A rebalance after the grant, so that the latest GroupMetadata is
	// read whatever the start position.
	m2 := startMember(t, realkafka.KindSarama, group+"-m2", group, topic)
	eventually(t, 3*time.Minute, "the source readable and answering for "+group, func() error {
		mt, err := e.scrape()
		if err != nil {
			return err
		}
		if r, _ := mt.value(olReadable, nil); r != 1 {
			return fmt.Errorf("readable = %v", r)
		}
		if c, _ := mt.value(olCaughtUp, nil); c != 1 {
			return fmt.Errorf("caught_up = %v", c)
		}
		gen, err := brokerGeneration(adm, group, 2, false)
		if err != nil {
			return err
		}
		v, _, err := e.group(group)
		if err != nil {
			return err
		}
		if v.GenerationSource != offsetsLogSource || v.generation() != gen {
			return fmt.Errorf("exporter %s, broker generation %d", v, gen)
		}
		for _, mv := range v.Members {
			if mv.SessionTimeoutMs == nil || *mv.SessionTimeoutMs != sessionTimeout.Milliseconds() ||
				mv.RebalanceTimeoutMs == nil || *mv.RebalanceTimeoutMs != maxPollInterval.Milliseconds() {
				return fmt.Errorf("member %s timeouts %v/%v, want %s/%s", mv.ClientID, mv.SessionTimeoutMs, mv.RebalanceTimeoutMs,
					sessionTimeout, maxPollInterval)
			}
		}
		return nil
	})
	if n := deniedLines.Load(); n != 1 {
		t.Errorf("%d log lines say the log cannot be read, want still 1", n)
	}
	stopClean(t, m2)
	stopClean(t, m)
}

// brokerGeneration is the broker's generation of a Stable group with n
// members: the latest GroupMetadata record (classic) or the group epoch
// (KIP-848).
func brokerGeneration(adm *kadm.Client, group string, n int, kip848 bool) (int32, error) {
	st, err := brokerState(adm, group)
	if err != nil {
		return 0, err
	}
	if st.State != "Stable" || st.Members != n || !st.Settled {
		return 0, fmt.Errorf("broker: %s with %d members (settled %v), want Stable with %d", st.State, st.Members, st.Settled, n)
	}
	if kip848 {
		return st.Epoch, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	gen, ok, err := world.offsets.Generation(ctx, group)
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, fmt.Errorf("no GroupMetadata record for %s", group)
	}
	return gen, nil
}

// TestOffsetsLogRestartMidStorm stops the exporter in the middle of a
// rebalance storm of sarama members (which send no generation: only the
// log knows it) and starts another with a look-back: it invents no
// rebalance from the history it reads back, and from its first reading of
// the log on, it counts exactly the broker's generations.
func TestOffsetsLogRestartMidStorm(t *testing.T) {
	adm := admin(t)
	prefix := "olr-" + world.run
	topic, group := prefix+"-t", prefix+"-g"
	createTopic(t, adm, topic, 6)
	startProducer(t, topic, 25*time.Millisecond)
	env := []string{"KRE_OFFSETS_LOG_ENABLED=true", "KRE_OFFSETS_LOG_START=10m"}
	first := startExporter(t, prefix+"-.*", env...)
	a := startMember(t, realkafka.KindSarama, group+"-a", group, topic)
	b := startMember(t, realkafka.KindSarama, group+"-b", group, topic)
	settle := func(e *exporter, what string) (gen int32, v groupView) {
		t.Helper()
		eventually(t, 3*time.Minute, what, func() error {
			g, err := brokerGeneration(adm, group, 2, false)
			if err != nil {
				return err
			}
			if v, _, err = e.group(group); err != nil {
				return err
			}
			if v.State != "Stable" || v.Rebalancing || v.GenerationSource != offsetsLogSource || v.generation() != g {
				return fmt.Errorf("exporter %s, broker generation %d", v, g)
			}
			gen = g
			return nil
		})
		return gen, v
	}
	settle(first, "first exporter exact before the storm")

	// The storm: members join and leave back to back.
	var (
		stormErr error
		rounds   atomic.Int32
		wg       sync.WaitGroup
	)
	const total = 8
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < total; i++ {
			m := startMember(t, realkafka.KindSarama, fmt.Sprintf("%s-s%d", group, i), group, topic)
			if err := m.WaitFor(2*time.Minute, "first assignment", func(evs []realkafka.Event) bool {
				for _, e := range evs {
					if e.Name == realkafka.EvAssigned && len(e.Partitions) > 0 {
						return true
					}
				}
				return false
			}); err != nil {
				stormErr = err
				return
			}
			if !m.Stop(30 * time.Second) {
				stormErr = fmt.Errorf("%s did not stop", m.Name)
				return
			}
			rounds.Add(1)
		}
	}()
	eventually(t, 5*time.Minute, "storm under way", func() error {
		if rounds.Load() < 2 {
			return fmt.Errorf("%d rounds", rounds.Load())
		}
		return nil
	})
	if !first.proc.Stop(10 * time.Second) {
		t.Fatal("first exporter did not stop")
	}
	second := startExporter(t, prefix+"-.*", env...)
	// Its first reading of the log, mid-storm: generation and count of
	// one snapshot.
	var gen0 int32
	var count0 uint64
	eventually(t, 3*time.Minute, "second exporter reads the log", func() error {
		v, ok, err := second.group(group)
		switch {
		case err != nil:
			return err
		case !ok || v.GenerationSource != offsetsLogSource:
			return fmt.Errorf("not from the log yet: %v", v)
		}
		gen0, count0 = v.generation(), v.Rebalances
		return nil
	})
	if count0 > 3 {
		// At most what describe output can show while the log is read
		// back; a replay of the look-back would count its history.
		t.Errorf("second exporter counted %d rebalances by its first log reading (generation %d)", count0, gen0)
	}
	stormDone := make(chan struct{})
	go func() { wg.Wait(); close(stormDone) }()
	select {
	case <-stormDone:
	case <-time.After(10 * time.Minute):
		t.Fatal("storm did not finish")
	}
	if stormErr != nil {
		t.Fatal(stormErr)
	}
	gen1, v := settle(second, "second exporter exact after the storm")
	if got, want := v.Rebalances-count0, uint64(gen1-gen0); got != want {
		t.Errorf("second exporter counted %d rebalances from generation %d to %d, broker made %d; history %s",
			got, gen0, gen1, want, v.History)
	}
	t.Logf("restart mid-storm after %d of %d rounds: second exporter from generation %d (%d counted by then) to %d, counted %d",
		2, total, gen0, count0, gen1, v.Rebalances-count0)
	stopClean(t, a)
	stopClean(t, b)
}
