package offsetslog

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// DefaultTopic is the topic Kafka's group coordinators write.
const DefaultTopic = "__consumer_offsets"

// StartMode says where reading begins on each partition.
type StartMode uint8

const (
	// StartLatest reads only what is written after the reader starts.
	StartLatest StartMode = iota + 1
	// StartEarliest reads each partition from its log start: the whole
	// compacted log, so every group's latest state.
	StartEarliest
	// StartLookBack reads from the first record written at or after
	// Start.LookBack before the reader resolved its position (ListOffsets
	// by timestamp), or from the log end when there is none.
	StartLookBack
)

// Start is the start position of every partition. Partitions that appear
// after the first metadata (added to the topic) start at their log start.
type Start struct {
	Mode     StartMode
	LookBack time.Duration // StartLookBack only; > 0
}

func (s Start) String() string {
	switch s.Mode {
	case StartLatest:
		return "latest"
	case StartEarliest:
		return "earliest"
	case StartLookBack:
		return s.LookBack.String()
	}
	return "invalid"
}

// Options configures a Reader. Every field is taken as given: the
// configuration package owns the defaults.
type Options struct {
	// Brokers are the bootstrap brokers.
	Brokers []string
	// Sarama is the exporter's client configuration (kafka.SaramaConfig:
	// version, timeouts, TLS, SASL). It is copied, never modified; the
	// reader opens its own client with it, so that its long-polling
	// fetches never queue behind or ahead of the poller's requests.
	Sarama *sarama.Config
	// Topic is the topic to read; DefaultTopic but for tests.
	Topic string
	Start Start
	// FetchMaxWait is how long a broker may hold a fetch when there is
	// nothing new (a long poll); it bounds how late a new record is read
	// once caught up, and must be shorter than Sarama.Net.ReadTimeout.
	FetchMaxWait time.Duration
	// FetchMaxBytes bounds one fetch response per broker;
	// PartitionMaxBytes one partition in it (grown up to FetchMaxBytes
	// when a single record batch is larger). With one fetch in flight per
	// broker, the reader holds at most brokers × FetchMaxBytes of fetched
	// data, however long the log.
	FetchMaxBytes     int32
	PartitionMaxBytes int32
	// RetryBackoffMin and RetryBackoffMax bound the exponential backoff
	// (with jitter) between attempts after a failure.
	RetryBackoffMin time.Duration
	RetryBackoffMax time.Duration
	// MetadataRefresh is how often the topic's partitions and leaders are
	// read again while everything works (leader errors refresh at once).
	MetadataRefresh time.Duration
	// PublishInterval is the longest a change waits before it is
	// published in a new View; a change of a partition's liveness is
	// published at once.
	PublishInterval time.Duration
	// ProgressInterval is how often a progress line is logged while the
	// reader catches up.
	ProgressInterval time.Duration
	Logger           zerolog.Logger
}

func (o *Options) validate() error {
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(len(o.Brokers) > 0, "Brokers: none")
	check(o.Sarama != nil, "Sarama: nil")
	check(o.Topic != "", "Topic: empty")
	check(o.Start.Mode >= StartLatest && o.Start.Mode <= StartLookBack, "Start: invalid mode %d", o.Start.Mode)
	check(o.Start.Mode != StartLookBack || o.Start.LookBack > 0, "Start: look-back %s is not positive", o.Start.LookBack)
	check(o.FetchMaxWait > 0, "FetchMaxWait: %s is not positive", o.FetchMaxWait)
	check(o.FetchMaxBytes > 0, "FetchMaxBytes: %d is not positive", o.FetchMaxBytes)
	check(o.PartitionMaxBytes > 0 && o.PartitionMaxBytes <= o.FetchMaxBytes,
		"PartitionMaxBytes: %d is not between 1 and FetchMaxBytes (%d)", o.PartitionMaxBytes, o.FetchMaxBytes)
	check(o.RetryBackoffMin > 0 && o.RetryBackoffMax >= o.RetryBackoffMin,
		"RetryBackoffMin, RetryBackoffMax: %s, %s: want 0 < min <= max", o.RetryBackoffMin, o.RetryBackoffMax)
	check(o.MetadataRefresh > 0, "MetadataRefresh: %s is not positive", o.MetadataRefresh)
	check(o.PublishInterval > 0, "PublishInterval: %s is not positive", o.PublishInterval)
	check(o.ProgressInterval > 0, "ProgressInterval: %s is not positive", o.ProgressInterval)
	if o.Sarama != nil {
		check(o.Sarama.Version.IsAtLeast(sarama.V0_11_0_0), "Sarama.Version: %s; reading record batches needs 0.11.0 or later", o.Sarama.Version)
		check(o.FetchMaxWait < o.Sarama.Net.ReadTimeout, "FetchMaxWait: %s is not shorter than the request timeout %s",
			o.FetchMaxWait, o.Sarama.Net.ReadTimeout)
	}
	return errors.Join(errs...)
}

