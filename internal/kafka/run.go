package kafka

import (
	"context"
	"time"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/cluster"
)

// Sink receives the outcome of every poll. It is called from the poll
// goroutines only, never from a scrape.
type Sink interface {
	GroupsPolled(obs *cluster.GroupsObservation, took time.Duration, err error)
	OffsetsPolled(obs *cluster.OffsetsObservation, took time.Duration, err error)
	// LatestGroups is the newest successful groups observation, which the
	// offsets poll uses to know each group's coordinator.
	LatestGroups() *cluster.GroupsObservation
}

// Run polls until ctx is cancelled: group descriptions every
// GroupPollInterval (cheap, and what rebalance detection needs) and offsets
// every PollInterval, in two goroutines so a slow offsets poll on a large
// cluster does not delay rebalance detection.
func (p *Poller) Run(ctx context.Context, sink Sink) {
	p.pollGroups(ctx, sink)
	done := make(chan struct{})
	go func() {
		defer close(done)
		every(ctx, p.cfg.GroupPollInterval, func() { p.pollGroups(ctx, sink) })
	}()
	p.pollOffsets(ctx, sink)
	every(ctx, p.cfg.PollInterval, func() { p.pollOffsets(ctx, sink) })
	<-done
}

func (p *Poller) pollGroups(ctx context.Context, sink Sink) {
	if ctx.Err() != nil {
		return
	}
	start := time.Now()
	pctx, cancel := context.WithTimeout(ctx, p.cfg.GroupPollInterval+p.cfg.RequestTimeout)
	defer cancel()
	obs, err := p.PollGroups(pctx)
	if ctx.Err() != nil {
		return
	}
	sink.GroupsPolled(obs, time.Since(start), err)
}

func (p *Poller) pollOffsets(ctx context.Context, sink Sink) {
	if ctx.Err() != nil {
		return
	}
	start := time.Now()
	pctx, cancel := context.WithTimeout(ctx, p.cfg.PollInterval+p.cfg.RequestTimeout)
	defer cancel()
	obs, err := p.PollOffsets(pctx, sink.LatestGroups())
	if ctx.Err() != nil {
		return
	}
	sink.OffsetsPolled(obs, time.Since(start), err)
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
