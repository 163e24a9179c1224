package realkafka

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/realkafka"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/testkit"
)

// mayBeEmpty are the dashboard queries that can legitimately return
// nothing in this test's world, and why. Keep it short: every other query
// must return data.
var mayBeEmpty = map[string]string{}

// TestDashboardQueriesReturnData: a real Prometheus, with the shipped
// recording and alert rules (windows shortened), scrapes the exporter
// watching the real cluster, where real Java consumer groups work on a topic
// that keeps being produced to: a classic group that members keep joining
// and leaving (rebalances, joins, leaves, partition moves, rebalance
// durations), a KIP-848 group (assignment epochs), and a group without
// members whose committed offsets lag behind. Every panel query,
// annotation and variable of every dashboard must return data, with the
// dashboards' variables set to this world's job, instance and groups.
func TestDashboardQueriesReturnData(t *testing.T) {
	queries, err := dashboardQueries()
	if err != nil {
		t.Fatal(err)
	}
	adm := admin(t)
	prefix := "dash-" + world.run
	topic := prefix + "-classic" // churn's members consume the topic named after their group
	createTopic(t, adm, topic, 6)
	produceN(t, topic, 600) // 100 a partition: the lagging group's commits are below the log end
	e := startExporter(t, prefix+"-.*", "KRE_MEMBER_METRICS=true", "KRE_REBALANCE_DURATION_BUCKETS=true")

	dir := t.TempDir()
	promAddr := testkit.FreeAddr(t)
	// No Alertmanager: the alert rules evaluate all the same (ALERTS).
	cfg := writePromConfig(t, dir, writeShortRules(t, dir), testkit.FreeAddr(t), e.addr)
	prom := testkit.StartT(t, "prometheus", dir, nil, lookTool(t, "prometheus"),
		"--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "prom"), "--web.listen-address="+promAddr)
	base := "http://" + promAddr
	testkit.WaitHTTP(t, prom, base+"/-/ready", 2*time.Minute)

	startProducer(t, topic, 50*time.Millisecond)
	lagging, classic, kip848 := prefix+"-lagging", topic, prefix+"-848"
	commitPartial(t, adm, lagging, topic)
	first := startMember(t, realkafka.KindJavaEager, classic+"-a", classic, topic)
	startMember(t, realkafka.KindJava848, kip848+"-a", kip848, topic)
	if err := first.WaitFor(2*time.Minute, "assignment", assigned); err != nil {
		t.Fatal(err)
	}
	// Members keep joining and leaving the classic group (churn, from the
	// storm test) until every query has had data: the queries over
	// rebalance windows (rebalancing now, rebalances in the last hour, the
	// annotation) need recent rebalances, whenever Prometheus gets there.
	stop, churned := make(chan struct{}), make(chan int)
	go churn(t, classic, stop, churned)
	defer func() {
		close(stop)
		t.Logf("%d churn rounds", <-churned)
	}()
	vars := map[string]string{
		"job": "kafka-rebalance-exporter", "instance": e.addr,
		"consumergroup": prefix + "-.*", "topic": ".*",
		"__rate_interval": "20s", "__interval": "10s", "__range": "3m",
	}
	type pending struct {
		q    dashQuery
		expr string
	}
	var todo []pending
	for _, q := range queries {
		expr, err := substitute(q.Expr, vars)
		if err != nil {
			t.Fatalf("%s: %v", q.Where, err)
		}
		todo = append(todo, pending{q, expr})
	}
	n := len(todo)
	t0 := time.Now()
	eventually(t, 4*time.Minute, "data for every dashboard query", func() error {
		if gone, _ := prom.Exited(); gone {
			return fmt.Errorf("%w: prometheus exited", errStop)
		}
		if e.proc.Exited() {
			return fmt.Errorf("%w: exporter exited", errStop)
		}
		var left []pending
		var msgs []string
		for _, p := range todo {
			got, err := promResults(base, p.q, p.expr)
			if err == nil && got == 0 {
				err = fmt.Errorf("no data")
			}
			if err != nil {
				left = append(left, p)
				msgs = append(msgs, fmt.Sprintf("%s: %v\n    %s", p.q.Where, err, p.expr))
			}
		}
		todo = left
		var unexplained []string
		for i, p := range todo {
			if _, ok := mayBeEmpty[p.q.Where]; !ok {
				unexplained = append(unexplained, msgs[i])
			}
		}
		if len(unexplained) > 0 {
			return fmt.Errorf("%d queries without data:\n  %s", len(unexplained), strings.Join(unexplained, "\n  "))
		}
		return nil
	})
	var empty []string
	for _, p := range todo {
		empty = append(empty, fmt.Sprintf("%s (%s)", p.q.Where, mayBeEmpty[p.q.Where]))
	}
	for w := range mayBeEmpty {
		if !slices.ContainsFunc(queries, func(q dashQuery) bool { return q.Where == w }) {
			t.Errorf("mayBeEmpty lists %s, which no dashboard has", w)
		}
	}
	t.Logf("%d of %d dashboard queries returned data after %s; empty as allowed: %v", n-len(todo), n, time.Since(t0).Round(time.Second), empty)
}

func assigned(evs []realkafka.Event) bool {
	for _, e := range evs {
		if e.Name == realkafka.EvAssigned && len(e.Partitions) > 0 {
			return true
		}
	}
	return false
}