// Reader reads __consumer_offsets and publishes what it says as Views.
// Create it with New, run it with Run in a goroutine of its own, and read
// View (or use Source) from anywhere.
type Reader struct {
	opts    Options
	sc      *sarama.Config
	log     zerolog.Logger
	metrics *Metrics
	view    atomic.Pointer[View]
	running atomic.Bool
	// fetchVersion is the Fetch version KRE_KAFKA_VERSION allows (sarama
	// lowers it to what each broker supports): v10 reads zstd batches, v4
	// is the first with record batches.
	fetchVersion int16

	// Everything below belongs to Run's goroutine.
	client   sarama.Client
	st       *state
	parts    map[int32]*partition
	ids      []int32 // sorted partition IDs
	metaSeen bool    // the topic's partitions were listed once
	needMeta bool
	metaAt   time.Time
	topicErr string // topic-level failure reason; "" when none
	topicTry retry
	// failing holds the reasons logged as failing in the current episode
	// of unreadability: each is logged once, and recovery once.
	failing      map[string]bool
	warnedDecode map[string]bool
	lastPublish  time.Time
	started      time.Time
	caughtUp     bool   // at the latest publication
	read         uint64 // records read since Run started
	progressAt   time.Time
	progressRead uint64

	// Counters resolved once: the per-record path does no label lookup.
	cRecords      map[string]prometheus.Counter
	cSkipped      map[string]prometheus.Counter
	cDecodeErrors map[string]prometheus.Counter
}

// partition is the reader's position in one partition.
type partition struct {
	id   int32
	next int64 // next offset to read; -1 until resolved
	hwm  int64 // high watermark at the latest successful fetch; -1 unknown
	// fromEarliest: the partition appeared after the first metadata, so
	// it is read from its log start whatever the start position.
	fromEarliest bool
	// resetFrom is the out-of-range position to move from; -1 when not
	// resetting.
	resetFrom  int64
	err        string // latest failure reason; "" when the latest attempt succeeded
	try        retry
	readAt     time.Time
	fetchBytes int32
	live       bool // Live at the latest publication
}

func (p *partition) status() PartitionStatus {
	return PartitionStatus{Partition: p.id, Next: p.next, HighWatermark: p.hwm, Error: p.err, ReadAt: p.readAt}
}

// retry is an exponential backoff.
type retry struct {
	attempts int
	at       time.Time
}

func (t *retry) fail(now time.Time, lo, hi time.Duration) {
	d := lo
	for i := 0; i < t.attempts && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	// ±20 % jitter, so that replicas and partitions do not retry in step.
	d = time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
	t.at = now.Add(d)
	t.attempts++
}

func (t *retry) ready(now time.Time) bool { return !now.Before(t.at) }

