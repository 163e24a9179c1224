// Package demo runs a small, self-contained Kafka scenario for the exporter:
// an in-process kfake cluster (StartCluster) and a workload (RunWorkload)
// that produces continuously and keeps a fixed set of consumer groups in
// recognisable shapes.
//
// The workload talks plain Kafka protocol, so the same code drives the
// embedded cluster behind `exporter -demo`, dashboards and alert tests, and
// a real Kafka started with docker compose (cmd/loadgen).
//
// Groups and what they show:
//
//   - demo-fast: sarama, cooperative-sticky, keeps up and commits; members
//     carry a KIP-792 generation in their subscription metadata.
//   - demo-slow: sarama, consumes slower than production so lag grows, and
//     periodically catches up (see WorkloadOptions.SlowPhase/CatchUpPhase).
//   - demo-idle: consumed a little once, committed, left: Empty with lag.
//   - demo-churn-range: sarama with the range balancer and an old protocol
//     version, so its members send no generation. Rebalances every
//     ChurnInterval.
//   - demo-churn-coop: franz-go classic cooperative-sticky (members send a
//     generation). Rebalances every ChurnInterval.
//   - demo-churn-848: franz-go KIP-848 group (server-side assignor).
//     Rebalances every ChurnInterval.
//
// Churn alternates between adding one extra member and removing it. Every
// CrashEvery-th removal the member dies without leaving: its connections are
// cut before the client closes, so the broker only notices at the session
// timeout.
//
// Workload.Storm switches the churn groups to StormInterval (default 3s)
// for a while, for alert tests that need a rebalance storm. Storms only do
// clean leaves.
//
// Workload.GroupGenerations is ground truth from the clients themselves: the
// highest generation (KIP-848: member epoch) any member was handed, per
// group. Compare the exporter's view against it.
//
// KIP-848 needs ConsumerGroupHeartbeat v1 (Kafka 4.0+). When no broker
// offers it, RunWorkload logs a warning and does not start demo-churn-848;
// everything else runs unchanged. Workload.Groups lists what was started.
// (franz-go on its own would quietly fall back to a classic group.)
//
// One kfake difference from Kafka matters here: kfake keeps a classic
// member's session timer running while the member waits in JoinGroup or
// SyncGroup, where Kafka keeps such members alive. A rebalance that waits
// longer than the session timeout (typically for a member that died
// without leaving) can therefore also drop the members waiting on it, whose
// pending request then never gets an answer. The workload bounds that
// stall with sarama's read timeout (RebalanceTimeout+5s). In normal
// operation it does not arise, since a crash comes a full ChurnInterval
// after the previous membership change, long after its rebalance ended.
package demo
