package bench

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/demo"
)

// WorldSpec is the shape of a world: Groups groups with committed offsets
// and no members, over Topics topics of Partitions partitions each; every
// group has committed on every partition of TopicsPerGroup topics.
type WorldSpec struct {
	Groups, Topics, Partitions, TopicsPerGroup int
}

// ParseWorld reads "GROUPSxTOPICSxPARTITIONS" or
// "GROUPSxTOPICSxPARTITIONSxTOPICS_PER_GROUP" (default one topic per group).
func ParseWorld(s string) (WorldSpec, error) {
	parts := strings.Split(strings.ToLower(strings.TrimSpace(s)), "x")
	if len(parts) != 3 && len(parts) != 4 {
		return WorldSpec{}, fmt.Errorf("world %q: want GROUPSxTOPICSxPARTITIONS[xTOPICS_PER_GROUP]", s)
	}
	var n [4]int
	n[3] = 1
	for i, p := range parts {
		v, err := strconv.Atoi(strings.ReplaceAll(p, "_", ""))
		if err != nil || v <= 0 {
			return WorldSpec{}, fmt.Errorf("world %q: %q is not a positive number", s, p)
		}
		n[i] = v
	}
	w := WorldSpec{Groups: n[0], Topics: n[1], Partitions: n[2], TopicsPerGroup: n[3]}
	if w.TopicsPerGroup > w.Topics {
		return WorldSpec{}, fmt.Errorf("world %q: %d topics per group but only %d topics", s, w.TopicsPerGroup, w.Topics)
	}
	return w, nil
}

func (w WorldSpec) String() string {
	if w.TopicsPerGroup == 1 {
		return fmt.Sprintf("%dx%dx%d", w.Groups, w.Topics, w.Partitions)
	}
	return fmt.Sprintf("%dx%dx%dx%d", w.Groups, w.Topics, w.Partitions, w.TopicsPerGroup)
}

// GroupPartitions is how many (group, partition) pairs have a commit.
func (w WorldSpec) GroupPartitions() int { return w.Groups * w.TopicsPerGroup * w.Partitions }

// Describe says what the world holds, in words.
func (w WorldSpec) Describe() string {
	per := "one topic"
	if w.TopicsPerGroup > 1 {
		per = fmt.Sprintf("%d topics", w.TopicsPerGroup)
	}
	return fmt.Sprintf("%s groups over %s × %s partitions, each committed on all partitions of %s: %s group-partitions",
		thousands(w.Groups), thousands(w.Topics), thousands(w.Partitions), per, thousands(w.GroupPartitions()))
}

// TopicName is the name of the world's i-th topic.
func TopicName(i int) string { return fmt.Sprintf("bench-t%03d", i) }

// GroupName is the name of the world's g-th group.
func GroupName(g int) string { return fmt.Sprintf("bench-g%05d", g) }

// GroupTopics are the topics group g committed on: TopicsPerGroup
// consecutive topics, spread so every topic gets as many groups.
func (w WorldSpec) GroupTopics(g int) []int {
	out := make([]int, w.TopicsPerGroup)
	for j := range out {
		out[j] = (g*w.TopicsPerGroup + j) % w.Topics
	}
	return out
}

// Client IDs of the world's own clients; the exporter's is set by the
// runner. The wire counter tells traffic apart by them.
const (
	clientWorld    = "bench-world"
	clientProducer = "bench-world-producer"
	clientLive     = "bench-live" // prefix of the live workload's clients
)

// initialRecords is how many records every world partition gets before
// the groups commit; committed offsets lie between 0 and it.
const initialRecords = 20

// WorldOptions tune the parts of a world that are not its shape.
type WorldOptions struct {
	// ProduceRate is records per second the background producer spreads
	// round-robin over the world's partitions (0: none).
	ProduceRate int
	// Live starts the demo workload's live consumer groups (sarama and
	// franz-go, classic and KIP-848) with their producer at LiveRate.
	Live     bool
	LiveRate int
	Log      zerolog.Logger `json:"-"`
}