// New returns a Reader; it does no I/O. Options are checked, and the
// error names every field that is wrong.
func New(opts Options) (*Reader, error) {
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("offsets log reader: %w", err)
	}
	sc := *opts.Sarama
	// Only the one topic's metadata is wanted, and refreshed by the reader.
	sc.Metadata.Full = false
	sc.Metadata.RefreshFrequency = 0
	sc.Metadata.AllowAutoTopicCreation = false
	if err := sc.Validate(); err != nil {
		return nil, fmt.Errorf("offsets log reader: client configuration: %w", err)
	}
	opts.Brokers = slices.Clone(opts.Brokers)
	r := &Reader{
		opts: opts, sc: &sc, log: opts.Logger.With().Str("topic", opts.Topic).Logger(), metrics: newMetrics(),
		st: newState(), parts: map[int32]*partition{}, failing: map[string]bool{}, warnedDecode: map[string]bool{},
		cRecords: map[string]prometheus.Counter{}, cSkipped: map[string]prometheus.Counter{}, cDecodeErrors: map[string]prometheus.Counter{},
	}
	r.fetchVersion = 4
	if sc.Version.IsAtLeast(sarama.V2_1_0_0) {
		r.fetchVersion = 10
	}
	for _, v := range recordTypes {
		r.cRecords[v] = r.metrics.records.WithLabelValues(v)
	}
	for _, v := range skipReasons {
		r.cSkipped[v] = r.metrics.skipped.WithLabelValues(v)
	}
	for _, v := range decodeParts {
		r.cDecodeErrors[v] = r.metrics.decodeErrors.WithLabelValues(v)
	}
	v := &View{Topic: opts.Topic, Groups: map[string]*Group{}}
	r.view.Store(v)
	r.metrics.observeView(v)
	return r, nil
}

// View returns the latest published view; never nil.
func (r *Reader) View() *View { return r.view.Load() }

// Metrics returns the reader's instruments, for the caller to register.
func (r *Reader) Metrics() *Metrics { return r.metrics }

// Run reads until ctx is done, then returns nil (an error only when
// called twice). Kafka failures never end it: they are logged once,
// counted, and retried with backoff. It returns within one request
// timeout of ctx being done.
func (r *Reader) Run(ctx context.Context) error {
	if !r.running.CompareAndSwap(false, true) {
		return errors.New("offsets log reader: Run called twice")
	}
	defer func() {
		if r.client != nil {
			_ = r.client.Close()
		}
	}()
	r.started = time.Now()
	r.progressAt = r.started
	r.log.Info().Str("start", r.opts.Start.String()).Msg("reading the group coordinators' log")
	for ctx.Err() == nil {
		now := time.Now()
		if !r.topicTry.ready(now) {
			r.afterRound(now)
			r.wait(ctx, r.topicTry.at)
			continue
		}
		if r.client == nil && !r.connect(now) {
			continue
		}
		if (r.needMeta || !r.metaSeen || now.Sub(r.metaAt) >= r.opts.MetadataRefresh) && !r.refreshMetadata(now) {
			continue
		}
		r.resolve()
		fetched := r.fetch()
		now = time.Now()
		r.afterRound(now)
		if !fetched {
			r.wait(ctx, r.nextAttempt(now))
		}
	}
	return nil
}

// wait blocks until the time t or ctx is done.
func (r *Reader) wait(ctx context.Context, t time.Time) {
	d := time.Until(t)
	if d <= 0 {
		return
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
	case <-timer.C:
	}
}

// nextAttempt is when there is something to try again after a round in
// which nothing could be fetched.
func (r *Reader) nextAttempt(now time.Time) time.Time {
	t := r.metaAt.Add(r.opts.MetadataRefresh)
	for _, p := range r.parts {
		if p.try.at.After(now) && p.try.at.Before(t) {
			t = p.try.at
		}
	}
	return t
}

func (r *Reader) connect(now time.Time) bool {
	c, err := sarama.NewClient(r.opts.Brokers, r.sc)
	if err != nil {
		r.topicFailed(now, ReasonConnect, err)
		return false
	}
	r.client = c
	r.needMeta = true
	return true
}

