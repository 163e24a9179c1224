package web_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/bench"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/kafkatest"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/testkit"
)

// These tests run the exporter binary (cmd/exporter wires the HTTP server
// and its KRE_WEB_*_TIMEOUT settings) against an in-process kfake world
// big enough that /metrics is several megabytes, and watch its sockets
// from /proc.

const (
	webTopic      = "orders"
	webPartitions = 16
)

// webWorld commits groups groups on a topic of webPartitions partitions
// and returns the brokers' addresses.
func webWorld(t *testing.T, groups int) []string {
	t.Helper()
	c := kafkatest.NewCluster(t)
	addrs := c.ListenAddrs()
	kafkatest.CreateTopic(t, addrs, webTopic, webPartitions)
	parts := make([]int32, webPartitions)
	for i := range parts {
		parts[i] = int32(i)
	}
	kafkatest.Produce(t, addrs, webTopic, parts, 5)
	adm := kafkatest.Admin(t, addrs)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for g := range groups {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			var os kadm.Offsets
			for _, p := range parts {
				os.AddOffset(webTopic, p, int64(g%5), -1)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if _, err := adm.CommitOffsets(ctx, fmt.Sprintf("web-group-%04d", g), os); err != nil {
				t.Errorf("commit: %v", err)
			}
		}()
	}
	wg.Wait()
	return addrs
}

// startExporter runs the exporter binary against addrs with extra
// settings and waits until it is ready and serves every group.
func startExporter(t *testing.T, addrs []string, groups int, env ...string) *bench.Exporter {
	t.Helper()
	bin := testkit.Binary(t, "exporter")
	env = append([]string{
		"KRE_BROKERS=" + strings.Join(addrs, ","),
		"KRE_GROUP_POLL_INTERVAL=500ms", "KRE_POLL_INTERVAL=1s", "KRE_LOG_LEVEL=warn",
		"PATH=" + os.Getenv("PATH"),
	}, env...)
	e, err := bench.StartExporter(bin, env, filepath.Join(t.TempDir(), "exporter.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.Stop(10 * time.Second); err != nil {
			t.Errorf("exporter: %v", err)
		}
		if t.Failed() {
			b, _ := os.ReadFile(e.Log)
			t.Logf("exporter log:\n%s", tail(b, 3000))
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := e.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 30*time.Second, 100*time.Millisecond, "every group served", func() error {
		s, err := testkit.Scrape(e.URL("/metrics"))
		if err != nil {
			return err
		}
		if n := len(s.Family("kafka_consumergroup_lag_sum")); n < groups {
			return fmt.Errorf("%d groups with lag_sum, want %d", n, groups)
		}
		return nil
	})
	return e
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// sockets counts the process's open sockets.
func sockets(t *testing.T, pid int) int {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if l, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && strings.HasPrefix(l, "socket:") {
			n++
		}
	}
	return n
}

func metricsSize(t *testing.T, e *bench.Exporter) int {
	t.Helper()
	resp, err := http.Get(e.URL("/metrics"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return int(n)
}

// 300 idle keep-alive connections are closed by the exporter after
// KRE_WEB_IDLE_TIMEOUT; until then it holds them, after it holds none.
func TestIdleKeepAliveConnectionsClosed(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the exporter binary")
	}
	addrs := webWorld(t, 50)
	const idle = time.Second
	e := startExporter(t, addrs, 50, "KRE_WEB_IDLE_TIMEOUT="+idle.String())
	base := sockets(t, e.Pid)

	const n = 300
	conns := make([]net.Conn, n)
	for i := range conns {
		c, err := net.Dial("tcp", e.Addr)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		t.Cleanup(func() { c.Close() })
		conns[i] = c
	}
	// One request each, read to the end: the connections are then idle
	// keep-alive connections.
	readers := make([]*bufio.Reader, n)
	for i, c := range conns {
		if _, err := fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		readers[i] = bufio.NewReader(c)
		resp, err := http.ReadResponse(readers[i], nil)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.Close {
			t.Fatalf("connection %d: the server closes after one request", i)
		}
	}
	idleSince := time.Now()
	if held := sockets(t, e.Pid) - base; held < n {
		t.Fatalf("the exporter holds %d more sockets with %d idle connections open", held, n)
	}

	// Each connection must see the server close it (EOF) after about the
	// idle timeout.
	var closed atomic.Int64
	var last atomic.Int64
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.SetReadDeadline(time.Now().Add(idle + 10*time.Second))
			if _, err := readers[i].ReadByte(); err == io.EOF || isReset(err) {
				closed.Add(1)
				last.Store(int64(time.Since(idleSince)))
			}
		}()
	}
	wg.Wait()
	if closed.Load() != n {
		t.Fatalf("%d of %d idle connections closed by the server within %s", closed.Load(), n, idle+10*time.Second)
	}
	took := time.Duration(last.Load())
	// The server's idle clock starts when it has written the response, a
	// moment before idleSince: a close a little before idle is on time.
	if took < idle-250*time.Millisecond || took > idle+5*time.Second {
		t.Errorf("the last idle connection closed %s after it went idle; KRE_WEB_IDLE_TIMEOUT is %s", took, idle)
	}
	testkit.Eventually(t, 5*time.Second, 50*time.Millisecond, "the exporter's sockets back to before", func() error {
		if s := sockets(t, e.Pid); s > base+2 {
			return fmt.Errorf("%d sockets, %d before", s, base)
		}
		return nil
	})
	t.Logf("%d idle connections: all closed by %s (idle timeout %s)", n, took.Round(time.Millisecond), idle)
}

