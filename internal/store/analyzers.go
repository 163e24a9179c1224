package store

import (
	"github.com/rs/zerolog"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/config"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/lagtime"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/rebalance"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/status"
)

// NewAnalyzers builds every analyzer from the configuration, the one
// place their settings and defaults come from.
func NewAnalyzers(cfg *config.Config, log zerolog.Logger) Analyzers {
	return Analyzers{
		Rebalance: rebalance.NewTracker(rebalance.Options{HistorySize: cfg.RebalanceHistory, Logger: log.With().Str("component", "rebalance").Logger()}),
		Lag: lagtime.New(lagtime.Options{MaxPoints: cfg.LagHistoryPoints,
			Logger: log.With().Str("component", "lagtime").Logger()}),
		Status: status.New(status.Config{Window: cfg.StatusWindow, StopAfter: cfg.StatusStopAfter, StopFactor: cfg.StatusStopFactor,
			ErrLag: cfg.StatusErrLag, Logger: log.With().Str("component", "status").Logger()}),
	}
}
