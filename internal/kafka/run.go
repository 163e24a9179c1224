package kafka

import (
	"context"
	"time"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/cluster"
)

// Sink receives the outcome of every poll: the observation (nil when the
// poll produced none) and the poll's error (nil when it fully succeeded;
// with an observation, the poll was partial). It is called from the poll
// goroutines only, never from a scrape.
type Sink interface {
	GroupsPolled(obs *cluster.GroupsObservation, err error)
	OffsetsPolled(obs *cluster.OffsetsObservation, err error)
}

// Run polls until ctx is cancelled: group descriptions every
// GroupPollInterval (cheap, and what rebalance detection needs) and offsets
// every PollInterval, in two goroutines so a slow offsets poll on a large
// cluster does not delay rebalance detection.
func (p *Poller) Run(ctx context.Context, sink Sink) {
	_ = p.GroupsPoll(ctx, sink)
	done := make(chan struct{})
	go func() {
		defer close(done)
		every(ctx, p.cfg.GroupPollInterval, func() { _ = p.GroupsPoll(ctx, sink) })
	}()
	_ = p.OffsetsPoll(ctx, sink)
	every(ctx, p.cfg.PollInterval, func() { _ = p.OffsetsPoll(ctx, sink) })
	<-done
}

// GroupsPoll runs one groups poll, records it in the metrics and hands
// the result to sink; it returns the poll's error. A poll cut short
// because ctx ended is neither recorded nor handed on.
func (p *Poller) GroupsPoll(ctx context.Context, sink Sink) error {
	obs, err := poll(ctx, p, cluster.LoopGroups, p.cfg.GroupPollInterval, p.PollGroups)
	if ctx.Err() == nil {
		sink.GroupsPolled(obs, err)
	}
	return err
}

// OffsetsPoll is GroupsPoll for the offsets poll.
func (p *Poller) OffsetsPoll(ctx context.Context, sink Sink) error {
	obs, err := poll(ctx, p, cluster.LoopOffsets, p.cfg.PollInterval, p.PollOffsets)
	if ctx.Err() == nil {
		sink.OffsetsPolled(obs, err)
	}
	return err
}

// poll runs one poll of loop with a deadline of its interval: a broker
// that has not answered by then is served from its last answer (see
// rounds), so a hung broker cannot hold back the others' data for longer.
func poll[T any](ctx context.Context, p *Poller, loop string, interval time.Duration, fn func(context.Context) (T, error)) (T, error) {
	start := time.Now()
	pctx, cancel := context.WithTimeout(ctx, interval)
	defer cancel()
	obs, err := fn(pctx)
	if ctx.Err() == nil {
		p.metrics.ObservePoll(loop, time.Since(start), err)
	}
	return obs, err
}

func every(ctx context.Context, d time.Duration, fn func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn()
		}
	}
}
