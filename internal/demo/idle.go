package demo

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// runIdle consumes IdleRecords records from the idle group's topic, commits
// them and leaves, so the group is Empty with committed offsets and a lag
// that keeps growing as production continues.
func (w *Workload) runIdle(ctx context.Context) {
	log := w.log.With().Str("group", GroupIdle).Logger()
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(w.brokers...),
		kgo.ClientID(w.opts.ClientIDPrefix+"-idle"),
		kgo.WithLogger(kgoLogger{log}),
		kgo.ConsumerGroup(GroupIdle),
		kgo.ConsumeTopics(groupTopics[GroupIdle]...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.SessionTimeout(w.opts.SessionTimeout),
		kgo.HeartbeatInterval(w.opts.HeartbeatInterval),
		kgo.RebalanceTimeout(w.opts.RebalanceTimeout),
	)
	if err != nil {
		log.Error().Err(err).Msg("creating idle group member")
		return
	}
	defer cl.Close()

	consumed := 0
	for consumed < w.opts.IdleRecords {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return
		}
		consumed += fetches.NumRecords()
		_, gen := cl.GroupMetadata()
		w.gens.observe(GroupIdle, gen)
		if fetches.NumRecords() == 0 {
			fetches.EachError(func(topic string, partition int32, err error) {
				log.Debug().Err(err).Str("topic", topic).Int32("partition", partition).Msg("fetch error")
			})
			sleepCtx(ctx, 200*time.Millisecond)
		}
	}
	commitCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := cl.CommitUncommittedOffsets(commitCtx); err != nil {
		log.Warn().Err(err).Msg("idle group commit failed")
		return
	}
	log.Info().Int("records", consumed).Msg("idle group committed and is leaving")
}