// World is a running kfake cluster with a world built in it.
type World struct {
	Spec    WorldSpec // what has been built so far
	Wire    *WireCounter
	Control *ControlCounter

	opts     WorldOptions
	cluster  *demo.Cluster
	client   *kgo.Client
	adm      *kadm.Client
	workload *demo.Workload
	topics   int // created so far

	stopProducer context.CancelFunc
	producerDone chan struct{}
	produced     atomic.Int64
	produceErrs  atomic.Int64
}

// StartWorld starts a three-broker kfake cluster (the demo's settings) on
// loopback, with the counters attached, and the live workload if asked.
func StartWorld(ctx context.Context, opts WorldOptions) (*World, error) {
	w := &World{Wire: NewWireCounter(), Control: NewControlCounter(), opts: opts}
	c, err := demo.StartCluster(demo.ClusterOptions{ExtraOpts: []kfake.Opt{kfake.ListenFn(w.Wire.Listen)}})
	if err != nil {
		return nil, err
	}
	w.cluster = c
	c.Fake().Control(w.Control.Observe)
	w.client, err = kgo.NewClient(kgo.SeedBrokers(c.Addrs()...), kgo.ClientID(clientWorld),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerBatchMaxBytes(1<<20), kgo.MaxBufferedRecords(1<<20))
	if err != nil {
		c.Close()
		return nil, err
	}
	w.adm = kadm.NewClient(w.client)
	if opts.Live {
		w.workload, err = demo.RunWorkload(ctx, c.Addrs(), demo.WorkloadOptions{
			ProduceRate:    max(opts.LiveRate, 1),
			ChurnInterval:  time.Minute,
			ClientIDPrefix: clientLive,
			Logger:         opts.Log,
		})
		if err != nil {
			w.Close()
			return nil, err
		}
	}
	return w, nil
}

// Addrs are the brokers' loopback addresses.
func (w *World) Addrs() []string { return w.cluster.Addrs() }

// LiveGroups are the live workload's groups (nil without it).
func (w *World) LiveGroups() []string {
	if w.workload == nil {
		return nil
	}
	return w.workload.Groups()
}

// Grow builds spec in the cluster: the topics and groups spec has beyond
// what was built before. Topics keep their shape once created, so a world
// only grows in groups (and topics of the same partition count).
func (w *World) Grow(ctx context.Context, spec WorldSpec) error {
	if w.topics > 0 && spec.Partitions != w.Spec.Partitions {
		return fmt.Errorf("world %s cannot grow into %s: partition counts differ", w.Spec, spec)
	}
	if w.topics > 0 && spec.TopicsPerGroup != w.Spec.TopicsPerGroup {
		return fmt.Errorf("world %s cannot grow into %s: topics per group differ", w.Spec, spec)
	}
	if spec.Topics < w.topics {
		return fmt.Errorf("world %s cannot shrink into %s", w.Spec, spec)
	}
	if w.topics > 0 && spec.Topics != w.topics {
		// Groups already committed would have to move: keep it simple.
		return fmt.Errorf("world %s cannot grow into %s: topic counts differ", w.Spec, spec)
	}
	for i := w.topics; i < spec.Topics; i++ {
		if err := w.cluster.Fake().CreateTopic(TopicName(i), int32(spec.Partitions), nil); err != nil {
			return fmt.Errorf("create topic %s: %w", TopicName(i), err)
		}
	}
	if w.topics < spec.Topics {
		if err := w.produceInitial(ctx, w.topics, spec.Topics, spec.Partitions); err != nil {
			return err
		}
		w.topics = spec.Topics
	}
	if err := w.commit(ctx, spec, w.Spec.Groups, spec.Groups); err != nil {
		return err
	}
	w.Spec = spec
	if w.opts.ProduceRate > 0 && w.stopProducer == nil {
		w.startProducer(spec)
	}
	return nil
}

