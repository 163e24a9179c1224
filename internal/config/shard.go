package config

import (
	"fmt"
	"hash/fnv"
	"os"
	"strconv"
	"strings"
)

// Shard says which share of the consumer groups this instance exports when
// several replicas split them: groups are assigned by a jump consistent
// hash of their name, so all replicas agree without talking to each other,
// and a change of the shard count from n to n+1 moves only the groups that
// go to the new shard (about 1/(n+1) of them).
type Shard struct {
	Index, Count int
}

// Owns reports whether the shard exports the group.
func (s Shard) Owns(group string) bool {
	if s.Count <= 1 {
		return true
	}
	return ShardOf(group, s.Count) == s.Index
}

// First reports whether this is shard 0, the one that exports the topic
// and broker series (they are the same on every shard, so exported once).
func (s Shard) First() bool { return s.Index == 0 }

// ShardOf returns the shard, in [0, count), that owns group.
func ShardOf(group string, count int) int {
	h := fnv.New64a()
	_, _ = h.Write([]byte(group))
	return jump(h.Sum64(), count)
}

// jump is the jump consistent hash of Lamping and Veach ("A Fast, Minimal
// Memory, Consistent Hash Algorithm", 2014): it walks the key's sequence
// of bucket jumps, driven by a 64-bit linear congruential generator, and
// stops at the last jump below buckets.
func jump(key uint64, buckets int) int {
	b, j := int64(-1), int64(0)
	for j < int64(buckets) {
		b = j
		key = key*2862933555777941757 + 1
		j = int64(float64(b+1) * (float64(int64(1)<<31) / float64((key>>33)+1)))
	}
	return int(b)
}

// parseShard reads SHARDS and SHARD: SHARD is an index, or "auto" for the
// ordinal at the end of the pod name (POD_NAME, else the host name, as a
// StatefulSet names its pods: name-0, name-1, ...).
func parseShard(count int, index string) (Shard, error) {
	if count < 1 {
		return Shard{}, &Error{"SHARDS", "must be at least 1"}
	}
	if index == "auto" {
		name := os.Getenv("POD_NAME")
		if name == "" {
			name, _ = os.Hostname()
		}
		i := strings.LastIndex(name, "-")
		n, err := strconv.Atoi(name[i+1:])
		if i < 0 || err != nil {
			return Shard{}, &Error{"SHARD", fmt.Sprintf("auto: pod name %q does not end in -<ordinal> (set POD_NAME)", name)}
		}
		index = strconv.Itoa(n)
	}
	i, err := strconv.Atoi(index)
	if err != nil || i < 0 || i >= count {
		return Shard{}, &Error{"SHARD", fmt.Sprintf("%q is not auto or an index from 0 to SHARDS-1 (%d)", index, count-1)}
	}
	return Shard{Index: i, Count: count}, nil
}
