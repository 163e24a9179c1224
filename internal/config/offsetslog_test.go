package config

import (
	"strings"
	"testing"
	"time"
)

func TestOffsetsLogSettings(t *testing.T) {
	for start, want := range map[string]struct {
		mode     string
		lookBack time.Duration
	}{
		"earliest": {OffsetsLogEarliest, 0}, "latest": {OffsetsLogLatest, 0}, "90m": {OffsetsLogLookBack, 90 * time.Minute},
	} {
		t.Setenv("KRE_OFFSETS_LOG_ENABLED", "true")
		t.Setenv("KRE_OFFSETS_LOG_START", start)
		c, err := Load()
		if err != nil {
			t.Fatalf("START=%s: %v", start, err)
		}
		o := c.OffsetsLog
		if !o.Enabled || o.Start != want.mode || o.LookBack != want.lookBack || o.Topic != "__consumer_offsets" ||
			o.FetchMaxWait != 500*time.Millisecond || o.FetchMaxBytes != 4<<20 || o.PartitionMaxBytes != 1<<20 ||
			o.RetryBackoffMin != time.Second || o.RetryBackoffMax != 30*time.Second {
			t.Errorf("START=%s: %+v", start, o)
		}
	}
}

func TestOffsetsLogSettingsRejected(t *testing.T) {
	for _, tc := range []struct{ name, value, msg string }{
		{"OFFSETS_LOG_START", "newest", "OFFSETS_LOG_START"},
		{"OFFSETS_LOG_START", "-1h", "OFFSETS_LOG_START"},
		{"OFFSETS_LOG_START", "0s", "OFFSETS_LOG_START"},
		{"OFFSETS_LOG_TOPIC", "", "OFFSETS_LOG_TOPIC"},
		{"OFFSETS_LOG_FETCH_MAX_WAIT", "10s", "shorter than REQUEST_TIMEOUT"},
		{"OFFSETS_LOG_FETCH_MAX_BYTES", "100", "OFFSETS_LOG_FETCH_MAX_BYTES"},
		{"OFFSETS_LOG_PARTITION_MAX_BYTES", "8388608", "at most OFFSETS_LOG_FETCH_MAX_BYTES"},
		{"OFFSETS_LOG_RETRY_MAX", "100ms", "OFFSETS_LOG_RETRY_MAX"},
	} {
		t.Run(tc.name+"="+tc.value, func(t *testing.T) {
			t.Setenv("KRE_"+tc.name, tc.value)
			_, err := Load()
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v, want an error naming %s", err, tc.msg)
			}
		})
	}
}
