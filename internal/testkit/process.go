package testkit

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// Process is a started program. Its standard output and error are kept
// together in Out, for failure messages.
type Process struct {
	Name string
	Out  *SyncBuffer

	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Start runs bin with args in dir (the current directory when ""), with env
// (KEY=VALUE) added to this process's environment. On Linux the kernel
// kills the program if the test binary dies without running its cleanups
// (a panic, go test -timeout), so nothing outlives a crashed run. The
// caller stops it: see StartT for a process the test's cleanup stops.
func Start(name, dir string, env []string, bin string, args ...string) (*Process, error) {
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	dieWithParent(cmd)
	out := &SyncBuffer{}
	cmd.Stdout = out
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Process{Name: name, Out: out, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// StartT is Start for one test: a failure to start fails it, and its
// cleanup stops the process (Stop with 10 s of grace, logging a kill) and,
// when the test failed, logs the end of its output.
func StartT(t testing.TB, name, dir string, env []string, bin string, args ...string) *Process {
	t.Helper()
	p, err := Start(name, dir, env, bin, args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Stop(10 * time.Second); err != nil {
			t.Logf("%s: %v", name, err)
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", name, p.Out.Tail(4000))
		}
	})
	return p
}

// Exited reports whether the process has ended; err then says how, with
// the end of its output.
func (p *Process) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, fmt.Errorf("%s exited: %v\n%s", p.Name, p.err, p.Out.Tail(3000))
	default:
		return false, nil
	}
}

// Stop sends SIGTERM and waits up to grace for the process to end, then
// kills it. It returns an error only if it had to kill; how the process
// ended is ExitErr. Stopping an ended process does nothing.
func (p *Process) Stop(grace time.Duration) error {
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

// ExitErr is how the ended process exited (nil for status 0); it waits for
// the end.
func (p *Process) ExitErr() error {
	<-p.done
	return p.err
}

// Alive wraps a condition for Eventually: while the process runs it is
// cond; once the process has ended it fails with ErrStop, so Eventually
// gives up at once instead of waiting on a program that is gone.
func (p *Process) Alive(cond func() error) func() error {
	return func() error {
		if gone, err := p.Exited(); gone {
			return fmt.Errorf("%w: %v", ErrStop, err)
		}
		return cond()
	}
}

// WaitHTTP polls url every 200 ms until it answers 200 (a readiness
// endpoint), failing the test after timeout or as soon as p exits.
func WaitHTTP(t testing.TB, p *Process, url string, timeout time.Duration) {
	t.Helper()
	Eventually(t, timeout, 200*time.Millisecond, p.Name+" answering "+url, p.Alive(func() error {
		_, err := HTTPGet(url)
		return err
	}))
}
