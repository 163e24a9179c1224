package config

import (
	"fmt"
	"testing"
)

// Every group belongs to exactly one shard, shards are about equal, and
// growing from n to n+1 shards moves only groups that go to the new shard,
// about 1/(n+1) of them.
func TestShardsSplitAndMoveMinimally(t *testing.T) {
	const groups = 20000
	names := make([]string, groups)
	for i := range names {
		names[i] = fmt.Sprintf("group-%d", i)
	}
	for n := 1; n <= 8; n++ {
		sizes := make([]int, n)
		moved := 0
		for _, g := range names {
			owners := 0
			for i := range n {
				if (Shard{Index: i, Count: n}).Owns(g) {
					owners++
				}
			}
			if owners != 1 {
				t.Fatalf("%d shards: %s owned by %d", n, g, owners)
			}
			s := ShardOf(g, n)
			sizes[s]++
			if next := ShardOf(g, n+1); next != s {
				if next != n {
					t.Fatalf("%d->%d shards: %s moved from %d to %d, not to the new shard", n, n+1, g, s, next)
				}
				moved++
			}
		}
		for i, size := range sizes {
			if want := groups / n; size < want*9/10 || size > want*11/10 {
				t.Errorf("%d shards: shard %d has %d groups, want about %d", n, i, size, want)
			}
		}
		if want := groups / (n + 1); moved < want*9/10 || moved > want*11/10 {
			t.Errorf("%d->%d shards: %d groups moved, want about %d", n, n+1, moved, want)
		}
	}
}

func TestParseShard(t *testing.T) {
	t.Setenv("POD_NAME", "kafka-rebalance-exporter-2")
	if s, err := parseShard(3, "auto"); err != nil || s != (Shard{Index: 2, Count: 3}) {
		t.Fatalf("auto from POD_NAME: %+v %v", s, err)
	}
	for _, c := range []struct {
		count int
		index string
	}{{0, "0"}, {3, "3"}, {3, "-1"}, {3, "x"}} {
		if _, err := parseShard(c.count, c.index); err == nil {
			t.Errorf("SHARDS=%d SHARD=%s accepted", c.count, c.index)
		}
	}
	t.Setenv("POD_NAME", "no-ordinal")
	if _, err := parseShard(3, "auto"); err == nil {
		t.Error("auto accepted a pod name without an ordinal")
	}
}

// The default filter lets every name through, one with a newline too.
func TestDefaultFilterMatchesEveryName(t *testing.T) {
	re, err := compile("GROUP_INCLUDE", ".*")
	if err != nil {
		t.Fatal(err)
	}
	f := Filters{GroupInclude: re, Shard: Shard{Count: 1}}
	for _, name := range []string{"plain", "multi\nline", "\n", "tab\tand\r"} {
		if !f.Group(name) {
			t.Errorf("%q filtered out by the default filter", name)
		}
	}
}
