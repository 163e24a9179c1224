package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Exporter is the exporter binary running as a child process, alone in its
// process so its CPU and memory are its own.
type Exporter struct {
	Addr    string // host:port of its HTTP listener
	Started time.Time
	Pid     int
	Log     string // file holding its stdout and stderr

	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// StartExporter runs bin with exactly env (plus a loopback listen
// address), logging to logPath.
func StartExporter(bin string, env []string, logPath string) (*Exporter, error) {
	addr, err := freeLoopbackAddr()
	if err != nil {
		return nil, err
	}
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin)
	cmd.Env = append(append([]string(nil), env...), "KRE_LISTEN_ADDRESS="+addr)
	cmd.Stdout, cmd.Stderr = logf, logf
	dieWithParent(cmd)
	e := &Exporter{Addr: addr, Log: logPath, cmd: cmd, done: make(chan struct{})}
	e.Started = time.Now()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start exporter: %w", err)
	}
	e.Pid = cmd.Process.Pid
	go func() {
		e.err = cmd.Wait()
		logf.Close()
		close(e.done)
	}()
	return e, nil
}

// URL is the address of path on the exporter.
func (e *Exporter) URL(path string) string { return "http://" + e.Addr + path }

// Exited reports whether the process ended, and how.
func (e *Exporter) Exited() (bool, error) {
	select {
	case <-e.done:
		return true, e.err
	default:
		return false, nil
	}
}

// Stop sends SIGTERM, waits up to grace, then kills.
func (e *Exporter) Stop(grace time.Duration) error {
	if done, _ := e.Exited(); done {
		return nil
	}
	_ = e.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-e.done:
		return nil
	case <-time.After(grace):
		_ = e.cmd.Process.Kill()
		<-e.done
		return errors.New("exporter did not stop on SIGTERM; killed")
	}
}

// WaitReady polls /readyz until it answers 200.
func (e *Exporter) WaitReady(ctx context.Context) error {
	c := &http.Client{Timeout: 2 * time.Second}
	for {
		if done, err := e.Exited(); done {
			return fmt.Errorf("exporter exited: %v (log: %s)", err, e.Log)
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.URL("/readyz"), nil)
		if resp, err := c.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func freeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// ProcStat is what /proc says about a process at one moment.
type ProcStat struct {
	At       time.Time
	CPU      float64 // user + system CPU seconds since start
	RSS, HWM int64   // bytes: resident now, and the peak since start or the last ResetPeak
}

// ReadProc reads /proc/<pid>/stat and /proc/<pid>/status.
func ReadProc(pid int) (ProcStat, error) {
	s := ProcStat{At: time.Now()}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	// The command name is in parentheses and may hold spaces; fields
	// after it start with the state (field 3), utime is field 14.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return s, errors.New("unexpected /proc stat format")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return s, errors.New("unexpected /proc stat format")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return s, err
	}
	s.CPU = float64(ut+st) / clockTicks()
	status, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	defer status.Close()
	sc := bufio.NewScanner(status)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(val)
		if len(fields) == 0 {
			continue
		}
		kb, _ := strconv.ParseInt(fields[0], 10, 64)
		switch name {
		case "VmRSS":
			s.RSS = kb << 10
		case "VmHWM":
			s.HWM = kb << 10
		}
	}
	return s, sc.Err()
}

// ResetPeak resets the process's peak RSS (VmHWM) to its current RSS
// (Linux: writing 5 to /proc/<pid>/clear_refs).
func ResetPeak(pid int) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

// clockTicks is the kernel's USER_HZ, the unit of /proc stat times, read
// from the auxiliary vector (AT_CLKTCK); 100 when it cannot be read.
var clockTicks = sync.OnceValue(func() float64 {
	b, err := os.ReadFile("/proc/self/auxv")
	if err != nil {
		return 100
	}
	const atClkTck = 17
	for i := 0; i+16 <= len(b); i += 16 {
		k, v := binary.NativeEndian.Uint64(b[i:]), binary.NativeEndian.Uint64(b[i+8:])
		if k == atClkTck && v > 0 {
			return float64(v)
		}
	}
	return 100
})