// refreshMetadata reads the topic's partitions and leaders.
func (r *Reader) refreshMetadata(now time.Time) bool {
	r.count(apiMetadata)
	err := r.client.RefreshMetadata(r.opts.Topic)
	var ids []int32
	if err == nil {
		ids, err = r.client.Partitions(r.opts.Topic)
	}
	if err == nil && len(ids) == 0 {
		err = sarama.ErrUnknownTopicOrPartition
	}
	if err != nil {
		reason := classify(err)
		switch reason {
		case ReasonDenied, ReasonUnknownTopic, ReasonConnect:
		default:
			reason = ReasonMetadata
		}
		r.topicFailed(now, reason, err)
		return false
	}
	r.metaAt, r.needMeta = now, false
	listed := map[int32]bool{}
	for _, id := range ids {
		listed[id] = true
		if _, ok := r.parts[id]; !ok {
			r.parts[id] = &partition{id: id, next: -1, hwm: -1, resetFrom: -1, fromEarliest: r.metaSeen,
				fetchBytes: r.opts.PartitionMaxBytes}
		}
	}
	for id := range r.parts {
		if !listed[id] {
			delete(r.parts, id)
			r.st.forgetPending(id)
		}
	}
	r.ids = r.ids[:0]
	for id := range r.parts {
		r.ids = append(r.ids, id)
	}
	slices.Sort(r.ids)
	r.metaSeen = true
	r.topicErr = ""
	r.topicTry = retry{}
	return true
}

// topicFailed records a failure of the topic as a whole.
func (r *Reader) topicFailed(now time.Time, reason string, err error) {
	r.topicErr = reason
	r.topicTry.fail(now, r.opts.RetryBackoffMin, r.opts.RetryBackoffMax)
	r.metrics.readErrors.WithLabelValues(reason).Inc()
	r.noteFailure(reason, -1, err)
	if reason == ReasonConnect && r.client != nil {
		_ = r.client.Close()
		r.client = nil
	}
}

// partitionFailed records a failed attempt on one partition.
func (r *Reader) partitionFailed(p *partition, now time.Time, reason string, err error) {
	p.err = reason
	p.try.fail(now, r.opts.RetryBackoffMin, r.opts.RetryBackoffMax)
	r.metrics.readErrors.WithLabelValues(reason).Inc()
	r.noteFailure(reason, p.id, err)
	if reason == ReasonNoLeader || reason == ReasonUnknownTopic || reason == ReasonBroker {
		r.needMeta = true
	}
}

func (r *Reader) partitionOK(p *partition, now time.Time) {
	p.err = ""
	p.try = retry{}
	p.readAt = now
}

// noteFailure logs a failure once per reason and episode: the first time
// the reason is seen since the topic was last fully readable.
func (r *Reader) noteFailure(reason string, partition int32, err error) {
	ev := r.log.Debug()
	if !r.failing[reason] {
		r.failing[reason] = true
		ev = r.log.Warn()
	}
	if partition >= 0 {
		ev = ev.Int32("partition", partition)
	}
	ev.Str("reason", reason).Err(err).
		Msg("cannot read the group coordinators' log; retrying with backoff (the other metrics are unaffected; generations come from the other sources meanwhile)")
}

// classify names the reason of a Kafka error.
func classify(err error) string {
	var kerr sarama.KError
	switch {
	case errors.Is(err, sarama.ErrTopicAuthorizationFailed):
		return ReasonDenied
	case errors.Is(err, sarama.ErrUnknownTopicOrPartition), errors.Is(err, sarama.ErrInvalidTopic):
		return ReasonUnknownTopic
	case errors.Is(err, sarama.ErrLeaderNotAvailable), errors.Is(err, sarama.ErrNotLeaderForPartition),
		errors.Is(err, sarama.ErrReplicaNotAvailable), errors.Is(err, sarama.ErrFencedLeaderEpoch),
		errors.Is(err, sarama.ErrUnknownLeaderEpoch), errors.Is(err, sarama.ErrKafkaStorageError),
		errors.Is(err, sarama.ErrOffsetNotAvailable):
		return ReasonNoLeader
	case errors.Is(err, sarama.ErrOutOfBrokers), errors.Is(err, sarama.ErrClosedClient):
		return ReasonConnect
	case errors.As(err, &kerr):
		return ReasonOther
	}
	return ReasonBroker
}

