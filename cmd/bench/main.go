// Command bench is the exporter's scale benchmark: it builds Kafka worlds
// in-process (kfake), runs the real exporter binary against each as a child
// process, and reports poll wall time, Kafka requests and bytes per poll
// (counted at the brokers), CPU per cycle and idle CPU per minute, peak RSS
// and heap, series and bytes exported, scrape latency with 1, 4 and 50
// concurrent scrapers, and the time until every group is served — as
// Markdown tables on stdout and, with -doc, as docs/performance.md.
//
//	go run ./cmd/bench                      # the standard set, ~15–20 min
//	go run ./cmd/bench -quick               # small worlds, 1–2 min
//	go run ./cmd/bench -world 2000x50x20x2  # one world
//
// scripts/bench.sh runs the standard set and rewrites docs/performance.md.
// Everything listens on loopback; every phase is bounded in time and count
// and the whole run by -timeout. The measurements read /proc: Linux only.
// See package internal/bench for what is measured and how.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/bench"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var worlds, env listFlag
	fs.Var(&worlds, "world", "a world to measure fully, GROUPSxTOPICSxPARTITIONS[xTOPICS_PER_GROUP] (repeatable); default: the standard set")
	fs.Var(&env, "env", "extra exporter environment, KRE_NAME=value (repeatable), for every exporter run")
	quick := fs.Bool("quick", false, "small worlds and short windows: a 1–2 minute run")
	curve := fs.String("curve", "", "curve points (groups, comma-separated) over -curve-shape; default 100,500,1000,2000,5000,10000 with the standard set, none with -world")
	curveShape := fs.String("curve-shape", "100x10", "TOPICSxPARTITIONS[xTOPICS_PER_GROUP] of the curve's worlds")
	exporter := fs.String("exporter", "", "exporter binary to run (default: build ./cmd/exporter)")
	doc := fs.String("doc", "", "write the performance document here (e.g. docs/performance.md)")
	jsonOut := fs.String("json", "", "write the raw results as JSON here")
	gobench := fs.Bool("gobench", false, "also run the repository's Go benchmarks and quote them in -doc")
	workdir := fs.String("workdir", "", "directory for exporter logs and perf data (default: a temporary one, removed unless -keep)")
	keep := fs.Bool("keep", false, "keep the work directory")
	perf := fs.Bool("perf", false, "perf record the exporter during the idle window and the 4-scraper load of the profiled world (the largest)")
	fromJSON := fs.String("from-json", "", "measure nothing: print the tables (and -doc) of a run saved with -json")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the benchmark process itself (brokers, workload, scrapers)")
	timeout := fs.Duration("timeout", 0, "bound on the whole run (default 45m, which only a busy machine needs; -quick 5m)")
	idle := fs.Duration("idle", 0, "idle window of fully measured worlds, a multiple of the offsets poll interval (default 60s; -quick 10s)")
	curveIdle := fs.Duration("curve-idle", 0, "idle window of curve points (default 20s; -quick 10s)")
	splitIdle := fs.Duration("split-idle", 0, "idle window of the groups-only run that splits CPU between the loops (default 20s)")
	phase := fs.Duration("phase", 0, "length of one scrape load (default 20s; -quick 3s)")
	curvePhase := fs.Duration("curve-phase", 0, "length of one scrape load at curve points (default 10s; -quick 2s)")
	maxScrapes := fs.Int("max-scrapes", 2000, "scrapes per load at most")
	scrapers := fs.String("scrapers", "1,4,50", "concurrent scrapers of the loads against the default limit")
	curveScrapers := fs.String("curve-scrapers", "1,4", "concurrent scrapers of the loads at curve points")
	high := fs.Int("high", 50, "also run this many scrapers against an exporter with KRE_WEB_MAX_SCRAPES of the same value (0: skip)")
	split := fs.Bool("split", true, "split CPU between the loops with a third, groups-only exporter (not with -quick)")
	warm := fs.Int("warm-polls", 0, "offsets polls before measuring (default 3; -quick 2)")
	quietLimit := fs.Float64("quiet", 0.25, "before each world, wait until other processes use fewer cores than this (0: don't wait)")
	quietWait := fs.Duration("quiet-wait", 2*time.Minute, "longest wait for a quiet machine per world")
	retries := fs.Int("retries", 1, "measure a world again (this often) when other processes were busy during its measurement (default 1; -quick 0)")
	live := fs.Bool("live", true, "run the demo workload's live consumer groups in every world")
	produceRate := fs.Int("produce-rate", 100, "records per second produced over each world's partitions")
	liveRate := fs.Int("live-rate", 50, "records per second of the live workload")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: bench [flags]\n\nThe exporter's scale benchmark (see internal/bench). Flags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "unexpected arguments: %v\n", fs.Args())
		return 2
	}

	o := bench.Options{
		Env: env, Idle: 60 * time.Second, CurveIdle: 20 * time.Second, SplitIdle: 20 * time.Second,
		Phase: 20 * time.Second, CurvePhase: 10 * time.Second, MaxScrapes: *maxScrapes, High: *high,
		Split: *split, WarmPolls: 3, Perf: *perf, Progress: stderr, QuietLimit: *quietLimit, QuietWait: *quietWait, Retries: *retries,
		World: bench.WorldOptions{ProduceRate: *produceRate, Live: *live, LiveRate: *liveRate, Log: zerolog.Nop()},
	}
	total := 45 * time.Minute
	if *quick {
		o.Idle, o.CurveIdle, o.Phase, o.CurvePhase, o.WarmPolls, o.Split = 10*time.Second, 10*time.Second, 3*time.Second, 2*time.Second, 2, false
		total = 5 * time.Minute
	}
	setDur := func(dst *time.Duration, v time.Duration) {
		if v > 0 {
			*dst = v
		}
	}
	setDur(&o.Idle, *idle)
	setDur(&o.CurveIdle, *curveIdle)
	setDur(&o.SplitIdle, *splitIdle)
	setDur(&o.Phase, *phase)
	setDur(&o.CurvePhase, *curvePhase)
	setDur(&total, *timeout)
	if *warm > 0 {
		o.WarmPolls = *warm
	}
	if *quick {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["quiet-wait"] {
			o.QuietWait = 15 * time.Second
		}
		if !set["retries"] {
			o.Retries = 0
		}
	}
	var err error
	if o.Concurrency, err = ints(*scrapers); err != nil {
		fmt.Fprintln(stderr, "-scrapers:", err)
		return 2
	}
	if o.CurveConcurrency, err = ints(*curveScrapers); err != nil {
		fmt.Fprintln(stderr, "-curve-scrapers:", err)
		return 2
	}
	for _, kv := range env {
		if !strings.HasPrefix(kv, "KRE_") || !strings.Contains(kv, "=") {
			fmt.Fprintf(stderr, "-env %q: want KRE_NAME=value\n", kv)
			return 2
		}
	}
	if *fromJSON != "" {
		b, err := os.ReadFile(*fromJSON)
		var saved bench.Saved
		if err == nil {
			err = bench.UnmarshalJSON(b, &saved)
		}
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		if !report(saved, "", *doc, stdout, stderr) {
			return 1
		}
		return 0
	}
	steps, err := plan(worlds, *curve, *curveShape, *quick)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, total)
	defer cancel()

	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}

	root, err := bench.ModuleRoot()
	if err != nil && (*exporter == "" || *gobench) {
		fmt.Fprintln(stderr, err)
		return 1
	}
	o.WorkDir = *workdir
	if o.WorkDir == "" {
		if o.WorkDir, err = os.MkdirTemp("", "kre-bench-"); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		if !*keep {
			defer os.RemoveAll(o.WorkDir)
		}
	} else if err := os.MkdirAll(o.WorkDir, 0o755); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	o.Exporter = *exporter
	if o.Exporter == "" {
		fmt.Fprintf(stderr, "building ./cmd/exporter\n")
		if o.Exporter, err = bench.BuildExporter(ctx, root, o.WorkDir); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
	}
	if o.Exporter, err = filepath.Abs(o.Exporter); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}

	started := time.Now()
	saved := bench.Saved{Machine: bench.DescribeMachine(), Command: "go run ./cmd/bench " + bench.ShellQuote(args), Quick: *quick, Options: o}
	r := bench.NewRunner(o)
	failed := false
	for _, st := range steps {
		if ctx.Err() != nil {
			fmt.Fprintf(stderr, "stopping: %v\n", context.Cause(ctx))
			failed = true
			break
		}
		res, err := r.Run(ctx, st)
		if err != nil {
			fmt.Fprintf(stderr, "[%s] %v\n", st.Name, err)
			failed = true
			continue
		}
		saved.Results = append(saved.Results, res)
		if len(res.Errors) > 0 {
			failed = true
		}
	}
	r.Close()

	if *gobench && ctx.Err() == nil {
		fmt.Fprintf(stderr, "running the Go benchmarks\n")
		saved.GoBench = bench.RunGoBenchmarks(ctx, root)
	}
	saved.Seconds = time.Since(started).Seconds()
	if !report(saved, *jsonOut, *doc, stdout, stderr) {
		failed = true
	}
	if *keep {
		fmt.Fprintf(stderr, "work directory: %s\n", o.WorkDir)
	}
	fmt.Fprintf(stderr, "done in %s\n", time.Since(started).Round(time.Second))
	if failed {
		return 1
	}
	return 0
}

