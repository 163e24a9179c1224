package realkafka

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/realkafka"
)

// aclKinds are the README's ACLs for the exporter's principal.
var aclKinds = []string{"group", "topic", "cluster"}

// grant gives principal Describe on the groups and topics named prefix*
// and on the cluster, leaving out the kinds in without.
func grant(t testing.TB, adm *kadm.Client, principal, prefix string, without ...string) {
	t.Helper()
	skip := map[string]bool{}
	for _, w := range without {
		skip[w] = true
	}
	b := kadm.NewACLs().Allow(principal).AllowHosts("*").Operations(kadm.OpDescribe).ResourcePatternType(kadm.ACLPatternPrefixed)
	if !skip["group"] {
		b = b.Groups(prefix)
	}
	if !skip["topic"] {
		b = b.Topics(prefix)
	}
	if !skip["cluster"] {
		b = b.Clusters()
	}
	res, err := adm.CreateACLs(ctxT(t, time.Minute), b)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Err != nil {
			t.Fatalf("create ACL %+v: %v", r, r.Err)
		}
	}
}

// revokeAll deletes every ACL of principal.
func revokeAll(t testing.TB, adm *kadm.Client, principal string) {
	t.Helper()
	b := kadm.NewACLs().Allow(principal).AllowHosts().AnyResource().Clusters().Operations(kadm.OpAny).ResourcePatternType(kadm.ACLPatternAny)
	if _, err := adm.DeleteACLs(ctxT(t, time.Minute), b); err != nil {
		t.Fatal(err)
	}
}

// secWorld is a topic and an idle group with commits, named sec-RUN*.
func secWorld(t *testing.T) (adm *kadm.Client, prefix, topic, group string) {
	adm = admin(t)
	prefix = "sec-" + world.run
	topic, group = prefix+"-t", prefix+"-g"
	createTopic(t, adm, topic, 3)
	produceN(t, topic, 30)
	commitPartial(t, adm, group, topic)
	return adm, prefix, topic, group
}

// fullMetrics checks that the exporter has everything about group and
// topic: the three committed offsets and lags, state, members, info, and
// the topic's partitions with log start and end.
func fullMetrics(m metrics, group, topic string) error {
	gl := map[string]string{"consumergroup": group}
	tl := map[string]string{"topic": topic}
	want := []struct {
		name   string
		labels map[string]string
		n      int
	}{
		{"kafka_consumergroup_current_offset", gl, 3}, {"kafka_consumergroup_lag", gl, 3},
		{"kafka_consumergroup_members", gl, 1}, {"kafka_consumergroup_info", gl, 1},
		{"kafka_topic_partitions", tl, 1}, {"kafka_topic_partition_current_offset", tl, 3},
		{"kafka_topic_partition_oldest_offset", tl, 3},
	}
	for _, w := range want {
		if got := len(m.series(w.name, w.labels)); got != w.n {
			return fmt.Errorf("%s%v: %d series, want %d", w.name, w.labels, got, w.n)
		}
	}
	if v, _ := m.value("kafka_consumergroup_current_offset", gpLabels(group, topic, 2)); v != 30 {
		return fmt.Errorf("committed offset of partition 2 = %v, want 30", v)
	}
	if v, _ := m.value("kafka_rebalance_exporter_up", nil); v != 1 {
		return fmt.Errorf("up = %v", v)
	}
	return nil
}

// TestSecurity runs the exporter over SASL_PLAINTEXT (SCRAM-SHA-256,
// SCRAM-SHA-512, PLAIN) as a principal holding exactly the README's ACLs,
// and over TLS, and expects full metrics from each; then it takes away one
// ACL at a time from another principal and records what the broker and the
// exporter do; finally the authorizer log must show nothing but Describe
// from the exporter's principals.
func TestSecurity(t *testing.T) {
	adm, prefix, topic, group := secWorld(t)
	principal := "User:" + realkafka.ExporterUser
	grant(t, adm, principal, prefix)
	t.Cleanup(func() { revokeAll(t, adm, principal) })

	t.Run("least-privilege", func(t *testing.T) {
		var wg sync.WaitGroup
		for _, mech := range []string{"SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				t.Run(mech, func(t *testing.T) {
					e := startExporter(t, prefix+"-.*", saslEnv(mech, realkafka.ExporterUser)...)
					eventually(t, 2*time.Minute, "full metrics over "+mech, func() error { return scrapeFull(e, group, topic) })
				})
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.Run("TLS", func(t *testing.T) {
				e := startExporter(t, prefix+"-.*", "KRE_BROKERS="+realkafka.Bootstrap(world.cluster.SSL),
					"KRE_TLS_ENABLED=true", "KRE_TLS_CA_FILE="+world.cluster.CAFile)
				eventually(t, 2*time.Minute, "full metrics over TLS", func() error { return scrapeFull(e, group, topic) })
			})
		}()
		wg.Wait()
	})
	t.Run("one-acl-fewer", func(t *testing.T) {
		for _, missing := range aclKinds {
			t.Run("without-"+missing, func(t *testing.T) { oneFewer(t, adm, prefix, group, topic, missing) })
		}
	})
	t.Run("read-only", func(t *testing.T) { readOnly(t, principal) })
}