func isReset(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "reset by peer") || strings.Contains(err.Error(), "broken pipe"))
}

// dialSmallWindow connects with a 4 KiB receive buffer, so a client that
// does not read stalls the sender after a few kilobytes.
func dialSmallWindow(addr string) (net.Conn, error) {
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		if err != nil {
			return err
		}
		return serr
	}}
	return d.Dial("tcp", addr)
}

// 100 clients that ask for /metrics and never read are cut off after
// KRE_WEB_WRITE_TIMEOUT: the exporter closes their connections without
// writing the whole response, and its memory does not grow by a copy of
// the exposition per client (they share the snapshot's rendered bytes).
func TestStalledReadersCutOffAfterWriteTimeout(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the exporter binary")
	}
	// 1,000 groups × 16 partitions: /metrics is about 7 MB, more than
	// the kernel's largest socket send buffer here (tcp_wmem max 4 MiB),
	// so a write to a client that does not read blocks, and only the
	// write timeout ends it. (A response that fits in the send buffer is
	// written at once; the connection then idles, and the idle timeout,
	// 30 s by default, closes it.)
	addrs := webWorld(t, 1000)
	const write = 2 * time.Second
	e := startExporter(t, addrs, 1000, "KRE_WEB_WRITE_TIMEOUT="+write.String(), "KRE_WEB_MAX_SCRAPES=200")
	size := metricsSize(t, e)
	if size < 5<<20 {
		t.Fatalf("/metrics is %d bytes; the test needs more than a socket send buffer holds (4 MiB)", size)
	}
	base := sockets(t, e.Pid)
	before, err := bench.ReadProc(e.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if err := bench.ResetPeak(e.Pid); err != nil {
		t.Logf("cannot reset the peak RSS: %v", err)
	}

	const n = 100
	conns := make([]net.Conn, n)
	start := time.Now()
	for i := range conns {
		c, err := dialSmallWindow(e.Addr)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		t.Cleanup(func() { c.Close() })
		// Plain text, no gzip: the whole exposition has to be written.
		if _, err := fmt.Fprintf(c, "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: text/plain\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		conns[i] = c
	}
	maxHeld := 0
	testkit.Eventually(t, write, 10*time.Millisecond, "the exporter holding the stalled connections", func() error {
		held := sockets(t, e.Pid) - base
		maxHeld = max(maxHeld, held)
		if held < n {
			return fmt.Errorf("the exporter holds %d more sockets with %d stalled clients", held, n)
		}
		return nil
	})
	// The server gives up on each after the write timeout: its sockets go.
	if err := testkit.Poll(write+15*time.Second, 50*time.Millisecond, func() error {
		if s := sockets(t, e.Pid); s > base+2 {
			return fmt.Errorf("%d sockets, %d before the stalled clients", s, base)
		}
		return nil
	}); err != nil {
		out, _ := exec.Command("ss", "-tnpi").CombinedOutput()
		var mine []string
		for _, l := range strings.Split(string(out), "\n") {
			if strings.Contains(l, fmt.Sprintf("pid=%d,", e.Pid)) || strings.Contains(l, e.Addr) {
				mine = append(mine, l)
			}
		}
		t.Fatalf("stalled connections closed by the exporter: %v\n%s", err, strings.Join(mine, "\n"))
	}
	took := time.Since(start)
	if took < write {
		t.Errorf("stalled connections closed after %s, before the write timeout %s", took, write)
	}
	during, err := bench.ReadProc(e.Pid)
	if err != nil {
		t.Fatal(err)
	}
	// None of them got the whole response.
	for i, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		got, _ := io.Copy(io.Discard, c)
		if got >= int64(size) {
			t.Errorf("stalled client %d received %d bytes, the whole exposition (%d)", i, got, size)
		}
	}
	growth := during.HWM - before.RSS
	if bound := int64(size)*10 + 64<<20; growth > bound {
		t.Errorf("peak RSS grew by %d MiB with %d stalled clients of a %d MiB exposition (bound %d MiB)", growth>>20, n, size>>20, bound>>20)
	}
	if !responds(e) {
		t.Error("the exporter does not serve /metrics after the stalled clients")
	}
	t.Logf("%d stalled readers of a %.1f MiB exposition: cut off %s after they connected (write timeout %s); RSS %d MiB before, peak %d MiB",
		n, float64(size)/(1<<20), took.Round(time.Millisecond), write, before.RSS>>20, during.HWM>>20)
}

