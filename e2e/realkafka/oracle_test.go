package realkafka

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/realkafka"
)

// TestOracleAllClientKinds compares, in a quiesced world, everything the
// exporter says about groups of every client kind with kafka-consumer-groups:
// committed offset, log end and lag per partition (--describe); state,
// coordinator, assignor and member count (--state); members and their
// assignments (--members --verbose, against the JSON API).
func TestOracleAllClientKinds(t *testing.T) {
	adm := admin(t)
	topic := "oracle-" + world.run
	createTopic(t, adm, topic, 6)
	produceN(t, topic, 600)

	groups := map[string]string{} // group -> kind
	for _, kind := range allKinds {
		g := "oracle-" + world.run + "-" + kind
		groups[g] = kind
		for i := 0; i < 2; i++ {
			startMember(t, kind, fmt.Sprintf("%s-m%d", g, i), g, topic)
		}
	}
	idle := "oracle-" + world.run + "-idle"
	groups[idle] = "admin-commit"
	commitPartial(t, adm, idle, topic)

	e := startExporter(t, "oracle-"+world.run+"-.*")
	for g := range groups {
		if g != idle {
			committedAtEnd(t, adm, g, topic, 3*time.Minute)
			waitBrokerStable(t, adm, g, 2, 2*time.Minute)
		}
	}
	names := sortedKeys(groups)
	ctx := ctxT(t, 3*time.Minute)
	offsets, err := world.cluster.DescribeOffsets(ctx, names...)
	if err != nil {
		t.Fatal(err)
	}
	states, err := world.cluster.DescribeState(ctx, names...)
	if err != nil {
		t.Fatal(err)
	}
	members, err := world.cluster.DescribeMembers(ctx, names...)
	if err != nil {
		t.Fatal(err)
	}
	m := scrapeAfter(t, e, time.Now(), names)

	compared, bad := compareOffsets(t, m, offsets, names)
	compared2, bad2 := compareStates(t, e, m, states)
	compared3, bad3 := compareMembers(t, e, members, names)
	t.Logf("compared %d group-partitions (%d groups) with --describe: %d mismatches; %d groups with --state: %d mismatches; %d members with --members --verbose: %d mismatches",
		compared, len(names), bad, compared2, bad2, compared3, bad3)
	// Groups with members list every partition; the idle group only its
	// three committed ones.
	if want := (len(names)-1)*6 + 3; compared != want {
		t.Errorf("--describe listed %d group-partitions, want %d", compared, want)
	}
}

// commitPartial commits, as the admin, offsets for half of topic's
// partitions of a group that has no members: lag > 0, and partitions
// without a commit.
func commitPartial(t testing.TB, adm *kadm.Client, group, topic string) {
	t.Helper()
	var os kadm.Offsets
	for p := int32(0); p < 3; p++ {
		os.Add(kadm.Offset{Topic: topic, Partition: p, At: int64(10 * (p + 1)), LeaderEpoch: -1})
	}
	commit(t, adm, group, os)
}

