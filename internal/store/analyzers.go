package store

import (
	"github.com/rs/zerolog"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/config"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/lagtime"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/rebalance"
	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/status"
)

// NewAnalyzers builds every analyzer from the configuration, the one
// place their settings and defaults come from. exact are further sources
// of classic generations that are exact, the __consumer_offsets reader's
// when it is on: the tracker asks them after the KIP-848 epoch and before
// the KIP-792 member metadata, which is only a hint.
func NewAnalyzers(cfg *config.Config, log zerolog.Logger, exact ...rebalance.GenerationSource) Analyzers {
	sources := append(append([]rebalance.GenerationSource{rebalance.KIP848Epoch{}}, exact...), rebalance.KIP792Metadata{})
	return Analyzers{
		Rebalance: rebalance.NewTracker(rebalance.Options{HistorySize: cfg.RebalanceHistory, Sources: sources,
			Logger: log.With().Str("component", "rebalance").Logger()}),
		Lag: lagtime.New(lagtime.Options{MaxPoints: cfg.LagHistoryPoints,
			Logger: log.With().Str("component", "lagtime").Logger()}),
		Status: status.New(status.Config{Window: cfg.StatusWindow, StopAfter: cfg.StatusStopAfter, StopFactor: cfg.StatusStopFactor,
			ErrLag: cfg.StatusErrLag, Logger: log.With().Str("component", "status").Logger()}),
	}
}
