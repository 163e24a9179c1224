package realkafka

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Proc is a started program whose output lines are handed to parsers. Its
// standard output can be paused: a paused reader stops draining the pipe,
// so a program that writes from its poll loop blocks there while its other
// threads (heartbeats) go on: a member that stops polling.
type Proc struct {
	Name string
	cmd  *exec.Cmd

	mu      sync.Mutex
	cond    *sync.Cond
	paused  bool
	tail    []string // last lines of both streams, for failure messages
	readers sync.WaitGroup
	done    chan struct{}
	err     error
}

// recordLinePrefix starts kcat's per-record lines (its -f format).
const recordLinePrefix = "rec "

// noise tells record lines (VerifiableConsumer --verbose, kcat's records
// and end-of-partition notes), kept out of the tail.
func noise(line string) bool {
	return strings.Contains(line, `"name":"record_data"`) || strings.HasPrefix(line, recordLinePrefix) ||
		strings.HasPrefix(line, "% Reached end of topic")
}

// LineFunc receives one output line (without its newline).
type LineFunc func(line string)

// StartProc starts name with args; onStdout and onStderr (either may be nil)
// receive the lines of each stream. The process is in its own process group
// and gets SIGKILL if this process dies (Linux).
func StartProc(name string, env []string, onStdout, onStderr LineFunc, bin string, args ...string) (*Proc, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = procAttr()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	shrinkPipe(stdout)
	p := &Proc{Name: name, cmd: cmd, done: make(chan struct{})}
	p.cond = sync.NewCond(&p.mu)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p.readers.Add(2)
	go p.read(stdout, onStdout, true)
	go p.read(stderr, onStderr, false)
	go func() {
		p.readers.Wait()
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *Proc) read(r io.Reader, f LineFunc, pausable bool) {
	defer p.readers.Done()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	for sc.Scan() {
		line := sc.Text()
		p.mu.Lock()
		for pausable && p.paused {
			p.cond.Wait()
		}
		if !noise(line) {
			p.tail = append(p.tail, line) // records would crowd out the events
			if len(p.tail) > 60 {
				p.tail = p.tail[len(p.tail)-60:]
			}
		}
		p.mu.Unlock()
		if f != nil {
			f(line)
		}
	}
	_, _ = io.Copy(io.Discard, r)
}

// PauseOutput stops reading the program's standard output.
func (p *Proc) PauseOutput() {
	p.mu.Lock()
	p.paused = true
	p.mu.Unlock()
}

// ResumeOutput reads its standard output again.
func (p *Proc) ResumeOutput() {
	p.mu.Lock()
	p.paused = false
	p.cond.Broadcast()
	p.mu.Unlock()
}

// Tail is the last output lines.
func (p *Proc) Tail() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.tail, "\n")
}

// Pid is the process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Signal sends sig to the process.
func (p *Proc) Signal(sig syscall.Signal) error { return p.cmd.Process.Signal(sig) }

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Kill sends SIGKILL (no LeaveGroup, no commit) and waits for the exit.
func (p *Proc) Kill() {
	p.ResumeOutput()
	_ = p.cmd.Process.Signal(syscall.SIGCONT)
	_ = p.cmd.Process.Kill()
	<-p.done
}

// Stop sends SIGTERM and waits up to grace, then kills. It reports whether
// the process ended on its own within grace.
func (p *Proc) Stop(grace time.Duration) bool {
	if p.Exited() {
		return true
	}
	p.ResumeOutput()
	_ = p.cmd.Process.Signal(syscall.SIGCONT)
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return true
	case <-time.After(grace):
		p.Kill()
		return false
	}
}