// closeOnError drops a broker connection after a failure that was not a
// Kafka error code: sarama reopens it on next use.
func closeOnError(b *sarama.Broker, err error) {
	var kerr sarama.KError
	if err != nil && !errors.As(err, &kerr) {
		_ = b.Close()
	}
}

func (r *Reader) count(api string) { r.metrics.requests.WithLabelValues(api).Inc() }

// Special timestamps of ListOffsets.
const (
	offsetLatest   = -1
	offsetEarliest = -2
)

// resolve finds the position of every partition that needs one.
func (r *Reader) resolve() {
	now := time.Now()
	var want []int32
	for _, id := range r.ids {
		if p := r.parts[id]; p.next < 0 && p.try.ready(now) {
			want = append(want, id)
		}
	}
	if len(want) == 0 {
		return
	}
	lookBack := now.Add(-r.opts.Start.LookBack).UnixMilli()
	first := r.listOffsets(want, func(p *partition) int64 {
		switch {
		case p.resetFrom >= 0, p.fromEarliest, r.opts.Start.Mode == StartEarliest:
			return offsetEarliest
		case r.opts.Start.Mode == StartLookBack:
			return lookBack
		}
		return offsetLatest
	})
	var again []int32
	for _, id := range want {
		off, ok := first[id]
		if !ok {
			continue
		}
		p := r.parts[id]
		switch {
		case p.resetFrom >= 0 && p.resetFrom < off:
			r.moved(p, off, "the position was deleted from the log: records between were not read")
		case p.resetFrom >= 0, off < 0:
			// A reset inside or beyond the log, or no record as recent as
			// the look-back: both need the log end.
			again = append(again, id)
		default:
			p.next = off
		}
	}
	if len(again) == 0 {
		return
	}
	for id, off := range r.listOffsets(again, func(*partition) int64 { return offsetLatest }) {
		p := r.parts[id]
		switch {
		case p.resetFrom < 0:
			p.next = off
		case p.resetFrom > off:
			r.moved(p, off, "the position was beyond the log end (the log was truncated or replaced): resuming at the log end")
		default:
			// In range after all (a leader change between the two):
			// resume where the reader was.
			p.next, p.resetFrom = p.resetFrom, -1
		}
	}
}

// moved ends a reset of p's position at off.
func (r *Reader) moved(p *partition, off int64, why string) {
	r.log.Warn().Int32("partition", p.id).Int64("from", p.resetFrom).Int64("to", off).Msg(why)
	r.metrics.readErrors.WithLabelValues(ReasonOffsetReset).Inc()
	r.st.forgetPending(p.id)
	p.next, p.resetFrom = off, -1
}

// listOffsets asks each leader for the offsets of its partitions among
// ids at the timestamp ts gives, one request per leader. Partitions that
// fail are marked failed and left out of the result.
func (r *Reader) listOffsets(ids []int32, ts func(*partition) int64) map[int32]int64 {
	now := time.Now()
	byLeader := map[int32][]int32{}
	leaders := map[int32]*sarama.Broker{}
	for _, id := range ids {
		b, err := r.client.Leader(r.opts.Topic, id)
		if err != nil {
			r.partitionFailed(r.parts[id], now, leaderReason(err), err)
			continue
		}
		leaders[b.ID()] = b
		byLeader[b.ID()] = append(byLeader[b.ID()], id)
	}
	out := map[int32]int64{}
	for bid, ids := range byLeader {
		b := leaders[bid]
		req := sarama.NewOffsetRequest(r.sc.Version)
		for _, id := range ids {
			req.AddBlock(r.opts.Topic, id, ts(r.parts[id]), 1)
		}
		r.count(apiListOffsets)
		resp, err := b.GetAvailableOffsets(req)
		if err != nil {
			closeOnError(b, err)
			for _, id := range ids {
				r.partitionFailed(r.parts[id], now, ReasonBroker, fmt.Errorf("ListOffsets to broker %d: %w", bid, err))
			}
			continue
		}
		for _, id := range ids {
			p := r.parts[id]
			blk := resp.GetBlock(r.opts.Topic, id)
			switch {
			case blk == nil:
				r.partitionFailed(p, now, ReasonOther, fmt.Errorf("broker %d did not answer ListOffsets for the partition", bid))
			case blk.Err != sarama.ErrNoError:
				r.partitionFailed(p, now, classify(blk.Err), blk.Err)
			case len(blk.Offsets) > 0: // version 0
				out[id] = blk.Offsets[0]
			default:
				out[id] = blk.Offset
			}
		}
	}
	return out
}

