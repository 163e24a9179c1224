package store

import (
	"github.com/rs/zerolog"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/config"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/lagtime"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/rebalance"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/status"
)

// NewAnalyzers builds every analyzer from the configuration. timestamps
// reads record timestamps for exact lag in seconds (KRE_LAG_EXACT); it may
// be nil when that is off.
func NewAnalyzers(cfg *config.Config, log zerolog.Logger, timestamps lagtime.RecordTimestamper) Analyzers {
	lagOpts := lagtime.Options{MaxPoints: cfg.LagHistoryPoints, MaxExtrapolation: cfg.LagMaxExtrapolation,
		ExactConcurrency: cfg.LagExactConcurrency, Logger: log.With().Str("component", "lagtime").Logger()}
	if cfg.LagExact && timestamps != nil {
		lagOpts.Timestamper = lagtime.NewCachedTimestamper(timestamps, lagtime.CacheOptions{Concurrency: cfg.LagExactConcurrency, Size: cfg.LagExactCacheSize})
	}
	history := cfg.RebalanceHistory
	if history == 0 {
		history = -1 // the tracker reads 0 as "default"; 0 here means none
	}
	return Analyzers{
		Rebalance:       rebalance.NewTracker(rebalance.Options{HistorySize: history, Logger: log.With().Str("component", "rebalance").Logger()}),
		Lag:             lagtime.New(lagOpts),
		LagExact:        lagOpts.Timestamper != nil,
		LagExactTimeout: cfg.RequestTimeout,
		Health: status.New(status.Config{Window: cfg.StatusWindow, StopAfter: cfg.StatusStopAfter, StopFactor: cfg.StatusStopFactor,
			ErrLag: cfg.StatusErrLag, Logger: log.With().Str("component", "health").Logger()}),
	}
}
