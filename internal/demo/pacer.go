package demo

import (
	"context"
	"sync"
	"time"
)

// pacer spaces out work to at most one item per interval, shared by all
// goroutines that call wait. Unlike a ticker it does not accumulate ticks
// while nobody waits, so a consumer that was idle does not burst.
type pacer struct {
	interval time.Duration
	// paused reports whether pacing is currently off (catch-up phase).
	paused func() bool

	mu   sync.Mutex
	next time.Time
}

// wait blocks until the caller may process one item. It returns false when
// ctx ends first.
func (p *pacer) wait(ctx context.Context) bool {
	if p.paused != nil && p.paused() {
		return ctx.Err() == nil
	}
	p.mu.Lock()
	now := time.Now()
	if p.next.Before(now) {
		p.next = now
	}
	at := p.next
	p.next = p.next.Add(p.interval)
	p.mu.Unlock()

	d := time.Until(at)
	if d <= 0 {
		return ctx.Err() == nil
	}
	return sleepCtx(ctx, d)
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
