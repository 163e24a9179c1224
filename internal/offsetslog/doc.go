// Package offsetslog reads the group coordinators' own log, the internal
// topic __consumer_offsets, and keeps what it says about each group: a
// classic group's exact generation, protocol, leader and members (with
// their session and rebalance timeouts) from its latest GroupMetadata
// record, and its commits from the OffsetCommit records. Source offers the
// generations to the rebalance tracker as a rebalance.GenerationSource.
//
// # Rules
//
//   - Read-only. It sends Metadata, ListOffsets and Fetch through its own
//     sarama client (github.com/IBM/sarama, the exporter's Kafka client,
//     configured by kafka.SaramaConfig: version, timeouts, TLS, SASL), with
//     no group: it never joins, commits or produces. A separate client
//     keeps its long-polling fetches apart from the poller's requests.
//   - Every partition of the topic is read, from a start position
//     (Options.Start): the log end, the log start, or a look-back resolved
//     with ListOffsets by timestamp. Each leader gets one sessionless Fetch
//     per round for all its partitions, read-uncommitted; while any
//     partition is behind, the round does not long-poll.
//   - Bounded memory. One fetch in flight per broker, each at most
//     Options.FetchMaxBytes, so a look-back over a large topic holds no
//     more than that; per group only the latest GroupMetadata (not a
//     history), a commit count and the last commit time; per open
//     transaction its pending commit counts per group. A GroupMetadata
//     tombstone removes the group.
//   - Decoding is github.com/twmb/franz-go/pkg/kmsg's, not hand-written:
//     kmsg carries exactly these schemas (OffsetCommitKey v0–1,
//     OffsetCommitValue v0–4, GroupMetadataKey v2, GroupMetadataValue
//     v0–4, ControlRecordKey), kept in step with Kafka's schema
//     definitions, and is already a dependency (the real-broker oracle and
//     the test harness use it); sarama has none of these schemas. Only the
//     int16 that starts each key and value is read here, to pick the
//     schema.
//     Strings are copied out of the fetched bytes, so no response buffer
//     stays referenced.
//   - Never fatal. Key versions 3 and up (KIP-848 consumer groups, share
//     and streams groups, whatever comes next) are counted and skipped;
//     transaction markers are counted and applied; a record that cannot be
//     decoded (including a value version newer than kmsg knows, which is
//     not guessed at, and a decoder panic, which is recovered) is counted
//     and skipped. An unreadable GroupMetadata value clears the group's
//     metadata: a superseded generation is never offered.
//   - Transactions as the coordinator applies them: offset commits in a
//     transactional batch count when their producer's commit marker is
//     read, and are dropped at its abort marker.
//   - Immutable views. Only Run's goroutine touches the state; it
//     publishes a View (copy-on-write, an atomic pointer): a change waits at
//     most Options.PublishInterval (and the fetch round it came in), a
//     partition becoming or ceasing to be live is published at once, and
//     every unchanged group is the previous view's own value.
//   - Caught up means per partition: its latest fetch succeeded and its
//     position reached the high watermark that fetch returned. A group's
//     generation is offered only while its partition is.
//   - Failures are never fatal and never block: New does no I/O, Run
//     retries everything (connect, metadata, ListOffsets, Fetch) with
//     exponential backoff, per partition where the failure is a
//     partition's. Each reason of failure (denied, unknown_topic,
//     no_leader, ...) is logged once per episode of unreadability, and the
//     recovery once; read_errors_total and readable say the same in
//     metrics. When the topic becomes readable again, reading resumes
//     where it stopped, without a restart. A position that is out of range
//     is moved (to the log start if it was deleted, to the log end if the
//     log was truncated) and counted as offset_reset.
//   - Observable: Metrics (records by type, skipped records, decode errors,
//     read errors by reason, requests by API, records behind per
//     partition, partitions behind, caught up, readable, groups), owned
//     here and registered by the caller; a progress line every
//     Options.ProgressInterval while catching up, and one when caught up.
//   - No defaults: Options are taken as given; the configuration package
//     owns the defaults.
//
// # Use
//
//	sc, _ := kafka.SaramaConfig(cfg)          // the exporter's client configuration
//	r, err := offsetslog.New(offsetslog.Options{Brokers: cfg.Brokers, Sarama: sc, Topic: offsetslog.DefaultTopic, ...})
//	registry.MustRegister(r.Metrics())       // beside the poller's self-metrics
//	go r.Run(ctx)                            // never blocks anything else
//	rebalance.NewTracker(rebalance.Options{Sources: []rebalance.GenerationSource{
//		rebalance.KIP848Epoch{}, r.Source(), rebalance.KIP792Metadata{}}})
//	g, ok := r.View().Group(name)            // Commits, LastCommit, Metadata.Members' timeouts
//
// # What the counts mean
//
// Group.Commits counts OffsetCommit records read since the start
// position: one per partition per commit request. With a start other
// than earliest it starts from the records after that point, so it is a
// counter since the reader started, like every counter of the exporter.
// Group.LastCommit is the latest commit time among them (the
// coordinator's clock).
//
// A classic coordinator writes a GroupMetadata record when a generation
// completes its sync (and when the group goes Empty, with the new
// generation at once). A generation that failed before its sync has no
// record, so the log can go from N to N+2: two rebalances, which is what
// the tracker counts from it.
//
// # Known limits
//
// sarama drops record batches that compaction emptied from a decoded
// fetch answer without saying where they end, so a partition whose only
// bytes within Options.FetchMaxBytes at its position are such batches
// cannot move past them: it is reported as failing (reason other) and
// backed off, not spun on, and its groups get no generation from here.
// That needs more than FetchMaxBytes of consecutive emptied batches, one
// per transactional producer at most. Message sets of magic 0 and 1 (logs
// from before Kafka 0.11) are read, but tested only from constructed
// answers: no test broker writes them.
package offsetslog
