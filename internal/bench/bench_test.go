package bench

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"math"
	"net/http"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func requestFrame(key int16, corr int32, client string, body int) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(2+2+4+2+len(client)+body))
	b = binary.BigEndian.AppendUint16(b, uint16(key))
	b = binary.BigEndian.AppendUint16(b, 3)
	b = binary.BigEndian.AppendUint32(b, uint32(corr))
	b = binary.BigEndian.AppendUint16(b, uint16(len(client)))
	b = append(b, client...)
	return append(b, make([]byte, body)...)
}

func responseFrame(corr int32, body int) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(4+body))
	b = binary.BigEndian.AppendUint32(b, uint32(corr))
	return append(b, make([]byte, body)...)
}

// The framer finds every frame whatever the read boundaries, and responses
// are attributed to their request's client and key.
func TestCountingConnFraming(t *testing.T) {
	for _, chunk := range []int{1, 3, 7, 64, 1 << 20} {
		w := NewWireCounter()
		c := &countingConn{w: w, inflight: map[int32]WireKey{}}
		c.in.onFrame, c.out.onFrame = c.request, c.response
		var in, out []byte
		in = append(in, requestFrame(16, 1, "kre", 10)...)
		in = append(in, requestFrame(15, 2, "kre", 300)...)
		in = append(in, requestFrame(1, 3, "other-client", 0)...)
		out = append(out, responseFrame(1, 50)...)
		out = append(out, responseFrame(2, 5000)...)
		out = append(out, responseFrame(3, 7)...)
		for i := 0; i < len(in); i += chunk {
			c.in.feed(in[i:min(i+chunk, len(in))])
		}
		for i := 0; i < len(out); i += chunk {
			c.out.feed(out[i:min(i+chunk, len(out))])
		}
		got := w.Snapshot()
		want := map[WireKey]Traffic{
			{"kre", 16}:         {1, int64(len(requestFrame(16, 1, "kre", 10))), 4 + 4 + 50},
			{"kre", 15}:         {1, int64(len(requestFrame(15, 2, "kre", 300))), 4 + 4 + 5000},
			{"other-client", 1}: {1, int64(len(requestFrame(1, 3, "other-client", 0))), 4 + 4 + 7},
		}
		if len(got) != len(want) {
			t.Fatalf("chunk %d: got %v, want %v", chunk, got, want)
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("chunk %d: %v = %+v, want %+v", chunk, k, got[k], v)
			}
		}
	}
}

