package demo

import (
	"context"
	"time"
)

// baseChurnMembers stay in each churn group for the workload's life, so
// the group never goes Empty and every change is a real rebalance.
const baseChurnMembers = 2

// churner toggles one extra member in and out of a group on a timer.
type churner struct {
	w    *Workload
	spec memberSpec
	wake chan struct{} // a storm started or ended: recompute the wait

	extra    *member
	removals int
}

func (c *churner) run(ctx context.Context) {
	for range baseChurnMembers {
		c.w.startMember(c.spec)
	}
	for {
		wait := c.w.opts.ChurnInterval
		if c.w.storming() {
			wait = c.w.opts.StormInterval
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return // members stop on the same context
		case <-c.wake:
			t.Stop()
			continue
		case <-t.C:
		}
		c.step()
	}
}

func (c *churner) step() {
	log := c.w.log.With().Str("group", c.spec.group).Logger()
	if c.extra == nil {
		c.extra = c.w.startMember(c.spec)
		log.Info().Str("client_id", c.extra.clientID).Msg("churn: extra member joining")
		return
	}
	m := c.extra
	c.extra = nil
	c.removals++
	crash := c.w.opts.CrashEvery > 0 && c.removals%c.w.opts.CrashEvery == 0 && !c.w.storming()
	if crash {
		log.Info().Str("client_id", m.clientID).Msg("churn: extra member dying without leaving")
	} else {
		log.Info().Str("client_id", m.clientID).Msg("churn: extra member leaving")
	}
	// Leaving can take a while (final commit, rebalance in flight); do it
	// off the timer so the churn cadence stays regular.
	c.w.spawn(func() {
		start := time.Now()
		if crash {
			m.crash()
		} else {
			m.stop()
		}
		log.Debug().Str("client_id", m.clientID).Dur("took", time.Since(start)).Msg("churn: extra member gone")
	})
}