// leaderReason names why a partition's leader could not be found.
func leaderReason(err error) string {
	if r := classify(err); r != ReasonBroker && r != ReasonOther {
		return r
	}
	return ReasonNoLeader
}

// fetchJob is one broker's part of a fetch round.
type fetchJob struct {
	broker *sarama.Broker
	parts  []*partition
	resp   *sarama.FetchResponse
	err    error
}

// fetch sends one Fetch to each leader for every partition with a
// position and not backing off, and applies the answers. It reports
// whether any partition was fetched.
func (r *Reader) fetch() bool {
	now := time.Now()
	jobs := map[int32]*fetchJob{}
	catchingUp := false
	for _, id := range r.ids {
		p := r.parts[id]
		if p.next < 0 || !p.try.ready(now) {
			continue
		}
		b, err := r.client.Leader(r.opts.Topic, id)
		if err != nil {
			r.partitionFailed(p, now, leaderReason(err), err)
			continue
		}
		j := jobs[b.ID()]
		if j == nil {
			j = &fetchJob{broker: b}
			jobs[b.ID()] = j
		}
		j.parts = append(j.parts, p)
		if p.hwm < 0 || p.next < p.hwm || p.err != "" {
			catchingUp = true
		}
	}
	if len(jobs) == 0 {
		return false
	}
	// Long-poll only when caught up: while catching up, a broker with
	// nothing new must not hold the round.
	wait := r.opts.FetchMaxWait
	if catchingUp {
		wait = 0
	}
	var wg sync.WaitGroup
	for _, j := range jobs {
		// Session epoch -1: sessionless fetches, each one complete.
		req := &sarama.FetchRequest{Version: r.fetchVersion, MaxWaitTime: int32(wait.Milliseconds()), MinBytes: 1,
			MaxBytes: r.opts.FetchMaxBytes, Isolation: sarama.ReadUncommitted, SessionEpoch: -1}
		for _, p := range j.parts {
			req.AddBlock(r.opts.Topic, p.id, p.next, p.fetchBytes, -1)
		}
		r.count(apiFetch)
		wg.Go(func() { j.resp, j.err = j.broker.Fetch(req) })
	}
	wg.Wait()
	now = time.Now()
	bids := make([]int32, 0, len(jobs))
	for bid := range jobs {
		bids = append(bids, bid)
	}
	slices.Sort(bids)
	for _, bid := range bids {
		j := jobs[bid]
		if j.err != nil {
			closeOnError(j.broker, j.err)
			for _, p := range j.parts {
				r.partitionFailed(p, now, ReasonBroker, fmt.Errorf("Fetch from broker %d: %w", bid, j.err))
			}
			continue
		}
		for _, p := range j.parts {
			r.fetched(p, j.resp.GetBlock(r.opts.Topic, p.id), now)
		}
	}
	return true
}

// fetched applies one partition's fetch answer.
func (r *Reader) fetched(p *partition, blk *sarama.FetchResponseBlock, now time.Time) {
	if blk == nil {
		r.partitionFailed(p, now, ReasonOther, errors.New("the leader did not answer for the partition"))
		return
	}
	switch blk.Err {
	case sarama.ErrNoError:
	case sarama.ErrOffsetOutOfRange:
		// Resolved by the next rounds (resolve); backing off, so that a
		// broker answering this over and over is not asked in a loop.
		p.resetFrom, p.next, p.err = p.next, -1, ""
		p.try.fail(now, r.opts.RetryBackoffMin, r.opts.RetryBackoffMax)
		return
	default:
		r.partitionFailed(p, now, classify(blk.Err), blk.Err)
		return
	}
	before := p.next
	r.consume(p, blk)
	p.hwm = blk.HighWaterMarkOffset
	r.partitionOK(p, now)
	switch {
	case p.next > before:
		p.fetchBytes = r.opts.PartitionMaxBytes
	case p.next < p.hwm && p.fetchBytes < r.opts.FetchMaxBytes:
		// Nothing complete within the partition's share: a record batch
		// larger than it, or a run of batches compaction emptied. Ask for
		// more next time.
		p.fetchBytes = int32(min(int64(p.fetchBytes)*2, int64(r.opts.FetchMaxBytes)))
	case p.next < p.hwm:
		// Nothing complete even at FetchMaxBytes: do not spin on it.
		r.partitionFailed(p, now, ReasonOther, fmt.Errorf("no complete record batch at offset %d within %d bytes", p.next, p.fetchBytes))
	}
}