func saslEnv(mech, user string) []string {
	return []string{
		"KRE_BROKERS=" + realkafka.Bootstrap(world.cluster.SASLPlaintext),
		"KRE_SASL_MECHANISM=" + mech, "KRE_SASL_USERNAME=" + user, "KRE_SASL_PASSWORD=" + realkafka.Password(user),
	}
}

func scrapeFull(e *exporter, group, topic string) error {
	m, err := e.scrape()
	if err != nil {
		return err
	}
	return fullMetrics(m, group, topic)
}

// oneFewer gives User:limited the README's ACLs less one kind, runs the
// exporter as it for a few polls, and reports what it exports and counts.
// The exporter must keep running; where the broker refuses a request, the
// refusal must show as a counted poll error.
func oneFewer(t *testing.T, adm *kadm.Client, prefix, group, topic, missing string) {
	principal := "User:" + realkafka.LimitedUser
	revokeAll(t, adm, principal)
	grant(t, adm, principal, prefix, missing)
	t.Cleanup(func() { revokeAll(t, adm, principal) })
	logStart := authorizerLines(t)
	e := startExporterUnready(t, prefix+"-.*", saslEnv("SCRAM-SHA-512", realkafka.LimitedUser)...)
	var m metrics
	eventually(t, 2*time.Minute, "three polls of each loop", func() error {
		if e.proc.Exited() {
			return fmt.Errorf("%w: the exporter exited:\n%s", errStop, e.proc.Tail())
		}
		var err error
		if m, err = e.scrape(); err != nil {
			return err
		}
		for _, loop := range []string{"groups", "offsets"} {
			if v, _ := m.value("kafka_rebalance_exporter_polls_total", map[string]string{"loop": loop}); v < 3 {
				return fmt.Errorf("%s polls: %v", loop, v)
			}
		}
		return nil
	})
	denied := deniedSince(t, logStart, principal)
	errs := map[string]float64{}
	for _, s := range m.series("kafka_rebalance_exporter_poll_errors_total", nil) {
		if s.value > 0 {
			errs[s.labels["stage"]] = s.value
		}
	}
	up, _ := m.value("kafka_rebalance_exporter_up", nil)
	full := fullMetrics(m, group, topic)
	t.Logf("without Describe on %s: broker denied %v; exporter up=%v poll_errors_total=%v, group series %d, topic series %d, full metrics: %v",
		missing, denied, up, errs, len(m.series("kafka_consumergroup_current_offset", map[string]string{"consumergroup": group})),
		len(m.series("kafka_topic_partition_current_offset", map[string]string{"topic": topic})), errOrOK(full))
	deniedTotal := 0.0
	for _, s := range m.series("kafka_rebalance_exporter_denied_total", nil) {
		deniedTotal += s.value
	}
	switch {
	case missing == "topic":
		// Without Describe on a topic the broker leaves it out of Metadata
		// and of OffsetFetch's all-topics answer, with no error code: the
		// exporter cannot tell it from a topic nobody committed on (the
		// README says so). What it must not do is export anything wrong
		// about it.
		if n := len(m.series("kafka_topic_partition_current_offset", map[string]string{"topic": topic})); n != 0 {
			t.Errorf("the topic is hidden from the principal, yet %d series of it are exported", n)
		}
		if n := len(m.series("kafka_consumergroup_current_offset", map[string]string{"consumergroup": group, "topic": topic})); n != 0 {
			t.Errorf("the topic is hidden from the principal, yet %d committed offsets on it are exported", n)
		}
		if up != 1 {
			t.Errorf("up=%v: a topic the principal may not see is no reason for the exporter to say it cannot serve", up)
		}
	case len(denied) > 0 && len(errs) == 0 && deniedTotal == 0:
		t.Errorf("the broker refused %v, but the exporter counts neither a poll error nor a denial (up=%v): a silent loss of data", denied, up)
	}
	if len(denied) == 0 && full != nil {
		t.Errorf("the broker refused nothing, yet the metrics are incomplete: %v", full)
	}
}

