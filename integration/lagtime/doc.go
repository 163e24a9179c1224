// Package lagtimeit holds integration tests, against an in-process kfake
// cluster with real consumers, for lag in seconds
// (kafka_consumergroup_lag_seconds) and the consumer health status
// (kafka_consumergroup_status). It has no code of its own.
package lagtimeit