// consume applies every record of blk at or after p's position and moves
// the position past the last complete batch.
func (r *Reader) consume(p *partition, blk *sarama.FetchResponseBlock) {
	for _, rs := range blk.RecordsSet {
		switch {
		case rs.RecordBatch != nil:
			r.consumeBatch(p, rs.RecordBatch)
		case rs.MsgSet != nil:
			r.consumeMessages(p, rs.MsgSet)
		}
	}
}

func (r *Reader) consumeBatch(p *partition, rb *sarama.RecordBatch) {
	if rb.PartialTrailingRecord || rb.LastOffset() < p.next {
		return // incomplete (read again next time), or wholly before the position
	}
	if rb.Control {
		for _, rec := range rb.Records {
			if rb.FirstOffset+rec.OffsetDelta < p.next {
				continue
			}
			r.read++
			r.cSkipped[skipControl].Inc()
			commit, known, err := decodeControl(rec.Key)
			if err != nil {
				r.decodeFailed(err, p.id, rb.FirstOffset+rec.OffsetDelta)
				continue
			}
			if known {
				if n := r.st.marker(txnKey{partition: p.id, producerID: rb.ProducerID}, commit); n > 0 {
					r.cSkipped[skipAborted].Add(float64(n))
				}
			}
		}
	} else {
		var txn *txnKey
		if rb.IsTransactional {
			txn = &txnKey{partition: p.id, producerID: rb.ProducerID}
		}
		for _, rec := range rb.Records {
			off := rb.FirstOffset + rec.OffsetDelta
			if off < p.next {
				continue
			}
			ts := rb.FirstTimestamp.Add(rec.TimestampDelta)
			if rb.LogAppendTime {
				ts = rb.MaxTimestamp
			}
			r.record(p.id, off, ts, rec.Key, rec.Value, txn)
		}
	}
	p.next = rb.LastOffset() + 1
}

// consumeMessages reads the message sets of magic 0 and 1, which logs
// written before Kafka 0.11 can still hold. A compressed v1 wrapper
// carries the absolute offset of its last inner message, the inner ones
// relative offsets.
func (r *Reader) consumeMessages(p *partition, ms *sarama.MessageSet) {
	for _, outer := range ms.Messages {
		if outer == nil || outer.Msg == nil {
			continue
		}
		inner := outer.Messages()
		for _, m := range inner {
			if m == nil || m.Msg == nil {
				continue
			}
			off, ts := m.Offset, m.Msg.Timestamp
			if outer.Msg.Set != nil && m.Msg.Version >= 1 {
				off += outer.Offset - inner[len(inner)-1].Offset
				if m.Msg.LogAppendTime {
					ts = outer.Msg.Timestamp
				}
			}
			if off < p.next {
				continue
			}
			r.record(p.id, off, ts, m.Msg.Key, m.Msg.Value, nil)
			p.next = off + 1
		}
	}
}

