package realkafka

import (
	"context"
	"errors"
	"testing"
	"time"
)

// errStop, wrapped in a condition's error, fails eventually at once.
var errStop = errors.New("cannot become true")

// eventually polls cond until it returns nil; after timeout the test fails
// with cond's last error.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	if err := poll(timeout, cond); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// poll is eventually without a test: it returns cond's last error.
func poll(timeout time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil || errors.Is(err, errStop) {
			return err
		}
		if time.Now().After(deadline) {
			return errors.New("not within " + timeout.String() + ": " + err.Error())
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
