package kafka

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/IBM/sarama"
)

// timestampFetchBytes is how much one timestamp read asks for: enough for
// the batch holding the record at the offset, small enough that exact lag
// on thousands of partitions stays cheap.
const timestampFetchBytes = 64 << 10

// Timestamp returns the timestamp of the first record at or after offset
// in the partition, read with one Fetch from its leader. It implements
// lagtime.RecordTimestamper for exact lag in seconds (KRE_LAG_EXACT).
// Fetch reads; it does not move any group's offsets.
func (p *Poller) Timestamp(ctx context.Context, topic string, partition int32, offset int64) (time.Time, error) {
	c, err := p.clientFor()
	if err != nil {
		return time.Time{}, err
	}
	leader, err := c.Leader(topic, partition)
	if err != nil {
		return time.Time{}, fmt.Errorf("leader of %s/%d: %w", topic, partition, err)
	}
	if err := ctx.Err(); err != nil {
		return time.Time{}, err
	}
	if p.vers.fetch < 0 {
		return time.Time{}, errors.New("record timestamps need KRE_KAFKA_VERSION 0.11.0 or later")
	}
	// Session epoch -1: a one-off fetch that opens no fetch session.
	req := &sarama.FetchRequest{Version: p.vers.fetch, MaxWaitTime: 0, MinBytes: 1, MaxBytes: timestampFetchBytes, SessionEpoch: -1}
	req.AddBlock(topic, partition, offset, timestampFetchBytes, -1)
	p.count(1)
	resp, err := leader.Fetch(req)
	if err != nil {
		p.closeOnError(leader, err)
		return time.Time{}, err
	}
	blk := resp.GetBlock(topic, partition)
	if blk == nil {
		return time.Time{}, fmt.Errorf("no fetch answer for %s/%d", topic, partition)
	}
	if blk.Err != sarama.ErrNoError {
		return time.Time{}, blk.Err
	}
	for _, rs := range blk.RecordsSet {
		if rb := rs.RecordBatch; rb != nil && !rb.Control {
			for _, r := range rb.Records {
				if rb.FirstOffset+r.OffsetDelta < offset {
					continue
				}
				if rb.LogAppendTime {
					return rb.MaxTimestamp, nil
				}
				return rb.FirstTimestamp.Add(r.TimestampDelta), nil
			}
		}
		if ms := rs.MsgSet; ms != nil {
			for _, m := range ms.Messages {
				if m.Offset >= offset && m.Msg != nil {
					return m.Msg.Timestamp, nil
				}
			}
		}
	}
	return time.Time{}, errors.New("no record at or after the offset in the first fetched bytes")
}
