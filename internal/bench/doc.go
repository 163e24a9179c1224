// Package bench is the scale benchmark behind cmd/bench and
// docs/performance.md: it builds kfake worlds in this process, runs the
// real exporter binary against them as a child process, and measures it
// from the outside.
//
// A world (WorldSpec) is a three-broker kfake cluster with the demo's
// settings holding N groups that committed offsets through kadm (so they
// have no members, as on clusters full of idle or finished consumers), a
// background producer spreading records over the world's partitions, and
// the demo workload's live groups (internal/demo: sarama and franz-go
// members, classic with and without KIP-792 generations, and KIP-848), so
// DescribeGroups and ConsumerGroupDescribe see real members.
//
// What is measured, and where:
//   - Kafka traffic at the brokers: a listener wrapper (kfake.ListenFn)
//     follows the protocol framing in both directions and counts requests,
//     request bytes and response bytes per client ID and request key; a
//     kfake control hook (Cluster.Control) counts every request key too, as
//     a cross-check. The exporter's share is told apart by its client ID.
//   - Poll wall time: the exporter's own
//     kafka_rebalance_exporter_poll_duration_seconds over the idle window.
//   - CPU: /proc/<pid>/stat utime+stime of the exporter process, over an
//     idle window (no scrapes) that starts just after an offsets poll and
//     lasts whole offsets intervals, so it holds whole poll cycles; a
//     groups-only exporter (KRE_POLL_INTERVAL=24h) splits it between the
//     loops.
//   - Memory: VmHWM of /proc/<pid>/status, reset per phase through
//     /proc/<pid>/clear_refs; the Go heap from go_memstats_heap_inuse_bytes.
//   - Series and bytes: one text-format scrape parsed with expfmt.
//   - Scrape latency: closed-loop scrapers sending what Prometheus 2.42
//     sends (OpenMetrics Accept header, gzip), bounded in time and count; a
//     503 (KRE_WEB_MAX_SCRAPES) is counted apart and backed off for 100ms.
//     The live self-metrics at the end of each body say which snapshot was
//     served, so the first scrape of each snapshot (the one that waits for
//     its rendering) is told from the others. A paced scraper (one scrape
//     per groups poll interval) measures what a Prometheus sees.
//   - The machine: other processes' CPU (/proc/stat minus this process and
//     the exporter) is waited out before each world, recorded per phase,
//     and a world measured again when it was busy.
//
// Everything listens on loopback and every wait is bounded.
package bench
