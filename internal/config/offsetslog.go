package config

import (
	"fmt"
	"time"
)

// OffsetsLog is what the __consumer_offsets reader is built from (the
// offsetslog package's Options, without the client and logger the caller
// adds). The variables hold what an operator tunes; the rest are fixed
// here, the one place the reader's values come from.
type OffsetsLog struct {
	Enabled bool
	Topic   string
	// Start is latest, earliest, or a look-back (LookBack > 0).
	Start             string
	LookBack          time.Duration
	FetchMaxWait      time.Duration
	FetchMaxBytes     int32
	PartitionMaxBytes int32
	RetryBackoffMin   time.Duration
	RetryBackoffMax   time.Duration
	MetadataRefresh   time.Duration
	PublishInterval   time.Duration
	ProgressInterval  time.Duration
}

// Start positions of OffsetsLog.Start.
const (
	OffsetsLogLatest   = "latest"
	OffsetsLogEarliest = "earliest"
	OffsetsLogLookBack = "lookback"
)

// The reader's settings that are not variables: how soon it retries after
// the first failure, how often it reads the topic's metadata while
// everything works (leader errors refresh at once), how long a change
// waits before it is published, and how often it logs its progress while
// catching up.
const (
	offsetsLogRetryMin         = time.Second
	offsetsLogMetadataRefresh  = time.Minute
	offsetsLogPublishInterval  = time.Second
	offsetsLogProgressInterval = 5 * time.Second
)

func (c *Config) validateOffsetsLog() error {
	o := OffsetsLog{Enabled: c.OffsetsLogEnabled, Topic: c.OffsetsLogTopic,
		FetchMaxWait: c.OffsetsLogFetchMaxWait, FetchMaxBytes: c.OffsetsLogFetchMaxBytes, PartitionMaxBytes: c.OffsetsLogPartitionMaxBytes,
		RetryBackoffMin: offsetsLogRetryMin, RetryBackoffMax: c.OffsetsLogRetryMax,
		MetadataRefresh: offsetsLogMetadataRefresh, PublishInterval: offsetsLogPublishInterval, ProgressInterval: offsetsLogProgressInterval}
	switch c.OffsetsLogStart {
	case OffsetsLogLatest, OffsetsLogEarliest:
		o.Start = c.OffsetsLogStart
	default:
		d, err := time.ParseDuration(c.OffsetsLogStart)
		if err != nil || d <= 0 {
			return &Error{"OFFSETS_LOG_START", fmt.Sprintf("%q is not latest, earliest or a positive duration (a look-back such as 1h)", c.OffsetsLogStart)}
		}
		o.Start, o.LookBack = OffsetsLogLookBack, d
	}
	if o.Topic == "" {
		return &Error{"OFFSETS_LOG_TOPIC", "must not be empty"}
	}
	if o.FetchMaxWait <= 0 || o.FetchMaxWait >= c.RequestTimeout {
		return &Error{"OFFSETS_LOG_FETCH_MAX_WAIT", fmt.Sprintf("%s: must be positive and shorter than REQUEST_TIMEOUT (%s)", o.FetchMaxWait, c.RequestTimeout)}
	}
	if o.FetchMaxBytes < 1024 {
		return &Error{"OFFSETS_LOG_FETCH_MAX_BYTES", fmt.Sprintf("%d: must be at least 1024", o.FetchMaxBytes)}
	}
	if o.PartitionMaxBytes < 1024 || o.PartitionMaxBytes > o.FetchMaxBytes {
		return &Error{"OFFSETS_LOG_PARTITION_MAX_BYTES", fmt.Sprintf("%d: must be at least 1024 and at most OFFSETS_LOG_FETCH_MAX_BYTES (%d)", o.PartitionMaxBytes, o.FetchMaxBytes)}
	}
	if o.RetryBackoffMax < o.RetryBackoffMin {
		return &Error{"OFFSETS_LOG_RETRY_MAX", fmt.Sprintf("%s: must be at least %s", o.RetryBackoffMax, o.RetryBackoffMin)}
	}
	c.OffsetsLog = o
	return nil
}