// commit commits os for group as the admin, retrying while the new topic
// is not yet known to the group's coordinator.
func commit(t testing.TB, adm *kadm.Client, group string, os kadm.Offsets) {
	t.Helper()
	eventually(t, time.Minute, "commit offsets of "+group, func() error {
		r, err := adm.CommitOffsets(ctxT(t, time.Minute), group, os)
		if err == nil {
			err = r.Error()
		}
		return err
	})
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// waitBrokerStable waits until the broker reports group Stable with n
// members.
func waitBrokerStable(t testing.TB, adm *kadm.Client, group string, n int, timeout time.Duration) {
	t.Helper()
	eventually(t, timeout, group+" Stable on the broker", func() error {
		st, err := brokerState(adm, group)
		if err != nil {
			return err
		}
		if st.State != "Stable" || st.Members != n || !st.Settled {
			return fmt.Errorf("state %s with %d members, want Stable with %d", st.State, st.Members, n)
		}
		return nil
	})
}

// scrapeAfter waits until both exporter loops have polled, and every group
// was observed, after since; then it scrapes.
func scrapeAfter(t testing.TB, e *exporter, since time.Time, groups []string) metrics {
	t.Helper()
	var m metrics
	eventually(t, 2*time.Minute, "exporter polled after quiescence", func() error {
		for _, g := range groups {
			v, ok, err := e.group(g)
			if err != nil || !ok {
				return fmt.Errorf("group %s: ok=%v %v", g, ok, err)
			}
			if !v.ObservedAt.After(since) {
				return fmt.Errorf("group %s observed at %s, before %s", g, v.ObservedAt, since)
			}
		}
		var err error
		if m, err = e.scrape(); err != nil {
			return err
		}
		for _, loop := range []string{"groups", "offsets"} {
			if !m.pollTime(loop).After(since) {
				return fmt.Errorf("%s poll at %s, before %s", loop, m.pollTime(loop), since)
			}
		}
		return nil
	})
	return m
}

func gpLabels(group, topic string, p int32) map[string]string {
	return map[string]string{"consumergroup": group, "topic": topic, "partition": strconv.Itoa(int(p))}
}

// compareOffsets checks every --describe row against the metrics, and that
// the exporter has no committed offset the tool does not list.
func compareOffsets(t testing.TB, m metrics, rows []realkafka.OffsetRow, groups []string) (compared, bad int) {
	t.Helper()
	listed := map[string]bool{}
	for _, r := range rows {
		compared++
		l := gpLabels(r.Group, r.Topic, r.Partition)
		listed[fmt.Sprint(r.Group, r.Topic, r.Partition)] = true
		var errs []string
		if v, ok := m.value("kafka_topic_partition_current_offset", map[string]string{"topic": r.Topic, "partition": l["partition"]}); !ok || int64(v) != r.LogEnd {
			errs = append(errs, fmt.Sprintf("log end: broker %d, exporter %v (present %v)", r.LogEnd, v, ok))
		}
		errs = append(errs, compareOptional(m, "kafka_consumergroup_current_offset", l, r.Current)...)
		errs = append(errs, compareOptional(m, "kafka_consumergroup_lag", l, r.Lag)...)
		if len(errs) > 0 {
			bad++
			t.Errorf("%s %s[%d]: %v", r.Group, r.Topic, r.Partition, errs)
		}
	}
	for _, g := range groups {
		for _, s := range m.series("kafka_consumergroup_current_offset", map[string]string{"consumergroup": g}) {
			if !listed[fmt.Sprint(g, s.labels["topic"], s.labels["partition"])] {
				bad++
				t.Errorf("exporter has a committed offset for %v that kafka-consumer-groups does not list", s.labels)
			}
		}
	}
	return compared, bad
}

// compareOptional: want -1 (the tool's "-") means no series.
func compareOptional(m metrics, name string, l map[string]string, want int64) []string {
	v, ok := m.value(name, l)
	switch {
	case want < 0 && ok:
		return []string{fmt.Sprintf("%s: broker none, exporter %v", name, v)}
	case want >= 0 && (!ok || int64(v) != want):
		return []string{fmt.Sprintf("%s: broker %d, exporter %v (present %v)", name, want, v, ok)}
	}
	return nil
}

// compareStates checks --state rows against the state and members metrics
// and the JSON view's coordinator and assignor.
func compareStates(t testing.TB, e *exporter, m metrics, rows []realkafka.StateRow) (compared, bad int) {
	t.Helper()
	for _, r := range rows {
		compared++
		var errs []string
		if v, ok := m.value("kafka_consumergroup_state", map[string]string{"consumergroup": r.Group, "state": r.State}); !ok || v != 1 {
			errs = append(errs, fmt.Sprintf("state: broker %s, exporter's %s series %v (present %v)", r.State, r.State, v, ok))
		}
		if v, ok := m.value("kafka_consumergroup_members", map[string]string{"consumergroup": r.Group}); !ok || int(v) != r.Members {
			errs = append(errs, fmt.Sprintf("members: broker %d, exporter %v", r.Members, v))
		}
		g, ok, err := e.group(r.Group)
		switch {
		case err != nil || !ok:
			errs = append(errs, fmt.Sprintf("JSON view: %v %v", ok, err))
		default:
			if g.Coordinator != r.CoordinatorID {
				errs = append(errs, fmt.Sprintf("coordinator: broker %d (%s), exporter %d", r.CoordinatorID, r.Coordinator, g.Coordinator))
			}
			if g.Assignor != r.Assignor {
				errs = append(errs, fmt.Sprintf("assignor: broker %q, exporter %q", r.Assignor, g.Assignor))
			}
		}
		info := m.series("kafka_consumergroup_info", map[string]string{"consumergroup": r.Group})
		if len(info) != 1 || info[0].labels["assignor"] != r.Assignor {
			errs = append(errs, fmt.Sprintf("kafka_consumergroup_info: %v, broker assignor %q coordinator %d", info, r.Assignor, r.CoordinatorID))
		}
		if len(errs) > 0 {
			bad++
			t.Errorf("%s: %v", r.Group, errs)
		}
	}
	return compared, bad
}

type memberKey struct {
	ClientID, Host string
	Assignment     map[string][]int32
	Epoch          int32
}

// compareMembers checks --members --verbose rows against the JSON view.
func compareMembers(t testing.TB, e *exporter, rows []realkafka.MemberRow, groups []string) (compared, bad int) {
	t.Helper()
	broker := map[string]map[string]memberKey{}
	for _, r := range rows {
		if broker[r.Group] == nil {
			broker[r.Group] = map[string]memberKey{}
		}
		broker[r.Group][r.ConsumerID] = memberKey{r.ClientID, r.Host, nonEmpty(r.Assignment), r.CurrentEpoch}
	}
	for _, g := range groups {
		v, ok, err := e.group(g)
		if err != nil || !ok {
			t.Errorf("%s: JSON view %v %v", g, ok, err)
			bad++
			continue
		}
		got := map[string]memberKey{}
		for _, mm := range v.Members {
			epoch := int32(-1)
			if mm.MemberEpoch != nil {
				epoch = *mm.MemberEpoch
			}
			got[mm.MemberID] = memberKey{mm.ClientID, mm.ClientHost, nonEmpty(mm.Assignment), epoch}
		}
		want := broker[g]
		dropTopicsWhereUnnamed(got, want)
		if want == nil {
			want = map[string]memberKey{}
		}
		compared += len(want)
		if !reflect.DeepEqual(got, want) {
			bad++
			t.Errorf("%s members:\n broker   %+v\n exporter %+v", g, want, got)
		}
	}
	return compared, bad
}

// dropTopicsWhereUnnamed: Kafka 3.9's tool names no topic in assignments
// (topic ""); compare only the partitions then, all topics together.
func dropTopicsWhereUnnamed(got, want map[string]memberKey) {
	for id, w := range want {
		if _, unnamed := w.Assignment[""]; !unnamed {
			continue
		}
		g := got[id]
		var all []int32
		for _, ps := range g.Assignment {
			all = append(all, ps...)
		}
		g.Assignment = nonEmpty(map[string][]int32{"": all})
		got[id] = g
	}
}

func nonEmpty(a map[string][]int32) map[string][]int32 {
	out := map[string][]int32{}
	for t, ps := range a {
		if len(ps) > 0 {
			out[t] = append([]int32(nil), ps...)
			sort.Slice(out[t], func(i, j int) bool { return out[t][i] < out[t][j] })
		}
	}
	return out
}

// commitAt commits, as the admin, offset at on partition 0 of topic.
func commitAt(t testing.TB, adm *kadm.Client, group, topic string, at int64) {
	t.Helper()
	var os kadm.Offsets
	os.Add(kadm.Offset{Topic: topic, Partition: 0, At: at, LeaderEpoch: -1})
	commit(t, adm, group, os)
}