// produceInitial gives every partition of topics [from, to)
// initialRecords records.
func (w *World) produceInitial(ctx context.Context, from, to, partitions int) error {
	var recs []*kgo.Record
	flush := func() error {
		if len(recs) == 0 {
			return nil
		}
		pctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		err := w.client.ProduceSync(pctx, recs...).FirstErr()
		recs = recs[:0]
		return err
	}
	for t := from; t < to; t++ {
		for p := range partitions {
			for i := range initialRecords {
				recs = append(recs, &kgo.Record{Topic: TopicName(t), Partition: int32(p), Value: fmt.Appendf(nil, "initial-%d", i)})
			}
		}
		if len(recs) >= 20000 {
			if err := flush(); err != nil {
				return fmt.Errorf("produce initial records: %w", err)
			}
		}
	}
	if err := flush(); err != nil {
		return fmt.Errorf("produce initial records: %w", err)
	}
	return nil
}

// commitWorkers is how many offset commits are in flight while building.
const commitWorkers = 16

// commit commits offsets for groups [from, to) of spec, as an admin does:
// no member, no generation. Group g's committed offset on partition p is
// somewhere between 0 and initialRecords, so most groups lag.
func (w *World) commit(ctx context.Context, spec WorldSpec, from, to int) error {
	next := make(chan int)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for range commitWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for g := range next {
				var os kadm.Offsets
				for _, t := range spec.GroupTopics(g) {
					for p := range spec.Partitions {
						os.AddOffset(TopicName(t), int32(p), int64((g*7+p*3)%(initialRecords+1)), -1)
					}
				}
				cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				resp, err := w.adm.CommitOffsets(cctx, GroupName(g), os)
				cancel()
				if err == nil {
					err = resp.Error()
				}
				if err != nil {
					mu.Lock()
					if first == nil {
						first = fmt.Errorf("commit offsets of %s: %w", GroupName(g), err)
					}
					mu.Unlock()
				}
			}
		}()
	}
	for g := from; g < to && ctx.Err() == nil; g++ {
		next <- g
	}
	close(next)
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return first
}

// startProducer produces ProduceRate records per second, round-robin over
// the world's partitions, until Close.
func (w *World) startProducer(spec WorldSpec) {
	ctx, cancel := context.WithCancel(context.Background())
	w.stopProducer = cancel
	w.producerDone = make(chan struct{})
	cl, err := kgo.NewClient(kgo.SeedBrokers(w.Addrs()...), kgo.ClientID(clientProducer),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(50*time.Millisecond))
	if err != nil {
		w.produceErrs.Add(1)
		close(w.producerDone)
		return
	}
	go func() {
		defer close(w.producerDone)
		defer cl.Close()
		const tick = 100 * time.Millisecond
		t := time.NewTicker(tick)
		defer t.Stop()
		start := time.Now()
		var sent, next int64
		total := int64(spec.Topics * spec.Partitions)
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			due := int64(time.Since(start).Seconds() * float64(w.opts.ProduceRate))
			if due-sent > int64(w.opts.ProduceRate) {
				sent = due - int64(w.opts.ProduceRate) // after a stall, skip ahead
			}
			for ; sent < due; sent++ {
				i := next % total
				next++
				rec := &kgo.Record{Topic: TopicName(int(i) / spec.Partitions), Partition: int32(int(i) % spec.Partitions), Value: fmt.Appendf(nil, "bg-%d", sent)}
				cl.Produce(ctx, rec, func(_ *kgo.Record, err error) {
					if err == nil {
						w.produced.Add(1)
					} else if !errors.Is(err, context.Canceled) {
						w.produceErrs.Add(1)
					}
				})
			}
		}
	}()
}

// Produced is how many background records were acknowledged, and how many
// failed.
func (w *World) Produced() (ok, failed int64) { return w.produced.Load(), w.produceErrs.Load() }

// Close stops the workload, the producer and the cluster.
func (w *World) Close() {
	if w.workload != nil {
		w.workload.Close()
	}
	if w.stopProducer != nil {
		w.stopProducer()
		<-w.producerDone
	}
	if w.client != nil {
		w.client.Close()
	}
	w.cluster.Close()
}