// record decodes and applies one record.
func (r *Reader) record(partition int32, offset int64, ts time.Time, key, value []byte, txn *txnKey) {
	r.read++
	rec, err := Decode(key, value)
	if err != nil {
		r.decodeFailed(err, partition, offset)
		var de *DecodeError
		if rec.Kind == KindGroupMetadata && errors.As(err, &de) && de.Part == PartGroupMetadataValue {
			r.st.unreadable(rec.Group, partition, offset, ts)
		}
		return
	}
	switch rec.Kind {
	case KindOther:
		r.cSkipped[skipUnknownKey].Inc()
		return
	case KindOffsetCommit:
		if rec.Tombstone {
			r.cRecords[typeOffsetCommitTombstone].Inc()
		} else {
			r.cRecords[typeOffsetCommit].Inc()
		}
	case KindGroupMetadata:
		if rec.Tombstone {
			r.cRecords[typeGroupMetadataTombstone].Inc()
		} else {
			r.cRecords[typeGroupMetadata].Inc()
		}
	}
	r.st.apply(partition, offset, ts, &rec, txn)
}

// decodeFailed counts an undecodable record, and logs the first of each
// part at warning level.
func (r *Reader) decodeFailed(err error, partition int32, offset int64) {
	part := PartKey
	var de *DecodeError
	if errors.As(err, &de) {
		part = de.Part
	}
	r.cDecodeErrors[part].Inc()
	ev := r.log.Debug()
	if !r.warnedDecode[part] {
		r.warnedDecode[part] = true
		ev = r.log.Warn()
	}
	ev.Int32("partition", partition).Int64("offset", offset).Err(err).Msg("skipping a record that cannot be decoded (further ones are logged at debug level)")
}

// afterRound publishes a new view when it is due or when a partition's
// liveness changed, and logs progress.
func (r *Reader) afterRound(now time.Time) {
	urgent := false
	for _, p := range r.parts {
		if p.status().Live() != p.live {
			urgent = true
			break
		}
	}
	if urgent || now.Sub(r.lastPublish) >= r.opts.PublishInterval {
		r.publish(now)
	}
	if !r.caughtUp && r.catchingUp() && now.Sub(r.progressAt) >= r.opts.ProgressInterval {
		v := r.View()
		var behind int64
		notLive, unreadable := 0, 0
		for _, p := range v.Partitions {
			behind += max(p.Behind(), 0)
			if !p.Live() {
				notLive++
			}
			if p.Error != "" {
				unreadable++
			}
		}
		rate := float64(r.read-r.progressRead) / now.Sub(r.progressAt).Seconds()
		r.log.Info().Uint64("records_read", r.read).Float64("records_per_second", float64(int64(rate))).
			Int("partitions_behind", notLive).Int("partitions_unreadable", unreadable).Int64("records_behind", behind).
			Int("groups", len(v.Groups)).Dur("elapsed", now.Sub(r.started)).
			Msg("catching up with the group coordinators' log")
		r.progressAt, r.progressRead = now, r.read
	}
}

// catchingUp reports whether some partition is readable and behind: the
// progress line is about reading, not about failures (logged apart).
func (r *Reader) catchingUp() bool {
	if r.topicErr != "" {
		return false
	}
	for _, p := range r.parts {
		if p.err == "" && !p.status().Live() {
			return true
		}
	}
	return false
}

// publish stores a new view and sets the gauges from it.
func (r *Reader) publish(now time.Time) {
	v := &View{Topic: r.opts.Topic, Time: now, Groups: r.st.publish(), Error: r.topicErr,
		Partitions: make([]PartitionStatus, 0, len(r.ids))}
	for _, id := range r.ids {
		p := r.parts[id]
		s := p.status()
		p.live = s.Live()
		v.Partitions = append(v.Partitions, s)
	}
	r.view.Store(v)
	r.metrics.observeView(v)
	r.lastPublish = now

	if len(r.failing) > 0 && v.Readable() {
		r.log.Info().Msg("the group coordinators' log is readable again")
		clear(r.failing)
	}
	caughtUp := v.CaughtUp()
	if caughtUp && !r.caughtUp {
		r.log.Info().Uint64("records_read", r.read).Int("groups", len(v.Groups)).Int("partitions", len(v.Partitions)).
			Dur("elapsed", now.Sub(r.started)).Msg("caught up with the group coordinators' log")
	}
	if !caughtUp && r.caughtUp {
		r.progressAt, r.progressRead = now, r.read
	}
	r.caughtUp = caughtUp
}
