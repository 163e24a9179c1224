// Package e2e checks the deliverables around the exporter binary: alert and
// recording rules, Grafana dashboards, the compose stack and the Dockerfile,
// against the real tools (promtool, prometheus, alertmanager) and a live
// exporter running its embedded demo cluster.
package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/testkit"
)

const installHint = "run scripts/install-test-deps.sh (installs Debian packages prometheus, prometheus-alertmanager and kcat)"

// TestMain stops the processes shared between tests (see sharedExporter).
func TestMain(m *testing.M) {
	code := m.Run()
	shared.stop()
	os.Exit(code)
}

// repoRoot is the module root: tests run in e2e/.
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repository root not found from %s: %v", root, err)
	}
	return root
}

func repoPath(t testing.TB, rel ...string) string {
	return filepath.Join(append([]string{repoRoot(t)}, rel...)...)
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

// eventually calls cond every interval until it returns nil or timeout
// passes; then the test fails with cond's last error. An error wrapping
// errStop fails at once: the condition can no longer become true.
func eventually(t testing.TB, timeout, interval time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if errors.Is(err, errStop) {
			t.Fatalf("%s: %v", what, err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within %s: %v", what, timeout, err)
		}
		time.Sleep(interval)
	}
}

// freeAddr returns a loopback address with a port nobody listens on now.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// httpGet returns the body of a 200 answer.
func httpGet(url string) ([]byte, error) {
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return body, fmt.Errorf("GET %s: %s: %.300s", url, resp.Status, body)
	}
	return body, nil
}

// process is a started program whose output is kept for failure messages.
type process struct {
	name string
	cmd  *exec.Cmd
	out  *testkit.SyncBuffer
	done chan struct{}
	err  error
}

func startProcess(name string, dir string, env []string, bin string, args ...string) (*process, error) {
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	dieWithParent(cmd)
	out := &testkit.SyncBuffer{}
	cmd.Stdout = out
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, out: out, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// startT starts a process that the test's cleanup stops.
func startT(t testing.TB, name, dir string, env []string, bin string, args ...string) *process {
	t.Helper()
	p, err := startProcess(name, dir, env, bin, args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.stop(10 * time.Second); err != nil {
			t.Logf("%s: %v", name, err)
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", name, p.out.Tail(4000))
		}
	})
	return p
}

// exited reports whether the process has ended, with its error.
func (p *process) exited() (bool, error) {
	select {
	case <-p.done:
		return true, fmt.Errorf("%s exited: %v\n%s", p.name, p.err, p.out.Tail(3000))
	default:
		return false, nil
	}
}

// stop sends SIGTERM, waits up to grace, then kills. It returns an error
// if the process had to be killed.
func (p *process) stop(grace time.Duration) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("did not stop within %s of SIGTERM; killed", grace)
	}
}

// waitHTTP polls url until it answers 200, failing early if p exits.
func waitHTTP(t testing.TB, p *process, url string, timeout time.Duration) {
	t.Helper()
	eventually(t, timeout, 200*time.Millisecond, p.name+" answering "+url, func() error {
		if gone, err := p.exited(); gone {
			return errors.Join(errStop, err)
		}
		_, err := httpGet(url)
		return err
	})
}

// errStop marks a condition that can never become true, such as a process
// that has exited.
var errStop = errors.New("process ended")

// builds caches binaries built from this module, one per package.
var builds struct {
	mu   sync.Mutex
	dir  string
	bins map[string]string
}

// buildBinary builds ./cmd/<name> once per test binary.
func buildBinary(t testing.TB, name string) string {
	t.Helper()
	builds.mu.Lock()
	defer builds.mu.Unlock()
	if bin, ok := builds.bins[name]; ok {
		return bin
	}
	if builds.dir == "" {
		dir, err := os.MkdirTemp("", "kre-e2e-bin-")
		if err != nil {
			t.Fatal(err)
		}
		builds.dir = dir
		builds.bins = map[string]string{}
		shared.addCleanup(func() { os.RemoveAll(dir) })
	}
	bin := filepath.Join(builds.dir, name)
	if runtime.GOOS == "windows" {
		bin += ".exe"
	}
	out, err := run(t, repoRoot(t), []string{"CGO_ENABLED=0"}, "go", "build", "-trimpath", "-o", bin, "./cmd/"+name)
	if err != nil {
		t.Fatalf("go build ./cmd/%s: %v\n%s", name, err, out)
	}
	builds.bins[name] = bin
	return bin
}

// shared holds what lives for the whole test binary.
var shared sharedState

type sharedState struct {
	mu       sync.Mutex
	cleanups []func()

	exporterOnce sync.Once
	exporter     *process
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
func liveExporter(t testing.TB) (addr string, p *process) {
	t.Helper()
	bin := buildBinary(t, "exporter")
	shared.exporterOnce.Do(func() {
		addr := freeAddr(t)
		env := []string{
			"KRE_LISTEN_ADDRESS=" + addr,
			"KRE_DEMO_STORM=true",
			"KRE_MEMBER_METRICS=true",
			"KRE_GROUP_POLL_INTERVAL=1s",
			"KRE_POLL_INTERVAL=2s",
			"KRE_LOG_LEVEL=info",
		}
		p, err := startProcess("exporter", repoRoot(t), env, bin, "-demo")
		if err != nil {
			shared.exporterErr = err
			return
		}
		shared.addCleanup(func() { _ = p.stop(15 * time.Second) })
		shared.exporter, shared.exporterAddr = p, addr
	})
	if shared.exporterErr != nil {
		t.Fatal(shared.exporterErr)
	}
	p = shared.exporter
	waitHTTP(t, p, "http://"+shared.exporterAddr+"/readyz", 60*time.Second)
	return shared.exporterAddr, p
}
