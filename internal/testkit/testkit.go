// Package testkit holds the helpers every test package shares: polling a
// condition (Eventually), a buffer goroutines may write while a test reads
// it (SyncBuffer), and reading metrics (Series) from a collector, a
// registry or a scraped exposition, parsed by expfmt.
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
// passes; then the test fails with what and cond's last error.
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
