package demo

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// runProducer keeps the long-run rate at ProduceRate by producing whatever
// is due since start on each tick, so ticker jitter does not drift it.
func (w *Workload) runProducer(ctx context.Context, cl *kgo.Client) {
	defer cl.Close()

	var schedule []string
	for _, t := range Topics() {
		for range t.Weight {
			schedule = append(schedule, t.Name)
		}
	}

	var lastErrLog atomic.Int64
	onDone := func(_ *kgo.Record, err error) {
		if err == nil {
			w.produced.Add(1)
			return
		}
		if errors.Is(err, context.Canceled) || errors.Is(err, kgo.ErrClientClosed) {
			return
		}
		now := time.Now().UnixNano()
		last := lastErrLog.Load()
		if now-last > int64(10*time.Second) && lastErrLog.CompareAndSwap(last, now) {
			w.log.Warn().Err(err).Msg("producing failed (further errors suppressed for 10s)")
		}
	}

	rate := int64(w.opts.ProduceRate)
	start := time.Now()
	var sent int64
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		due := int64(time.Since(start).Seconds() * float64(rate))
		// After a stall (broker down, buffer full) skip ahead rather than
		// flood the cluster with the backlog.
		if due-sent > rate {
			sent = due - rate
		}
		for ; sent < due; sent++ {
			rec := &kgo.Record{
				Topic: schedule[sent%int64(len(schedule))],
				Key:   fmt.Appendf(nil, "customer-%04d", sent%997),
				Value: fmt.Appendf(nil, `{"seq":%d,"at":%q}`, sent, time.Now().UTC().Format(time.RFC3339Nano)),
			}
			cl.Produce(ctx, rec, onDone)
		}
	}
}
