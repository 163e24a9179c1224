package demo

import (
	"context"
	"time"

	"golang.org/x/time/rate"
)

// pacer spaces out work to at most one item per interval, shared by all
// goroutines that call wait: a rate limiter with a burst of one, so a
// consumer that was idle does not burst.
type pacer struct {
	limiter *rate.Limiter
	// paused reports whether pacing is currently off (catch-up phase).
	paused func() bool
}

func newPacer(interval time.Duration, paused func() bool) *pacer {
	return &pacer{limiter: rate.NewLimiter(rate.Every(interval), 1), paused: paused}
}

// wait blocks until the caller may process one item. It returns false when
// ctx ends first.
func (p *pacer) wait(ctx context.Context) bool {
	if p.paused != nil && p.paused() {
		return ctx.Err() == nil
	}
	return p.limiter.Wait(ctx) == nil
}

// sleepCtx waits d or until ctx ends, reporting whether the full wait
// happened.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
