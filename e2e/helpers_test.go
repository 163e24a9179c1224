// Package e2e checks the deliverables around the exporter binary: alert and
// recording rules, Grafana dashboards, the compose stack and the Dockerfile,
// against the real tools (promtool, prometheus, alertmanager) and a live
// exporter running its embedded demo cluster.
package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/testkit"
)

const installHint = "run scripts/install-test-deps.sh (installs Debian packages prometheus, prometheus-alertmanager and kcat)"

// TestMain stops the processes shared between tests (see liveExporter)
// and removes the binaries testkit built.
func TestMain(m *testing.M) {
	code := m.Run()
	shared.stop()
	testkit.RemoveBinaries()
	os.Exit(code)
}

// repoRoot is the module root.
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := testkit.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func repoPath(t testing.TB, rel ...string) string {
	return filepath.Join(append([]string{repoRoot(t)}, rel...)...)
}

// readFile returns a file's content; a file that cannot be read fails the
// test.
func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// tool finds an external program; the tests are meant to run where it is
// installed, so a missing one is a failure with the fix in the message.
func tool(t testing.TB, names ...string) string {
	t.Helper()
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	t.Fatalf("%s not found in PATH: %s", strings.Join(names, " or "), installHint)
	return ""
}

// run runs a command to completion and returns its combined output.
func run(t testing.TB, dir string, env []string, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// shared holds what lives for the whole test binary.
var shared sharedState

type sharedState struct {
	mu       sync.Mutex
	cleanups []func()

	exporterOnce sync.Once
	exporter     *testkit.Process
	exporterAddr string
	exporterErr  error
}

func (s *sharedState) addCleanup(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cleanups = append(s.cleanups, f)
}

func (s *sharedState) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.cleanups) - 1; i >= 0; i-- {
		s.cleanups[i]()
	}
	s.cleanups = nil
}

// liveExporter is `exporter -demo` with a continuous rebalance storm, member
// metrics on and short poll intervals, started once and shared by the
// metric-name check and the end-to-end test. It is ready (first polls done)
// when this returns.
func liveExporter(t testing.TB) (addr string, p *testkit.Process) {
	t.Helper()
	bin := testkit.Binary(t, "exporter")
	shared.exporterOnce.Do(func() {
		addr := testkit.FreeAddr(t)
		env := []string{
			"KRE_LISTEN_ADDRESS=" + addr,
			"KRE_DEMO_STORM=true",
			"KRE_MEMBER_METRICS=true",
			"KRE_REBALANCE_DURATION_BUCKETS=true", // the detail dashboard's quantile panels
			"KRE_GROUP_POLL_INTERVAL=1s",
			"KRE_POLL_INTERVAL=2s",
			"KRE_LOG_LEVEL=info",
			// kfake has no __consumer_offsets: the source is on and
			// reports it unreadable, so its metrics exist for the rules.
			"KRE_OFFSETS_LOG_ENABLED=true",
		}
		p, err := testkit.Start("exporter", repoRoot(t), env, bin, "-demo")
		if err != nil {
			shared.exporterErr = err
			return
		}
		shared.addCleanup(func() { _ = p.Stop(15 * time.Second) })
		shared.exporter, shared.exporterAddr = p, addr
	})
	if shared.exporterErr != nil {
		t.Fatal(shared.exporterErr)
	}
	p = shared.exporter
	testkit.WaitHTTP(t, p, "http://"+shared.exporterAddr+"/readyz", 60*time.Second)
	return shared.exporterAddr, p
}