func responds(e *bench.Exporter) bool {
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(e.URL("/metrics"))
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return err == nil && resp.StatusCode == http.StatusOK
}

// SIGTERM under scrape load: 20 clients scraping /metrics back to back,
// the exporter exits within 5 s, with status 0.
func TestShutdownUnderScrapeLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the exporter binary")
	}
	addrs := webWorld(t, 300)
	e := startExporter(t, addrs, 300, "KRE_WEB_MAX_SCRAPES=50")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var scrapes atomic.Int64
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{Timeout: 10 * time.Second}
			for ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.URL("/metrics"), nil)
				resp, err := c.Do(req)
				if err != nil {
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				scrapes.Add(1)
			}
			c.CloseIdleConnections()
		}()
	}
	testkit.Eventually(t, 30*time.Second, 20*time.Millisecond, "scrape load running", func() error {
		if n := scrapes.Load(); n < 100 {
			return fmt.Errorf("%d scrapes so far", n)
		}
		return nil
	})
	start := time.Now()
	if err := e.Stop(5 * time.Second); err != nil {
		t.Fatalf("under scrape load: %v", err)
	}
	took := time.Since(start)
	if _, err := e.Exited(); err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}
	cancel()
	wg.Wait()
	t.Logf("SIGTERM with 20 scrapers (%d scrapes done): exited in %s", scrapes.Load(), took.Round(time.Millisecond))
}

// SIGTERM while clients that never read hold /metrics responses (the
// write timeout at its default, 60 s): the exporter must exit within 5 s,
// with status 0 (before the fix: 10.0 s and status 1, Shutdown waiting
// for responses that cannot finish).
func TestShutdownWithStalledReaders(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the exporter binary")
	}
	addrs := webWorld(t, 1000)
	e := startExporter(t, addrs, 1000, "KRE_WEB_MAX_SCRAPES=50")
	base := sockets(t, e.Pid)
	for i := range 20 {
		c, err := dialSmallWindow(e.Addr)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		t.Cleanup(func() { c.Close() })
		if _, err := fmt.Fprintf(c, "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: text/plain\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
	}
	testkit.Eventually(t, 10*time.Second, 10*time.Millisecond, "the stalled clients served", func() error {
		if held := sockets(t, e.Pid) - base; held < 20 {
			return fmt.Errorf("%d more sockets", held)
		}
		return nil
	})
	start := time.Now()
	err := e.Stop(20 * time.Second)
	took := time.Since(start)
	_, exit := e.Exited()
	if err != nil || took > 5*time.Second || exit != nil {
		t.Errorf("SIGTERM with 20 stalled readers: exited after %s, %v; want within 5 s, status 0", took.Round(time.Millisecond), exit)
	}
	t.Logf("SIGTERM with 20 stalled readers: exited in %s, %v", took.Round(time.Millisecond), exit)
}