// report prints the tables and writes the JSON and the document.
func report(saved bench.Saved, jsonOut, doc string, stdout, stderr io.Writer) bool {
	ok := true
	fmt.Fprintf(stdout, "## Targets of issue 10\n\n")
	bench.WriteTargets(stdout, bench.Targets(saved.Results))
	fmt.Fprintln(stdout)
	bench.WriteTables(stdout, saved.Results)
	if jsonOut != "" {
		b, err := bench.MarshalJSON(saved)
		if err == nil {
			err = os.WriteFile(jsonOut, b, 0o644)
		}
		if err != nil {
			fmt.Fprintln(stderr, err)
			ok = false
		}
	}
	if doc != "" {
		d := bench.Doc{Machine: saved.Machine, Command: saved.Command, Wrapper: "./scripts/bench.sh", Quick: saved.Quick,
			Options: saved.Options, Results: saved.Results, GoBench: saved.GoBench, Duration: time.Duration(saved.Seconds * float64(time.Second))}
		if err := bench.WriteDoc(doc, d); err != nil {
			fmt.Fprintln(stderr, err)
			ok = false
		} else {
			fmt.Fprintf(stderr, "wrote %s\n", doc)
		}
	}
	return ok
}

// plan is the list of worlds to measure.
func plan(worlds []string, curve, shape string, quick bool) ([]bench.Step, error) {
	var steps []bench.Step
	for i, w := range worlds {
		spec, err := bench.ParseWorld(w)
		if err != nil {
			return nil, err
		}
		steps = append(steps, bench.Step{Name: fmt.Sprintf("w%d", i+1), Spec: spec, Full: true, Profile: i == len(worlds)-1 && curve == ""})
	}
	if len(worlds) == 0 && !quick {
		a, _ := bench.ParseWorld("100x1x1000")
		b, _ := bench.ParseWorld("2000x50x20x2")
		steps = append(steps, bench.Step{Name: "a", Spec: a, Full: true}, bench.Step{Name: "b", Spec: b, Full: true})
		if curve == "" {
			curve = "100,500,1000,2000,5000,10000"
		}
	}
	if len(worlds) == 0 && quick {
		if curve == "" {
			curve = "50,200,500"
		}
		if shape == "100x10" {
			shape = "20x10"
		}
	}
	if curve == "" {
		return steps, nil
	}
	points, err := ints(curve)
	if err != nil {
		return nil, fmt.Errorf("-curve: %w", err)
	}
	for i, n := range points {
		spec, err := bench.ParseWorld(fmt.Sprintf("%dx%s", n, shape))
		if err != nil {
			return nil, fmt.Errorf("-curve-shape: %w", err)
		}
		last := i == len(points)-1
		name := fmt.Sprintf("curve-%d", n)
		// The largest point of the standard curve is world c of issue 10:
		// 10,000 groups, 100,000 group-partitions.
		if last && spec.Groups == 10000 && spec.GroupPartitions() == 100000 {
			name = "c"
		}
		steps = append(steps, bench.Step{Name: name, Spec: spec, Grow: i > 0, Curve: true, Full: last, Profile: last})
	}
	return steps, nil
}

func ints(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%q is not a positive number", f)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, errors.New("empty list")
	}
	return out, nil
}
