// Package kafkatest gives tests an exporter wired to a real Kafka wire
// protocol: the configuration, poller and store of the exporter against an
// in-process kfake cluster. The cluster and client helpers are
// kfaketest's, under their names here too.
package kafkatest

import "github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/kfaketest"

// The helpers of kfaketest, for the tests that use an exporter too.
var (
	NewCluster    = kfaketest.NewCluster
	Produce       = kfaketest.Produce
	CreateTopic   = kfaketest.CreateTopic
	Admin         = kfaketest.Admin
	CommitOffsets = kfaketest.CommitOffsets
	SaramaConfig  = kfaketest.SaramaConfig
	ConsumeAll    = kfaketest.ConsumeAll
)