// A world of a few groups is built in kfake, and a request to it is
// counted at the brokers by client and key, in both directions, and by
// the control hook.
func TestWorldCounts(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	w, err := StartWorld(ctx, WorldOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	spec := WorldSpec{Groups: 5, Topics: 2, Partitions: 3, TopicsPerGroup: 2}
	if err := w.Grow(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if err := w.Grow(ctx, WorldSpec{Groups: 8, Topics: 2, Partitions: 3, TopicsPerGroup: 2}); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(w.Addrs()...), kgo.ClientID("probe"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctlBefore := w.Control.Snapshot()[int16(kmsg.ListGroups)]
	listed, err := kadm.NewClient(cl).ListGroups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(listed.Groups()); n != 8 {
		t.Fatalf("listed %d groups, want 8", n)
	}
	lg := w.Wire.Snapshot()[WireKey{"probe", int16(kmsg.ListGroups)}]
	if lg.Requests != 3 || lg.ReqBytes <= 0 || lg.RespBytes <= 0 {
		t.Fatalf("ListGroups of probe at the brokers: %+v, want 3 requests (one per broker) with bytes", lg)
	}
	if d := w.Control.Snapshot()[int16(kmsg.ListGroups)] - ctlBefore; d != 3 {
		t.Fatalf("control hook saw %d ListGroups, want 3", d)
	}
	commits := w.Wire.Snapshot()[WireKey{clientWorld, int16(kmsg.OffsetCommit)}]
	if commits.Requests != 8 {
		t.Fatalf("%d offset commits, want one per group (8)", commits.Requests)
	}
}

func TestParseSample(t *testing.T) {
	s, ok := ParseSample([]byte(`kafka_consumergroup_lag{consumergroup="g,{x}",partition="1",topic="t\"q"} 12 1700000000000`))
	if !ok || s.Name != "kafka_consumergroup_lag" || s.Value != 12 || s.Label("consumergroup") != "g,{x}" || s.Label("topic") != `t"q` || s.Label("partition") != "1" || s.Label("nope") != "" {
		t.Fatalf("got %+v %v", s, ok)
	}
	if _, ok := ParseSample([]byte("# TYPE x gauge")); ok {
		t.Fatal("comment parsed")
	}
	if s, ok := ParseSample([]byte("go_goroutines 7")); !ok || s.Value != 7 || s.Labels != "" {
		t.Fatalf("got %+v %v", s, ok)
	}
}

func gz(t *testing.T, s string) []byte {
	var b bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&b, gzip.BestSpeed)
	if _, err := zw.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// The live metrics are found in the last gzip member of a body.
func TestLiveFigures(t *testing.T) {
	body := append(gz(t, "kafka_consumergroup_lag{consumergroup=\"a\"} 1\n"), gz(t,
		"go_memstats_heap_inuse_bytes 1.5e+07\nkafka_rebalance_exporter_snapshot_age_seconds{loop=\"groups\"} 0.5\nkafka_rebalance_exporter_snapshot_age_seconds{loop=\"offsets\"} 4.25\n# EOF\n")...)
	heap, g, o := liveFigures(body, true)
	if heap != 1.5e7 || g != 0.5 || o != 4.25 {
		t.Fatalf("got %v %v %v", heap, g, o)
	}
	if heap, _, _ := liveFigures([]byte("garbage"), true); !math.IsNaN(heap) {
		t.Fatalf("got %v from garbage", heap)
	}
}

// The first scrape of each snapshot is cold; snapshots are told apart by
// their poll times.
func TestSummarise(t *testing.T) {
	t0 := time.Unix(1000, 0)
	sample := func(at, lat float64, polledAt float64) ScrapeSample {
		start := t0.Add(time.Duration(at * float64(time.Second)))
		end := float64(start.UnixNano())/1e9 + lat
		return ScrapeSample{Start: start, Latency: time.Duration(lat * float64(time.Second)), Header: time.Duration(lat * float64(time.Second)), Status: http.StatusOK, Bytes: 10,
			Heap: 1, GroupsAge: end - polledAt, OffsetsAge: end - 990}
	}
	st := Summarise([]ScrapeSample{
		sample(0, 0.2, 999.9), sample(0.3, 0.01, 999.9), sample(0.4, 0.01, 999.9),
		sample(2.1, 0.25, 1001.9), sample(2.4, 0.01, 1001.9),
		{Start: t0.Add(3 * time.Second), Status: http.StatusServiceUnavailable},
	})
	if st.OK != 5 || st.Rejected != 1 || st.ColdN != 2 || st.WarmN != 3 || st.Snapshots != 2 {
		t.Fatalf("got %+v", st)
	}
	if st.ColdP50 < 0.19 || st.WarmP50 > 0.02 || st.P50 != 0.01 || st.Max != 0.25 {
		t.Fatalf("got %+v", st)
	}
}

func TestParseWorld(t *testing.T) {
	w, err := ParseWorld("2000x50x20x2")
	if err != nil || w.GroupPartitions() != 80000 || w.String() != "2000x50x20x2" {
		t.Fatalf("got %+v %v", w, err)
	}
	if w, _ := ParseWorld("10000x100x10"); w.GroupPartitions() != 100000 || w.String() != "10000x100x10" {
		t.Fatalf("got %+v", w)
	}
	for _, bad := range []string{"", "10x10", "0x1x1", "5x2x3x3", "axbxc"} {
		if _, err := ParseWorld(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	// Every topic gets as many groups.
	per := map[int]int{}
	for g := range w.Groups {
		for _, tp := range w.GroupTopics(g) {
			per[tp]++
		}
	}
	if len(per) != 50 || per[0] != 80 || per[49] != 80 {
		t.Fatalf("groups per topic: %v", per)
	}
}

func TestIntervalsFromConfigDefaults(t *testing.T) {
	o, g := Intervals(nil)
	if o != 10*time.Second || g != 2*time.Second {
		t.Fatalf("defaults %s %s", o, g)
	}
	if o, _ := Intervals([]string{"KRE_POLL_INTERVAL=3s"}); o != 3*time.Second {
		t.Fatalf("override %s", o)
	}
}

func TestMarshalJSONNaN(t *testing.T) {
	b, err := MarshalJSON(map[string]any{"r": &Result{ReadyAfter: math.NaN(), Groups: 3}, "x": []float64{1, math.Inf(1)}})
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{`"ready_after_seconds": null`, `"groups": 3`, `null`} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("%s lacks %s", s, want)
		}
	}
}

func TestJSONRoundTrip(t *testing.T) {
	in := Saved{Command: "x", Options: Options{Idle: time.Minute, Concurrency: []int{1, 4}}, Results: []*Result{{
		Name: "b", ReadyAfter: math.NaN(), ServedAfter: 1.5, Phases: []PhaseStats{{Scrapers: 4, P50: 0.01, WarmP50: math.NaN()}},
		Kafka: KafkaStats{ByKey: map[string]Traffic{"ListGroups": {3, 10, 20}}}, Paced: &PhaseStats{Every: 2.1},
	}}}
	b, err := MarshalJSON(in)
	if err != nil {
		t.Fatal(err)
	}
	var out Saved
	if err := UnmarshalJSON(b, &out); err != nil {
		t.Fatal(err)
	}
	r := out.Results[0]
	if out.Command != "x" || out.Options.Idle != time.Minute || len(out.Options.Concurrency) != 2 || r.Name != "b" ||
		!math.IsNaN(r.ReadyAfter) || r.ServedAfter != 1.5 || r.Phases[0].P50 != 0.01 || !math.IsNaN(r.Phases[0].WarmP50) ||
		r.Kafka.ByKey["ListGroups"] != (Traffic{3, 10, 20}) || r.Paced == nil || r.Paced.Every != 2.1 {
		t.Fatalf("round trip: %+v / %+v", out, r)
	}
}
