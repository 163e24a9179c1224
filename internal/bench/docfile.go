package bench

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// Doc is what docs/performance.md is written from.
type Doc struct {
	Machine  Machine
	Command  string // the benchmark's command line
	Wrapper  string // the one-liner that runs the standard set
	Quick    bool
	Options  Options
	Results  []*Result
	GoBench  []GoBench
	Duration time.Duration
}

// Saved is a run as -json writes it and -from-json reads it back.
type Saved struct {
	Machine Machine   `json:"machine"`
	Command string    `json:"command"`
	Quick   bool      `json:"quick"`
	Seconds float64   `json:"duration_seconds"`
	Options Options   `json:"options"`
	Results []*Result `json:"results"`
	GoBench []GoBench `json:"go_benchmarks"`
}

// Notes are kept across regenerations: the text between these markers in
// the existing file is carried over.
const (
	notesBegin = "<!-- notes: kept when the benchmark rewrites this file -->"
	notesEnd   = "<!-- end of notes -->"
)

// WriteDoc writes the performance document to path, keeping its notes.
func WriteDoc(path string, d Doc) error {
	notes := "_No notes yet._"
	if old, err := os.ReadFile(path); err == nil {
		if i := bytes.Index(old, []byte(notesBegin)); i >= 0 {
			rest := old[i+len(notesBegin):]
			if j := bytes.Index(rest, []byte(notesEnd)); j >= 0 {
				notes = strings.TrimSpace(string(rest[:j]))
			}
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	var b bytes.Buffer
	d.write(&b, notes)
	return os.WriteFile(path, b.Bytes(), 0o644)
}

func (d Doc) write(w io.Writer, notes string) {
	o := d.Options
	fmt.Fprintf(w, "# Performance\n\n")
	fmt.Fprintf(w, "Measured by the benchmark command `cmd/bench` (package `internal/bench`) on %s; this file is\n", d.Machine.Started[:10])
	fmt.Fprintf(w, "written by it (`-doc`), except the notes at the end, which it keeps.")
	if d.Quick {
		fmt.Fprintf(w, " **This is a `-quick` run: small worlds and short windows, a smoke test of the benchmark, not the figures of record.**")
	}
	fmt.Fprintf(w, "\n\n")
	fmt.Fprintf(w, "The benchmark builds Kafka worlds in its own process (kfake, three brokers, loopback), runs the real\n")
	fmt.Fprintf(w, "exporter binary against each as a child process with default settings, and measures that process from\n")
	fmt.Fprintf(w, "the outside: CPU and memory from `/proc/<pid>`, Kafka requests and bytes at the brokers, series and bytes\n")
	fmt.Fprintf(w, "from a scrape parsed with expfmt, scrape latency with concurrent scrapers sending what Prometheus 2.42\n")
	fmt.Fprintf(w, "sends. The run took %s.\n\n", d.Duration.Round(time.Second))

	fmt.Fprintf(w, "## Run it\n\n```sh\n%s\n```\n\n", d.Wrapper)
	fmt.Fprintf(w, "runs the standard set (about 15–20 minutes on the machine below) and rewrites this file; `./scripts/bench.sh -quick`\n")
	fmt.Fprintf(w, "takes 1–2 minutes (small worlds, for trying the benchmark, printing the tables only); one world:\n\n")
	fmt.Fprintf(w, "```sh\ngo run ./cmd/bench -world 2000x50x20x2\n```\n\n")
	fmt.Fprintf(w, "A world is `GROUPSxTOPICSxPARTITIONS[xTOPICS_PER_GROUP]`. `go run ./cmd/bench -help` lists every flag\n")
	fmt.Fprintf(w, "(windows, scrapers, extra exporter settings with `-env KRE_...=...`, `-perf` for a `perf record` of the exporter,\n")
	fmt.Fprintf(w, "`-json` to save the raw results; `-from-json FILE -doc docs/performance.md` rewrites this file from saved results\n")
	fmt.Fprintf(w, "without measuring).\n\n")
	fmt.Fprintf(w, "This run:\n\n```sh\n%s\n```\n\n", d.Command)

	fmt.Fprintf(w, "## Machine\n\n")
	fmt.Fprintf(w, "- `nproc`: %s\n- CPU: %s\n- kernel: %s\n- Go: %s; kfake %s; sarama %s (the exporter's client)\n\n", d.Machine.Nproc, d.Machine.CPU, d.Machine.Kernel, d.Machine.Go, d.Machine.KFake, d.Machine.Sarama)
	fmt.Fprintf(w, "```text\n$ free -h\n%s\n```\n\n", d.Machine.Free)
	fmt.Fprintf(w, "The machine is shared: before each world the benchmark waits (up to %s) until other processes use less\n", o.QuietWait)
	fmt.Fprintf(w, "than %.2f cores, and it records what they used during each measurement (\"other processes\", from\n", o.QuietLimit)
	fmt.Fprintf(w, "`/proc/stat` minus the benchmark and the exporter); figures taken while they used more than %.1f cores are\n", Busy)
	fmt.Fprintf(w, "marked ⚠ — the exporter's own CPU and memory stand, its latencies and wall times do not.\n\n")
	fmt.Fprintf(w, "The brokers, the live consumers, the producer and the scrapers share the two cores with the exporter\n")
	fmt.Fprintf(w, "(the exporter is a process of its own, so its CPU and memory figures are its own, but its poll wall times\n")
	fmt.Fprintf(w, "include the time kfake, single-threaded, takes to answer).\n\n")

	fmt.Fprintf(w, "## Worlds\n\n")
	fmt.Fprintf(w, "Every world is a fresh three-broker kfake cluster holding:\n\n")
	fmt.Fprintf(w, "- the world's groups, named `bench-gNNNNN`, each of which committed offsets with kadm on every partition of\n")
	fmt.Fprintf(w, "  its topics (`bench-tNNN`) and has **no members** (state Empty), as on clusters full of idle or\n")
	fmt.Fprintf(w, "  finished consumers; committed offsets lie between 0 and %d, so most partitions lag;\n", initialRecords)
	fmt.Fprintf(w, "- %d initial records per partition, then a background producer spreading %d records/s round-robin over\n", initialRecords, o.World.ProduceRate)
	fmt.Fprintf(w, "  the world's partitions, so log ends move and lag in seconds has history;\n")
	if o.World.Live {
		fmt.Fprintf(w, "- the demo workload's **live groups** (`internal/demo`, %d records/s of its own): `demo-fast` and `demo-slow`\n", o.World.LiveRate)
		fmt.Fprintf(w, "  (sarama, cooperative-sticky, KIP-792 generations), `demo-idle` (Empty), `demo-churn-range` (sarama\n")
		fmt.Fprintf(w, "  range, no generation), `demo-churn-coop` (franz-go classic) and `demo-churn-848` (KIP-848), the churn\n")
		fmt.Fprintf(w, "  groups gaining or losing a member every minute — so DescribeGroups and ConsumerGroupDescribe decode\n")
		fmt.Fprintf(w, "  real members and the rebalance tracker sees rebalances.\n\n")
	} else {
		fmt.Fprintf(w, "- no live groups (`-live=false`).\n\n")
	}
	fmt.Fprintf(w, "| name | world | what it holds |\n|---|---|---|\n")
	for _, r := range d.Results {
		fmt.Fprintf(w, "| %s | `%s` | %s; plus %d live groups |\n", r.Name, r.World, r.Describe, len(r.LiveGroups))
	}
	fmt.Fprintf(w, "\nThe curve points share one cluster that grows between points (a fresh exporter per point).\n\n")

	fmt.Fprintf(w, "## Targets of issue 10\n\n")
	WriteTargets(w, Targets(d.Results))
	fmt.Fprintf(w, "\n## Before and now\n\n")
	fmt.Fprintf(w, "Issue 10's \"before\" figures for this exporter, measured on this machine against kfake worlds of the same size,\n")
	fmt.Fprintf(w, "beside this run. The issue's scrape figures are one full rendering per scrape; now a rendering is made once per\n")
	fmt.Fprintf(w, "snapshot and format, so a scrape that finds its snapshot rendered only writes bytes: the first scrape of a\n")
	fmt.Fprintf(w, "snapshot (what a Prometheus scraping every 15–60 s nearly always is, since the groups poll makes a new\n")
	fmt.Fprintf(w, "snapshot every 2 s) is the comparable figure.\n\n")
	WriteBefore(w, d.Results)
	fmt.Fprintf(w, "\n")

	WriteTables(w, d.Results)

	if len(d.GoBench) > 0 {
		fmt.Fprintf(w, "\n## Go benchmarks\n\n")
		fmt.Fprintf(w, "In-process benchmarks of the pieces, on the same machine, in the same run:\n\n")
		for _, g := range d.GoBench {
			fmt.Fprintf(w, "```text\n$ %s\n%s\n", g.Command, benchLines(g.Output))
			if g.Err != "" {
				fmt.Fprintf(w, "(exit: %s)\n", g.Err)
			}
			fmt.Fprintf(w, "```\n\n")
		}
	}

	fmt.Fprintf(w, "## How each figure is measured\n\n")
	fmt.Fprintf(w, "- **Start**: the exporter is started, `/readyz` polled every 50 ms, then `/metrics` (as Prometheus asks) every 200 ms until\n")
	fmt.Fprintf(w, "  every world group is in `kafka_consumergroup_info` and every committed group-partition has a\n")
	fmt.Fprintf(w, "  `kafka_consumergroup_lag`: \"all groups served\", from process start.\n")
	fmt.Fprintf(w, "- **Warm-up**: measurements start after %d offsets polls, just after one ends (seen at the brokers: the\n", o.WarmPolls)
	fmt.Fprintf(w, "  exporter's ListOffsets requests stop).\n")
	fmt.Fprintf(w, "- **Idle window** (%s for the main worlds, %s for curve points): no scrapes. CPU is utime+stime from\n", o.Idle, o.CurveIdle)
	fmt.Fprintf(w, "  `/proc/<pid>/stat`; the window is a whole number of offsets intervals (10 s), so it holds whole\n")
	fmt.Fprintf(w, "  poll cycles whatever their phase. \"CPU per cycle\" splits it: a third exporter with\n")
	fmt.Fprintf(w, "  `KRE_POLL_INTERVAL=24h` (groups polls only, %s) gives the CPU of one groups poll; the offsets poll is\n", o.SplitIdle)
	fmt.Fprintf(w, "  the rest of a 10 s period of the main run after its 5 groups polls. Poll wall times are the means of\n")
	fmt.Fprintf(w, "  `kafka_rebalance_exporter_poll_duration_seconds` over the window.\n")
	fmt.Fprintf(w, "- **Kafka requests and bytes**: counted at the brokers — a wrapper around kfake's listeners\n")
	fmt.Fprintf(w, "  (`kfake.ListenFn`) follows the protocol framing both ways, attributing each request and response frame\n")
	fmt.Fprintf(w, "  (size prefix included) to the client ID and API key of its request; a kfake control hook\n")
	fmt.Fprintf(w, "  (`Cluster.Control`, every key) counts all requests too (it sees decoded requests but neither the client\n")
	fmt.Fprintf(w, "  nor the response, hence the wrapper for bytes). The exporter runs with `KRE_CLIENT_ID=%s`; its traffic\n", ExporterClientID)
	fmt.Fprintf(w, "  over the idle window is divided by the polls of each loop (ListGroups, DescribeGroups,\n")
	fmt.Fprintf(w, "  ConsumerGroupDescribe: groups loop; Metadata, OffsetFetch, ListOffsets: offsets loop). \"Exporter's own\n")
	fmt.Fprintf(w, "  count agrees\" compares it with `kafka_rebalance_exporter_kafka_requests_total`.\n")
	fmt.Fprintf(w, "- **Memory**: peak RSS is VmHWM of `/proc/<pid>/status`, reset per phase (`/proc/<pid>/clear_refs`);\n")
	fmt.Fprintf(w, "  \"start to 4 scrapers\" is the peak from the start through the 4-scraper load, \"all loads\" through the\n")
	fmt.Fprintf(w, "  50-scraper load at the default limit, \"50 scrapers at limit 50\" the whole life of a second exporter with\n")
	fmt.Fprintf(w, "  `KRE_WEB_MAX_SCRAPES=50`, loaded after two offsets polls (its age is in the scrapes table: younger than\n")
	fmt.Fprintf(w, "  the main exporter at its loads, so with less history kept). Heap is `go_memstats_heap_inuse_bytes` from a\n")
	fmt.Fprintf(w, "  scrape. MB are 10⁶ bytes.\n")
	fmt.Fprintf(w, "- **Series and bytes**: a text-format scrape (`text/plain;version=0.0.4`) parsed with expfmt, taken after\n")
	fmt.Fprintf(w, "  every other measurement (a second format's rendering would weigh on the exporter's memory); histogram\n")
	fmt.Fprintf(w, "  buckets, `_sum` and `_count` each count as a series, as Prometheus stores them. \"OpenMetrics gzip\" is the\n")
	fmt.Fprintf(w, "  body of the Prometheus-style scrape before the idle window, as sent. Every other scrape of the benchmark\n")
	fmt.Fprintf(w, "  asks what Prometheus asks, so the exporter renders one format.\n")
	fmt.Fprintf(w, "- **Scrapes, once per snapshot**: one scraper starting a scrape every groups poll interval + 100 ms\n")
	fmt.Fprintf(w, "  (2.1 s), so nearly every scrape is the first of a new snapshot and waits for its rendering — what a\n")
	fmt.Fprintf(w, "  Prometheus scraping every 15 s or 60 s sees, and the figure comparable with issue 10's \"scrape wall\" and\n")
	fmt.Fprintf(w, "  \"CPU per scrape\" (which rendered at every scrape).\n")
	fmt.Fprintf(w, "- **Scrapes, back to back**: closed-loop scrapers (each starts its next scrape when the previous one is read to the end)\n")
	fmt.Fprintf(w, "  with Prometheus 2.42's headers (`Accept: %s`,\n", PrometheusAccept)
	fmt.Fprintf(w, "  `Accept-Encoding: gzip`), for %s or %d scrapes per load, whichever comes first (curve points: %s).\n", o.Phase, o.MaxScrapes, o.CurvePhase)
	fmt.Fprintf(w, "  Latency is until the last body byte. A 503 (over `KRE_WEB_MAX_SCRAPES`) is counted apart and the scraper\n")
	fmt.Fprintf(w, "  waits 100 ms. The live self-metrics at the end of each body (a gzip member of their own) carry the\n")
	fmt.Fprintf(w, "  poll counters, which tell the snapshot served: the first scrape of each snapshot waited for its\n")
	fmt.Fprintf(w, "  rendering, the others were served prepared bytes. CPU per scrape is the exporter's CPU during the load\n")
	fmt.Fprintf(w, "  minus its idle rate, per successful scrape; per snapshot served, it bounds one rendering.\n\n")

	fmt.Fprintf(w, "## Notes\n\n%s\n%s\n%s\n", notesBegin, notes, notesEnd)
}

// benchLines keeps the lines of go test output worth quoting.
func benchLines(out string) string {
	var keep []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "Benchmark") || strings.HasPrefix(l, "cpu:") || strings.HasPrefix(l, "pkg:") ||
			strings.HasPrefix(l, "ok") || strings.HasPrefix(l, "FAIL") || strings.HasPrefix(l, "---") || strings.HasPrefix(l, "PASS") {
			keep = append(keep, l)
		}
	}
	if len(keep) == 0 {
		return out
	}
	return strings.Join(keep, "\n")
}
