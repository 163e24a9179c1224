package rebalance

import (
	"testing"
	"time"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/cluster"
)

// fuzzBytes hands out fuzz input one byte at a time, then zeros.
type fuzzBytes []byte

func (b *fuzzBytes) next() byte {
	if len(*b) == 0 {
		return 0
	}
	v := (*b)[0]
	*b = (*b)[1:]
	return v
}

func (b *fuzzBytes) partitions() cluster.Assignment {
	mask := b.next()
	var a cluster.Assignment
	for p := int32(0); p < 6; p++ {
		if mask&(1<<p) != 0 {
			if a == nil {
				a = cluster.Assignment{}
			}
			t := "t0"
			if p >= 3 {
				t = "t1"
			}
			a[t] = append(a[t], p)
		}
	}
	return a
}

var fuzzStates = append([]string{""}, cluster.AllStates...)

// fuzzGroup builds a group from a small pool of members, states and
// epochs, so that sequences revisit the same members and generations.
func (b *fuzzBytes) group(name string) *cluster.Group {
	g := &cluster.Group{Name: name, Type: cluster.GroupTypeClassic, ProtocolType: "consumer"}
	kind := b.next()
	if kind&1 == 1 {
		g.Type = cluster.GroupTypeConsumer
	}
	g.State = fuzzStates[int(b.next())%len(fuzzStates)]
	g.GroupEpoch = int32(b.next()%12) - 1
	g.AssignmentEpoch = int32(b.next()%12) - 1
	for n := int(b.next() % 5); n > 0; n-- {
		id := b.next()
		m := cluster.Member{
			MemberID:    string(rune('a' + id%6)),
			ClientID:    "c",
			Generation:  int32(b.next()%10) - 2,
			MemberEpoch: int32(b.next()%12) - 1,
			Assignment:  b.partitions(),
		}
		if id&0x40 != 0 {
			m.InstanceID = string(rune('p' + id%3))
		}
		if g.Type == cluster.GroupTypeConsumer {
			m.TargetAssignment = b.partitions()
		}
		g.Members = append(g.Members, m)
	}
	return g
}

// FuzzTracker feeds random observation sequences and checks invariants
// that must hold whatever the input: no panic, counters never go down for a
// group that stays tracked, a rebalance in progress never started after the
// observation that reports it, bounded history, well-formed histograms.
func FuzzTracker(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{4, 1, 0, 4, 6, 6, 2, 1, 4, 3, 3, 9, 4, 1, 0, 4, 6, 6, 2, 1, 5, 4, 3, 9})
	f.Add([]byte{4, 1, 0, 4, 5, 5, 1, 0, 3, 0, 3, 4, 1, 1, 4, 5, 5, 1, 0, 3, 0, 3, 255, 1, 1, 2, 1, 1, 0})
	f.Add([]byte{3, 1, 2, 2, 4, 3, 3, 2, 1, 5, 1, 7, 3, 1, 2, 2, 7, 3, 3, 2, 1, 5, 1, 7, 8, 1, 2, 4, 1, 1, 1, 0, 64, 70, 1, 9, 1})
	f.Add([]byte("the quick brown fox jumps over the lazy consumer group while it rebalances"))
	f.Add([]byte{2, 1, 1, 3, 7, 7, 4, 0, 2, 2, 7, 1, 3, 2, 3, 7, 2, 255, 0, 1, 1, 6, 6, 1, 2, 4, 4, 3, 2, 1, 1, 4, 8, 8, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		in := fuzzBytes(data)
		const historySize = 3
		tr := NewTracker(Options{HistorySize: historySize})
		names := []string{"g0", "g1", "g2"}
		now := t0
		latest := now
		prev := map[string]GroupStats{}
		for i := 0; i < 64 && len(in) > 0; i++ {
			// Mostly forward in steps of 0..7.5 s; now and then backwards.
			if step := in.next(); step == 255 {
				now = now.Add(-time.Second)
			} else {
				now = now.Add(time.Duration(step%16) * 500 * time.Millisecond)
			}
			obs := &cluster.GroupsObservation{Time: now, Groups: map[string]*cluster.Group{}}
			for _, name := range names {
				switch in.next() % 6 {
				case 0: // absent
				case 1:
					obs.Groups[name] = nil
				default:
					obs.Groups[name] = in.group(name)
				}
			}
			events := tr.Observe(obs)
			if !now.Before(latest) {
				latest = now
			}
			for _, e := range events {
				if _, ok := obs.Groups[e.Group]; !ok {
					t.Fatalf("event for group %q absent from the observation", e.Group)
				}
				if e.DurationKnown && e.Duration < 0 {
					t.Fatalf("negative duration %v", e.Duration)
				}
				if len(e.Joined) > e.JoinedCount || len(e.Left) > e.LeftCount || len(e.Rejoined) > e.RejoinedCount {
					t.Fatalf("event member lists longer than their counts: %+v", e)
				}
			}
			stats := tr.Stats()
			for name, st := range stats {
				checkStats(t, st, latest, historySize)
				if p, ok := prev[name]; ok {
					if st.Rebalances < p.Rebalances || st.MemberJoins < p.MemberJoins || st.MemberLeaves < p.MemberLeaves ||
						st.PartitionOwnerChanges < p.PartitionOwnerChanges ||
						st.Durations.Count < p.Durations.Count {
						t.Fatalf("group %s: a counter decreased: before %+v after %+v", name, p, st)
					}
					if !st.LastRebalance.IsZero() && st.LastRebalance.Before(p.LastRebalance) {
						t.Fatalf("group %s: LastRebalance went back from %v to %v", name, p.LastRebalance, st.LastRebalance)
					}
				}
			}
			prev = stats
		}
	})
}

func checkStats(t *testing.T, st GroupStats, latest time.Time, historySize int) {
	t.Helper()
	if st.Rebalancing && st.RebalanceStarted.After(st.ObservedAt) {
		t.Fatalf("group %s: rebalance started %v after the observation %v", st.Group, st.RebalanceStarted, st.ObservedAt)
	}
	if st.ObservedAt.After(latest) {
		t.Fatalf("group %s: observed at %v, after the latest accepted observation %v", st.Group, st.ObservedAt, latest)
	}
	if st.RebalanceInProgress() < 0 {
		t.Fatalf("group %s: negative in-progress duration", st.Group)
	}
	if st.GenerationKnown == (st.GenerationSource == "") {
		t.Fatalf("group %s: GenerationKnown=%v with source %q", st.Group, st.GenerationKnown, st.GenerationSource)
	}
	if len(st.History) > historySize {
		t.Fatalf("group %s: %d events kept, limit %d", st.Group, len(st.History), historySize)
	}
	h := st.Durations
	if len(h.CumulativeCounts) != len(DurationBuckets) {
		t.Fatalf("group %s: %d buckets", st.Group, len(h.CumulativeCounts))
	}
	for i := 1; i < len(h.CumulativeCounts); i++ {
		if h.CumulativeCounts[i] < h.CumulativeCounts[i-1] {
			t.Fatalf("group %s: buckets not cumulative: %v", st.Group, h.CumulativeCounts)
		}
	}
	if n := len(h.CumulativeCounts); n > 0 && h.CumulativeCounts[n-1] > h.Count {
		t.Fatalf("group %s: bucket count above total: %v > %d", st.Group, h.CumulativeCounts, h.Count)
	}
	if h.Sum < 0 {
		t.Fatalf("group %s: negative duration sum %v", st.Group, h.Sum)
	}
}