func errOrOK(err error) string {
	if err == nil {
		return "complete"
	}
	return err.Error()
}

// startExporterUnready starts an exporter without waiting for /readyz
// (which a refused poll may never make ready).
func startExporterUnready(t testing.TB, groupInclude string, env ...string) *exporter {
	t.Helper()
	addr := freeAddr(t)
	base := []string{
		"KRE_BROKERS=" + realkafka.Bootstrap(world.cluster.Plaintext), "KRE_LISTEN_ADDRESS=" + addr,
		"KRE_GROUP_POLL_INTERVAL=500ms", "KRE_POLL_INTERVAL=1s", "KRE_LOG_FORMAT=console", "KRE_GROUP_INCLUDE=" + groupInclude,
	}
	p, err := realkafka.StartProc("exporter", append(base, env...), nil, nil, world.exporter)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Stop(10 * time.Second)
		if t.Failed() {
			t.Logf("exporter output:\n%s", p.Tail())
		}
	})
	return &exporter{proc: p, addr: addr}
}

// authzLine is one decision of the broker's authorizer.
var authzLine = regexp.MustCompile(`Principal = (\S+) is (Allowed|Denied) operation = (\S+) from host = \S+ on resource = (\S+) for request = (\S+)`)

type decision struct{ principal, result, op, resource, request string }

// authorizerLines reads every node's authorizer.log.
func authorizerLines(t testing.TB) map[string]int {
	t.Helper()
	counts := map[string]int{}
	for _, d := range world.cluster.NodeDirs() {
		n := 0
		_ = eachDecision(filepath.Join(d, "authorizer.log"), func(decision) { n++ })
		counts[d] = n
	}
	return counts
}

func eachDecision(path string, f func(decision)) error {
	fh, err := os.Open(path)
	if err != nil {
		return err
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		if m := authzLine.FindStringSubmatch(sc.Text()); m != nil {
			f(decision{m[1], m[2], m[3], m[4], m[5]})
		}
	}
	return sc.Err()
}

// deniedSince lists the distinct "request operation resource" the broker
// denied principal after the given per-node line counts.
func deniedSince(t testing.TB, start map[string]int, principal string) []string {
	t.Helper()
	set := map[string]bool{}
	for _, d := range world.cluster.NodeDirs() {
		i := 0
		_ = eachDecision(filepath.Join(d, "authorizer.log"), func(dc decision) {
			i++
			if i > start[d] && dc.principal == principal && dc.result == "Denied" {
				set[dc.request+" "+dc.op+" "+dc.resource] = true
			}
		})
	}
	return sortedKeys(set)
}

// readOnlyRequests are the requests a read-only poller may send.
var readOnlyRequests = map[string]bool{
	"Metadata": true, "ListGroups": true, "DescribeGroups": true, "ConsumerGroupDescribe": true,
	"OffsetFetch": true, "ListOffsets": true, "FindCoordinator": true, "DescribeCluster": true,
}

// readOnly: everything the authorizer decided for principal is a Describe
// in a read-only request, and nothing was denied.
func readOnly(t *testing.T, principal string) {
	ops := map[string]int{}
	for _, d := range world.cluster.NodeDirs() {
		if err := eachDecision(filepath.Join(d, "authorizer.log"), func(dc decision) {
			if dc.principal != principal {
				return
			}
			ops[dc.result+" "+dc.op+" in "+dc.request]++
			if dc.result != "Allowed" || dc.op != "DESCRIBE" || !readOnlyRequests[dc.request] {
				t.Errorf("authorizer: %s %s %s on %s in %s", dc.principal, dc.result, dc.op, dc.resource, dc.request)
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	keys := sortedKeys(ops)
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "  %6d %s\n", ops[k], k)
	}
	t.Logf("authorizer decisions for %s:\n%s", principal, b.String())
	if len(ops) == 0 {
		t.Errorf("the authorizer logged no decision for %s: the proof would be empty", principal)
	}
}
