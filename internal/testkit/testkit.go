// Package testkit holds the helpers every test package shares, so that
// each exists once:
//
//   - polling a condition: Eventually, Poll, ErrStop;
//   - metrics as Series, from collectors (Collect, Text), a registry
//     (Gather), a text exposition (Parse) or a live endpoint (Scrape), all
//     read by expfmt and client_model, never by a hand-written parser;
//   - a buffer goroutines may write while a test reads it (SyncBuffer);
//   - HTTP: Get, HTTPGet, and free loopback ports (FreePorts, FreeAddr);
//   - programs: a command of this module built once per test binary
//     (Build, Binary, RemoveBinaries, ModuleRoot) and started processes
//     with their output kept (Start, StartT, Process.Stop, Process.Alive,
//     WaitHTTP).
//
// Tests poll conditions; they never sleep to synchronise.
package testkit

import (
	"errors"
	"testing"
	"time"
)

// ErrStop, wrapped in a condition's error, fails Eventually at once: the
// condition can no longer become true (a process it waits on has exited).
var ErrStop = errors.New("condition can no longer be met")

// Eventually calls cond every interval until it returns nil or timeout
// passes; then the test fails with what and cond's last error. An interval
// of 0 suits a condition that waits by itself (for a ticker, a poll).
func Eventually(t testing.TB, timeout, interval time.Duration, what string, cond func() error) {
	t.Helper()
	if err := Poll(timeout, interval, cond); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// Poll is Eventually that returns the error instead of failing a test.
func Poll(timeout, interval time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if errors.Is(err, ErrStop) {
			return err
		}
		if time.Now().After(deadline) {
			return &timeoutError{timeout, err}
		}
		time.Sleep(interval)
	}
}

type timeoutError struct {
	timeout time.Duration
	last    error
}

func (e *timeoutError) Error() string {
	return "not reached within " + e.timeout.String() + ": " + e.last.Error()
}

func (e *timeoutError) Unwrap() error { return e.last }
