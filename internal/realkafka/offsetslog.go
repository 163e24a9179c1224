package realkafka

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// GroupRecord is one GroupMetadata record that a classic group coordinator
// wrote to __consumer_offsets: the broker's own log of generations.
type GroupRecord struct {
	Group      string
	Generation int32
	Protocol   string // assignor; "" when the group went Empty
	Members    int
	Tombstone  bool // the group was deleted
	Offset     int64
	Partition  int32
	Time       time.Time
}

// OffsetsLog tails __consumer_offsets from its start and keeps every
// GroupMetadata record, by group.
type OffsetsLog struct {
	cl  *kgo.Client
	adm *kadm.Client

	mu       sync.Mutex
	records  map[string][]GroupRecord
	position map[int32]int64 // next offset to read, per partition
	changed  chan struct{}
	cancel   context.CancelFunc
	done     chan struct{}
}

const offsetsTopic = "__consumer_offsets"

// TailOffsetsLog starts tailing; Close stops it.
func TailOffsetsLog(brokers []string, opts ...kgo.Opt) (*OffsetsLog, error) {
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(brokers...),
		kgo.ConsumeTopics(offsetsTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(200 * time.Millisecond),
	}, opts...)...)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &OffsetsLog{cl: cl, adm: kadm.NewClient(cl), records: map[string][]GroupRecord{},
		position: map[int32]int64{}, changed: make(chan struct{}), cancel: cancel, done: make(chan struct{})}
	go l.run(ctx)
	return l, nil
}

func (l *OffsetsLog) run(ctx context.Context) {
	defer close(l.done)
	for ctx.Err() == nil {
		fs := l.cl.PollFetches(ctx)
		l.mu.Lock()
		fs.EachRecord(l.addLocked)
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			if n := len(p.Records); n > 0 {
				l.position[p.Partition] = p.Records[n-1].Offset + 1
			}
		})
		close(l.changed)
		l.changed = make(chan struct{})
		l.mu.Unlock()
	}
}

func (l *OffsetsLog) addLocked(r *kgo.Record) {
	if len(r.Key) < 2 || binary.BigEndian.Uint16(r.Key) != 2 {
		return // offset commits (0, 1) and KIP-848 records (3+)
	}
	var k kmsg.GroupMetadataKey
	if err := k.ReadFrom(r.Key); err != nil {
		return
	}
	rec := GroupRecord{Group: k.Group, Offset: r.Offset, Partition: r.Partition, Time: r.Timestamp}
	if r.Value == nil {
		rec.Tombstone = true
	} else {
		var v kmsg.GroupMetadataValue
		if err := v.ReadFrom(r.Value); err != nil {
			return
		}
		rec.Generation = v.Generation
		rec.Members = len(v.Members)
		if v.Protocol != nil {
			rec.Protocol = *v.Protocol
		}
	}
	l.records[k.Group] = append(l.records[k.Group], rec)
}

// CatchUp waits until everything written to __consumer_offsets before the
// call has been read.
func (l *OffsetsLog) CatchUp(ctx context.Context) error {
	ends, err := l.adm.ListEndOffsets(ctx, offsetsTopic)
	if err != nil {
		return err
	}
	if err := ends.Error(); err != nil {
		return err
	}
	for {
		l.mu.Lock()
		behind := ""
		ends.Each(func(o kadm.ListedOffset) {
			if o.Offset > 0 && l.position[o.Partition] < o.Offset {
				behind = fmt.Sprintf("partition %d at %d of %d", o.Partition, l.position[o.Partition], o.Offset)
			}
		})
		ch := l.changed
		l.mu.Unlock()
		if behind == "" {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("reading __consumer_offsets: %s: %w", behind, ctx.Err())
		}
	}
}

// Records is the GroupMetadata records of group so far, in log order.
func (l *OffsetsLog) Records(group string) []GroupRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]GroupRecord(nil), l.records[group]...)
}

// Generation is group's latest generation in the log after catching up;
// ok is false when the log holds none (or the group was deleted).
func (l *OffsetsLog) Generation(ctx context.Context, group string) (gen int32, ok bool, err error) {
	if err := l.CatchUp(ctx); err != nil {
		return 0, false, err
	}
	recs := l.Records(group)
	if len(recs) == 0 || recs[len(recs)-1].Tombstone {
		return 0, false, nil
	}
	return recs[len(recs)-1].Generation, true, nil
}

// Close stops tailing.
func (l *OffsetsLog) Close() {
	l.cancel()
	<-l.done
	l.cl.Close()
}
