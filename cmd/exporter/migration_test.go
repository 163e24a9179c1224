package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/testkit"
)

// kafkaExporterFlags are danielqsj/kafka_exporter's flags: its README's
// Flags table, plus those its main registers that the table leaves out
// (sasl.disable-PA-FX-FAST, kafka.allow-auto-topic-creation,
// group.workers, group.metrics.timeout, and promlog's log.level and
// log.format).
var kafkaExporterFlags = []string{
	"kafka.server", "kafka.version",
	"sasl.enabled", "sasl.handshake", "sasl.username", "sasl.password", "sasl.mechanism", "sasl.aws-region",
	"sasl.oauthbearer-token-url", "sasl.oauthbearer-token-file", "sasl.oauthbearer-scopes",
	"sasl.service-name", "sasl.kerberos-config-path", "sasl.realm", "sasl.keytab-path", "sasl.kerberos-auth-type",
	"tls.enabled", "tls.server-name", "tls.ca-file", "tls.cert-file", "tls.key-file", "tls.insecure-skip-tls-verify",
	"server.tls.enabled", "server.tls.mutual-auth-enabled", "server.tls.ca-file", "server.tls.cert-file", "server.tls.key-file",
	"topic.filter", "topic.exclude", "group.filter", "group.exclude",
	"web.listen-address", "web.telemetry-path", "log.enable-sarama",
	"use.consumelag.zookeeper", "zookeeper.server", "kafka.labels", "refresh.metadata",
	"offset.show-all", "concurrent.enable", "topic.workers", "verbosity",
	// Registered by kafka_exporter's main, not in its README's table.
	"sasl.disable-PA-FX-FAST", "kafka.allow-auto-topic-creation", "group.workers", "group.metrics.timeout",
	"log.level", "log.format",
}

// The migration guide's flag table has one row per kafka_exporter flag
// and names only variables that exist (exporter -help lists them).
func TestMigrationGuideFlagTable(t *testing.T) {
	root, err := testkit.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	guide, err := os.ReadFile(filepath.Join(root, "docs", "migrating-from-kafka_exporter.md"))
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"-help"}, &stdout, &stderr); code != 0 {
		t.Fatalf("-help: exit %d", code)
	}
	help := map[string]bool{}
	for _, v := range regexp.MustCompile(`\bKRE_[A-Z0-9_]+\b`).FindAllString(stderr.String(), -1) {
		help[v] = true
	}
	if len(help) < 30 {
		t.Fatalf("-help lists only %d variables:\n%s", len(help), stderr.String())
	}

	row := regexp.MustCompile("^\\| `--([A-Za-z0-9.-]+)` \\|([^|]*)\\|")
	rows := map[string]int{}
	named := 0
	for _, line := range strings.Split(string(guide), "\n") {
		m := row.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		flag := m[1]
		rows[flag]++
		if !slices.Contains(kafkaExporterFlags, flag) {
			t.Errorf("the guide has a row for --%s, which is not a kafka_exporter flag", flag)
		}
		// Every variable named anywhere in the row exists.
		for _, v := range regexp.MustCompile(`\bKRE_[A-Z0-9_]+\b`).FindAllString(line, -1) {
			named++
			if !help[v] {
				t.Errorf("row --%s names %s, which exporter -help does not list", flag, v)
			}
		}
		if strings.TrimSpace(m[2]) == "" {
			t.Errorf("row --%s: empty second column (write — for no equivalent)", flag)
		}
	}
	for _, flag := range kafkaExporterFlags {
		switch rows[flag] {
		case 0:
			t.Errorf("the guide has no row for kafka_exporter's --%s", flag)
		case 1:
		default:
			t.Errorf("the guide has %d rows for --%s", rows[flag], flag)
		}
	}
	if named < 25 {
		t.Errorf("the flag table names only %d variables; is the table's format what this test parses?", named)
	}
}
