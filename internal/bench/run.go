package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/config"
)

// ExporterClientID is the client.id the benchmark gives the exporter, so
// the broker-side counters can tell its requests from everyone else's.
const ExporterClientID = "kre-bench-exporter"

// Options configure a benchmark run.
type Options struct {
	Exporter string   // the exporter binary
	Env      []string // extra exporter environment, KEY=VALUE, for every run
	WorkDir  string   // exporter logs, perf data

	Idle       time.Duration // idle window of full steps; a multiple of the offsets poll interval
	CurveIdle  time.Duration // idle window of curve-only steps
	SplitIdle  time.Duration // idle window of the offsets-only run
	Phase      time.Duration // length of one scrape load
	CurvePhase time.Duration
	MaxScrapes int // per scrape load

	Concurrency      []int // scrapers per load, full steps
	CurveConcurrency []int // scrapers per load, curve-only steps
	High             int   // full steps: a second exporter with KRE_WEB_MAX_SCRAPES=High, loaded by High scrapers (0: none)
	Split            bool  // full steps: a third exporter without groups polls, to split CPU between the loops
	WarmPolls        int   // offsets polls before measuring

	World WorldOptions
	// QuietLimit and QuietWait: before each world, wait up to QuietWait
	// until other processes use less than QuietLimit cores (0: don't).
	QuietLimit float64
	QuietWait  time.Duration
	// Retries is how often a world's main measurement is taken again
	// when other processes used more than Busy cores during it.
	Retries int
	Perf    bool // perf record the exporter during the idle window and the 4-scraper load of Profile steps

	Progress io.Writer `json:"-"`
}

// Step is one world to measure.
type Step struct {
	Name    string
	Spec    WorldSpec
	Grow    bool // build on the previous step's cluster (same topics)
	Full    bool // every load, the high-concurrency run, the split
	Curve   bool // a point of the curve
	Profile bool // perf record it (with Options.Perf)
}

// Result is everything measured on one world.
type Result struct {
	Name        string   `json:"name"`
	World       string   `json:"world"`
	Describe    string   `json:"describe"`
	Curve       bool     `json:"curve"`
	Full        bool     `json:"full"`
	Groups      int      `json:"groups"`           // built groups (committed offsets, no members)
	LiveGroups  []string `json:"live_groups"`      // workload groups with members
	GroupParts  int      `json:"group_partitions"` // of the built groups
	BuildSecs   float64  `json:"build_seconds"`
	GroupsSeen  int      `json:"groups_seen"` // kafka_consumergroup_info series
	ReadyAfter  float64  `json:"ready_after_seconds"`
	ServedAfter float64  `json:"served_after_seconds"` // every built group with every committed partition's lag
	StartupHWM  int64    `json:"startup_peak_rss_bytes"`
	// ServedTrace is what each scrape while waiting for all groups saw.
	ServedTrace []ServedCheck `json:"served_trace,omitempty"`
	PreIdleHWM  int64         `json:"pre_idle_peak_rss_bytes"` // the scrape before the idle window

	Idle   IdleStats    `json:"idle"`
	Kafka  KafkaStats   `json:"kafka"`
	Series SeriesStats  `json:"series"`
	Phases []PhaseStats `json:"phases"`
	// Paced is one scraper scraping once per groups poll interval (plus
	// 100ms), as a Prometheus does at any scrape interval longer than the
	// groups poll: nearly every scrape is the first of its snapshot.
	Paced *PhaseStats `json:"paced,omitempty"`

	PeakRSS int64 `json:"peak_rss_bytes"` // whole life of the main exporter

	High        *PhaseStats `json:"high,omitempty"` // High scrapers against KRE_WEB_MAX_SCRAPES=High
	HighPeakRSS int64       `json:"high_peak_rss_bytes,omitempty"`
	Split       *SplitStats `json:"split,omitempty"`

	// Foreign is the CPU other processes on the machine used while the
	// main exporter ran (mean cores), and before the world, what the
	// quiet wait saw last.
	Foreign       float64 `json:"foreign_cores"`
	ForeignBefore float64 `json:"foreign_cores_before"`

	Remeasured       []string `json:"remeasured,omitempty"`
	ExporterWarnings []string `json:"exporter_warnings,omitempty"`
	Perf             []string `json:"perf,omitempty"`
	Errors           []string `json:"errors,omitempty"`
}

// ServedCheck is one scrape while waiting for every group to be served:
// seconds since the start, and the world's groups and group-partitions
// with lag it held.
type ServedCheck struct {
	At              float64 `json:"at_seconds"`
	Groups          int     `json:"groups"`
	GroupPartitions int     `json:"group_partitions"`
	GroupTopics     int     `json:"group_topics"` // with kafka_consumergroup_lag_sum
}

// IdleStats are measured with no scrape running.
type IdleStats struct {
	Window       float64 `json:"window_seconds"`
	CPU          float64 `json:"cpu_seconds"`
	CPUPerMin    float64 `json:"cpu_seconds_per_minute"`
	BenchPerMin  float64 `json:"bench_cpu_seconds_per_minute"` // kfake, workload, producer (this process)
	Period       float64 `json:"period_seconds"`               // offsets poll interval
	CPUPerPeriod float64 `json:"cpu_seconds_per_period"`       // one offsets poll and the groups polls between
	GroupsPolls  float64 `json:"groups_polls"`
	OffsetsPolls float64 `json:"offsets_polls"`
	GroupsWall   float64 `json:"groups_poll_seconds"`  // mean, from poll_duration_seconds
	OffsetsWall  float64 `json:"offsets_poll_seconds"` // mean, from poll_duration_seconds
	PeakRSS      int64   `json:"peak_rss_bytes"`
	RSS          int64   `json:"rss_bytes"`
	Heap         float64 `json:"heap_inuse_bytes"` // go_memstats_heap_inuse_bytes
	PollErrors   float64 `json:"poll_errors"`
	Foreign      float64 `json:"foreign_cores"` // other processes' CPU, mean cores
}

// PerPoll is traffic per poll.
type PerPoll struct {
	Requests, ReqBytes, RespBytes float64
}

// KafkaStats is the exporter's Kafka traffic over the idle window,
// counted at the brokers.
type KafkaStats struct {
	ByKey      map[string]Traffic `json:"by_key"`       // the exporter's, on the wire
	GroupsPoll PerPoll            `json:"groups_poll"`  // ListGroups, DescribeGroups, ConsumerGroupDescribe
	OffsetPoll PerPoll            `json:"offsets_poll"` // Metadata, OffsetFetch, ListOffsets, Fetch
	Other      Traffic            `json:"other"`        // ApiVersions and the like
	// Cross-checks over the same window: requests of all clients by the
	// control hook and by the wire counter, and the exporter's own count.
	ControlAll   map[string]int64   `json:"control_all"`
	WireAll      map[string]int64   `json:"wire_all"`
	SelfReported map[string]float64 `json:"self_reported"`
}

// SeriesStats describe one text-format scrape.
type SeriesStats struct {
	Total     int            `json:"total"`
	Self      int            `json:"self"` // go_, process_ and kafka_rebalance_exporter_ series
	Families  int            `json:"families"`
	ByFamily  map[string]int `json:"by_family"`
	TextBytes int            `json:"text_bytes"`
	// The OpenMetrics scrape before the idle window: sample lines, and
	// body bytes plain and gzip-compressed as sent.
	OpenMetricsSamples int `json:"openmetrics_samples"`
	OpenMetricsBytes   int `json:"openmetrics_bytes"`
	OpenMetricsGzip    int `json:"openmetrics_gzip_bytes"`
}

// SplitStats come from an exporter whose offsets loop polls once only.
type SplitStats struct {
	Window         float64 `json:"window_seconds"`
	GroupsPolls    float64 `json:"groups_polls"`
	GroupsPerPoll  float64 `json:"groups_cpu_per_poll"`
	OffsetsPerPoll float64 `json:"offsets_cpu_per_poll"` // the main run's period minus its groups polls
	GroupsWallMean float64 `json:"groups_poll_seconds"`
}

// Intervals are the exporter's poll intervals for env: the variables in
// env, else the defaults internal/config declares.
func Intervals(env []string) (offsets, groups time.Duration) {
	get := func(field, name string) time.Duration {
		v := ""
		for _, kv := range env {
			if k, val, ok := strings.Cut(kv, "="); ok && k == name {
				v = val
			}
		}
		if v == "" {
			f, _ := reflect.TypeFor[config.Config]().FieldByName(field)
			v = f.Tag.Get("default")
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			return 0
		}
		return d
	}
	return get("PollInterval", "KRE_POLL_INTERVAL"), get("GroupPollInterval", "KRE_GROUP_POLL_INTERVAL")
}

// Runner runs steps.
type Runner struct {
	opts  Options
	world *World
}

// NewRunner returns a runner.
func NewRunner(o Options) *Runner { return &Runner{opts: o} }

func (r *Runner) logf(format string, args ...any) {
	if r.opts.Progress != nil {
		fmt.Fprintf(r.opts.Progress, "%s %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
	}
}

// Close stops the last world.
func (r *Runner) Close() {
	if r.world != nil {
		r.world.Close()
		r.world = nil
	}
}

// Run measures one step. Errors in a measurement are recorded in the
// result; the error return is for a world that could not be built.
func (r *Runner) Run(ctx context.Context, st Step) (*Result, error) {
	res := &Result{Name: st.Name, World: st.Spec.String(), Describe: st.Spec.Describe(), Curve: st.Curve, Full: st.Full,
		Groups: st.Spec.Groups, GroupParts: st.Spec.GroupPartitions(), ReadyAfter: math.NaN(), ServedAfter: math.NaN()}
	if !st.Grow && r.world != nil {
		r.world.Close()
		r.world = nil
	}
	start := time.Now()
	if r.world == nil {
		w, err := StartWorld(ctx, r.opts.World)
		if err != nil {
			return nil, err
		}
		r.world = w
	}
	r.logf("[%s] building world %s", st.Name, st.Spec)
	if err := r.world.Grow(ctx, st.Spec); err != nil {
		return nil, err
	}
	res.BuildSecs = time.Since(start).Seconds()
	res.LiveGroups = r.world.LiveGroups()
	r.logf("[%s] built in %.1fs: %s; live groups: %s", st.Name, res.BuildSecs, res.Describe, strings.Join(res.LiveGroups, ", "))
	// Let the previous world's teardown and this one's build settle
	// (this process's garbage, the brokers' queues) before the clock starts.
	runtime.GC()
	sleep(ctx, 2*time.Second)
	if r.opts.QuietLimit > 0 {
		res.ForeignBefore = WaitQuiet(ctx, r.opts.QuietLimit, r.opts.QuietWait)
		if res.ForeignBefore >= r.opts.QuietLimit {
			r.logf("[%s] other processes still use %.2f cores; measuring anyway", st.Name, res.ForeignBefore)
		}
	}

	base := *res
	for attempt := 0; ; attempt++ {
		r.main(ctx, st, res)
		if res.Foreign <= Busy || attempt >= r.opts.Retries || ctx.Err() != nil {
			break
		}
		r.logf("[%s] other processes used %.2f cores during the measurement; measuring again", st.Name, res.Foreign)
		fresh := base
		fresh.Remeasured = append(slices.Clone(res.Remeasured), fmt.Sprintf("measured again: other processes used %.2f cores during attempt %d", res.Foreign, attempt+1))
		*res = fresh
		if r.opts.QuietLimit > 0 {
			res.ForeignBefore = WaitQuiet(ctx, r.opts.QuietLimit, r.opts.QuietWait)
		}
	}
	if st.Full && r.opts.High > 0 && ctx.Err() == nil {
		r.high(ctx, st, res)
	}
	if st.Full && r.opts.Split && ctx.Err() == nil {
		r.split(ctx, st, res)
	}
	return res, nil
}

func (r *Runner) env(extra ...string) []string {
	env := []string{
		"KRE_BROKERS=" + strings.Join(r.world.Addrs(), ","),
		"KRE_CLIENT_ID=" + ExporterClientID,
		"KRE_LOG_FORMAT=json",
	}
	env = append(env, r.opts.Env...)
	return append(env, extra...)
}

func (r *Runner) start(ctx context.Context, st Step, res *Result, tag string, extra ...string) (*Exporter, error) {
	env := r.env(extra...)
	e, err := StartExporter(r.opts.Exporter, env, filepath.Join(r.opts.WorkDir, fmt.Sprintf("exporter-%s-%s.log", st.Name, tag)))
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	if err := e.WaitReady(rctx); err != nil {
		_ = e.Stop(5 * time.Second)
		return nil, fmt.Errorf("exporter (%s) not ready: %w", tag, err)
	}
	if tag == "main" {
		res.ReadyAfter = time.Since(e.Started).Seconds()
	}
	return e, nil
}

// stop stops e and collects what it logged at warn and above.
func (r *Runner) stop(e *Exporter, res *Result) {
	if err := e.Stop(15 * time.Second); err != nil {
		res.Errors = append(res.Errors, err.Error())
	}
	b, err := os.ReadFile(e.Log)
	if err != nil {
		return
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if bytes.Contains(line, []byte(`"level":"warn"`)) || bytes.Contains(line, []byte(`"level":"error"`)) {
			if len(res.ExporterWarnings) < 20 {
				res.ExporterWarnings = append(res.ExporterWarnings, string(line[:min(len(line), 300)]))
			}
		}
	}
}

// waitServed scrapes until every built group is exported with the lag of
// every partition it committed on.
func (r *Runner) waitServed(ctx context.Context, e *Exporter, spec WorldSpec, trace *[]ServedCheck) (time.Duration, int, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	for {
		body, _, err := FetchProm(ctx, e.URL("/metrics"))
		if err != nil && ctx.Err() != nil {
			return 0, 0, err
		}
		if done, exitErr := e.Exited(); done {
			return 0, 0, fmt.Errorf("exporter exited: %v (log: %s)", exitErr, e.Log)
		}
		at := time.Since(e.Started)
		info, lag, lagSum, all := 0, 0, 0, 0
		_ = ScanSamples(bytes.NewReader(body), func(s Sample) {
			switch s.Name {
			case "kafka_consumergroup_info":
				all++
				if strings.HasPrefix(s.Label("consumergroup"), "bench-g") {
					info++
				}
			case "kafka_consumergroup_lag":
				if strings.HasPrefix(s.Label("consumergroup"), "bench-g") {
					lag++
				}
			case "kafka_consumergroup_lag_sum":
				if strings.HasPrefix(s.Label("consumergroup"), "bench-g") {
					lagSum++
				}
			}
		})
		if trace != nil {
			*trace = append(*trace, ServedCheck{At: at.Seconds(), Groups: info, GroupPartitions: lag, GroupTopics: lagSum})
		}
		// Served: every group, with the lag of every partition it committed
		// on; or, when the lag is not exported per partition
		// (KRE_LAG_GRANULARITY), of every topic it committed on.
		if info >= spec.Groups && (lag >= spec.GroupPartitions() || lag == 0 && lagSum >= spec.Groups*spec.TopicsPerGroup) {
			return at, all, nil
		}
		select {
		case <-ctx.Done():
			return 0, all, fmt.Errorf("not all groups served after %s: %d of %d groups, %d of %d group-partitions", at.Round(time.Millisecond), info, spec.Groups, lag, spec.GroupPartitions())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// exporterRequests counts the exporter's ListOffsets requests at the
// brokers: each offsets poll ends with them.
func (r *Runner) exporterRequests(key int16) int64 {
	var n int64
	for k, t := range r.world.Wire.Snapshot() {
		if k.Client == ExporterClientID && k.Key == key {
			n += t.Requests
		}
	}
	return n
}

// waitOffsetsPollEnd returns once the exporter has sent the ListOffsets
// requests of an offsets poll and none for 300ms: an offsets poll just
// ended, so a window starting now and lasting a multiple of the interval
// holds whole polls.
func (r *Runner) waitOffsetsPollEnd(ctx context.Context, interval time.Duration) {
	const listOffsets = 2
	ctx, cancel := context.WithTimeout(ctx, interval+30*time.Second)
	defer cancel()
	n0 := r.exporterRequests(listOffsets)
	last, lastChange := n0, time.Now()
	for ctx.Err() == nil {
		time.Sleep(50 * time.Millisecond)
		n := r.exporterRequests(listOffsets)
		if n != last {
			last, lastChange = n, time.Now()
		}
		if last > n0 && time.Since(lastChange) >= 300*time.Millisecond {
			return
		}
	}
}

// selfFigures reads the exporter's own counters from a text scrape.
type selfFigures struct {
	polls, pollSum, pollCount map[string]float64
	requests                  map[string]float64
	errors                    float64
	heap                      float64
	groups                    int
}

func readSelf(body []byte) selfFigures {
	f := selfFigures{polls: map[string]float64{}, pollSum: map[string]float64{}, pollCount: map[string]float64{}, requests: map[string]float64{}, heap: math.NaN()}
	_ = ScanSamples(bytes.NewReader(body), func(s Sample) {
		switch s.Name {
		case "kafka_rebalance_exporter_polls_total":
			f.polls[s.Label("loop")] = s.Value
		case "kafka_rebalance_exporter_poll_duration_seconds_sum":
			f.pollSum[s.Label("loop")] = s.Value
		case "kafka_rebalance_exporter_poll_duration_seconds_count":
			f.pollCount[s.Label("loop")] = s.Value
		case "kafka_rebalance_exporter_kafka_requests_total":
			f.requests[s.Label("api")] = s.Value
		case "kafka_rebalance_exporter_poll_errors_total":
			f.errors += s.Value
		case "go_memstats_heap_inuse_bytes":
			f.heap = s.Value
		case "kafka_consumergroup_info":
			f.groups++
		}
	})
	return f
}

// segment ends a memory segment: it reads the peak since the last reset,
// folds it into *peak and resets it.
func segment(pid int, peak *int64) int64 {
	p, err := ReadProc(pid)
	if err != nil {
		return 0
	}
	*peak = max(*peak, p.HWM)
	_ = ResetPeak(pid)
	return p.HWM
}

func benchCPU() float64 {
	p, err := ReadProc(os.Getpid())
	if err != nil {
		return math.NaN()
	}
	return p.CPU
}

func (r *Runner) main(ctx context.Context, st Step, res *Result) {
	e, err := r.start(ctx, st, res, "main")
	if err != nil {
		res.Errors = append(res.Errors, err.Error())
		return
	}
	defer r.stop(e, res)
	foreign := StartForeign(e.Pid)
	defer func() { res.Foreign = foreign.Cores() }()
	served, seen, err := r.waitServed(ctx, e, st.Spec, &res.ServedTrace)
	if err != nil {
		res.Errors = append(res.Errors, err.Error())
	} else {
		res.ServedAfter = served.Seconds()
		res.GroupsSeen = seen
	}
	r.logf("[%s] exporter pid %d ready after %.2fs, all groups served after %.2fs", st.Name, e.Pid, res.ReadyAfter, res.ServedAfter)

	interval, _ := Intervals(r.env())
	if interval <= 0 {
		interval = 10 * time.Second
	}
	// Offsets poll k (from 1) starts about (k-1) intervals after the
	// start; wait for the end of poll WarmPolls.
	if wait := time.Until(e.Started.Add(time.Duration(r.opts.WarmPolls-1)*interval - time.Second)); wait > 0 {
		r.logf("[%s] warming up for %s (%d offsets polls)", st.Name, wait.Round(time.Second), r.opts.WarmPolls)
		sleep(ctx, wait)
	}
	r.waitOffsetsPollEnd(ctx, interval)
	res.StartupHWM = segment(e.Pid, &res.PeakRSS)

	idle := r.opts.CurveIdle
	if st.Full {
		idle = r.opts.Idle
	}
	r.idle(ctx, st, e, res, idle, interval)

	conc, phase := r.opts.CurveConcurrency, r.opts.CurvePhase
	if st.Full {
		conc, phase = r.opts.Concurrency, r.opts.Phase
	}
	idleRate := res.Idle.CPU / math.Max(res.Idle.Window, 1e-9)
	if _, gi := Intervals(r.env()); gi > 0 && ctx.Err() == nil {
		every := gi + 100*time.Millisecond
		d := max(phase, 10*every)
		if !st.Full {
			d = max(phase, 5*every)
		}
		ps := r.loadWith(ctx, e, LoadOptions{Scrapers: 1, Duration: d, MaxScrapes: r.opts.MaxScrapes, Every: every}, 0, idleRate, &res.PeakRSS)
		ps.Every = every.Seconds()
		res.Paced = &ps
		r.logf("[%s] 1 scraper every %s: %d ok, p50 %.1f ms, max %.1f ms, %d of %d first of their snapshot, %.3f CPU-s per scrape",
			st.Name, every, ps.OK, ps.P50*1000, ps.Max*1000, ps.ColdN, ps.OK, ps.CPUPerScrape)
	}
	for _, c := range conc {
		if ctx.Err() != nil {
			return
		}
		var perf *perfRun
		if c == 4 && st.Profile && r.opts.Perf {
			perf = r.startPerf(st, e.Pid, "scrape4", res)
		}
		ps := r.load(ctx, e, c, 0, phase, idleRate, &res.PeakRSS)
		perf.stop(r, res)
		res.Phases = append(res.Phases, ps)
		r.logf("[%s] %d scrapers: %d ok, %d × 503, p50 %.1f ms, p99 %.1f ms, cold p50 %.1f ms, peak RSS %s",
			st.Name, c, ps.OK, ps.Rejected, ps.P50*1000, ps.P99*1000, ps.ColdP50*1000, mb(ps.PeakRSS))
	}
	segment(e.Pid, &res.PeakRSS)
	r.series(ctx, e, res)
}

// series scrapes the text format once and counts its series with expfmt.
// It runs after every measurement: a text rendering beside the
// OpenMetrics one Prometheus asks for would weigh on the exporter's memory.
func (r *Runner) series(ctx context.Context, e *Exporter, res *Result) {
	body, _, err := Fetch(ctx, e.URL("/metrics"), TextAccept)
	if err != nil {
		res.Errors = append(res.Errors, "text scrape: "+err.Error())
		return
	}
	series, _, err := CountSeries(bytes.NewReader(body))
	if err != nil {
		res.Errors = append(res.Errors, "parse the exposition: "+err.Error())
	}
	res.Series.Total, res.Series.Families, res.Series.ByFamily, res.Series.TextBytes = series.Total, series.Families, series.ByFamily, len(body)
	for name, n := range series.ByFamily {
		if strings.HasPrefix(name, "go_") || strings.HasPrefix(name, "process_") || strings.HasPrefix(name, "kafka_rebalance_exporter_") || strings.HasPrefix(name, "promhttp_") {
			res.Series.Self += n
		}
	}
	runtime.GC() // the parse's garbage is the benchmark's
}

func (r *Runner) idle(ctx context.Context, st Step, e *Exporter, res *Result, window, interval time.Duration) {
	body, wire, err := FetchProm(ctx, e.URL("/metrics"))
	if err != nil {
		res.Errors = append(res.Errors, "scrape before the idle window: "+err.Error())
		return
	}
	wireA, ctlA := r.world.Wire.Snapshot(), r.world.Control.Snapshot()
	a := readSelf(body)
	res.Idle.Heap = a.heap
	res.Series.OpenMetricsBytes, res.Series.OpenMetricsGzip = len(body), wire
	_ = ScanSamples(bytes.NewReader(body), func(Sample) { res.Series.OpenMetricsSamples++ })
	body = nil

	sleep(ctx, time.Second)
	var perf *perfRun
	if st.Profile && r.opts.Perf {
		perf = r.startPerf(st, e.Pid, "idle", res)
	}
	r.logf("[%s] idle window of %s, no scrapes", st.Name, window)
	res.PreIdleHWM = segment(e.Pid, &res.PeakRSS) // the scrape and its parse
	p0, b0, fo := mustProc(e.Pid), benchCPU(), StartForeign(e.Pid)
	var rss int64
	end := time.Now().Add(window)
	for time.Now().Before(end) && ctx.Err() == nil {
		sleep(ctx, min(time.Second, time.Until(end)))
		if p, err := ReadProc(e.Pid); err == nil {
			rss = max(rss, p.RSS)
		}
	}
	p1, b1 := mustProc(e.Pid), benchCPU()
	res.Idle.Foreign = fo.Cores()
	perf.stop(r, res)
	w := p1.At.Sub(p0.At).Seconds()
	res.Idle.Window = w
	res.Idle.CPU = p1.CPU - p0.CPU
	res.Idle.CPUPerMin = res.Idle.CPU / w * 60
	res.Idle.BenchPerMin = (b1 - b0) / w * 60
	res.Idle.Period = interval.Seconds()
	res.Idle.CPUPerPeriod = res.Idle.CPU / w * interval.Seconds()
	res.Idle.PeakRSS = p1.HWM
	res.Idle.RSS = p1.RSS
	res.PeakRSS = max(res.PeakRSS, p1.HWM)

	body, _, err = FetchProm(ctx, e.URL("/metrics"))
	if err != nil {
		res.Errors = append(res.Errors, "scrape after the idle window: "+err.Error())
		return
	}
	wireB, ctlB := r.world.Wire.Snapshot(), r.world.Control.Snapshot()
	b := readSelf(body)
	res.Idle.GroupsPolls = b.polls["groups"] - a.polls["groups"]
	res.Idle.OffsetsPolls = b.polls["offsets"] - a.polls["offsets"]
	res.Idle.PollErrors = b.errors - a.errors
	if n := b.pollCount["groups"] - a.pollCount["groups"]; n > 0 {
		res.Idle.GroupsWall = (b.pollSum["groups"] - a.pollSum["groups"]) / n
	}
	if n := b.pollCount["offsets"] - a.pollCount["offsets"]; n > 0 {
		res.Idle.OffsetsWall = (b.pollSum["offsets"] - a.pollSum["offsets"]) / n
	}
	res.Kafka = kafkaStats(DiffTraffic(wireB, wireA), ctlA, ctlB, a, b, res.Idle.GroupsPolls, res.Idle.OffsetsPolls)
	r.logf("[%s] idle: %.2f CPU-s/min, polls %g groups / %g offsets, poll wall %.0f / %.0f ms, %.1f + %.1f requests per poll, heap %s, RSS %s",
		st.Name, res.Idle.CPUPerMin, res.Idle.GroupsPolls, res.Idle.OffsetsPolls, res.Idle.GroupsWall*1000, res.Idle.OffsetsWall*1000,
		res.Kafka.GroupsPoll.Requests, res.Kafka.OffsetPoll.Requests, mb(int64(res.Idle.Heap)), mb(res.Idle.RSS))
}

var (
	groupsKeys  = map[string]bool{"ListGroups": true, "DescribeGroups": true, "ConsumerGroupDescribe": true}
	offsetsKeys = map[string]bool{"Metadata": true, "OffsetFetch": true, "ListOffsets": true, "Fetch": true}
)

func kafkaStats(wire map[WireKey]Traffic, ctlA, ctlB map[int16]int64, a, b selfFigures, groupsPolls, offsetsPolls float64) KafkaStats {
	ks := KafkaStats{ByKey: map[string]Traffic{}, ControlAll: map[string]int64{}, WireAll: map[string]int64{}, SelfReported: map[string]float64{}}
	var g, o Traffic
	for k, t := range ByKey(wire, func(c string) bool { return c == ExporterClientID }) {
		name := KeyName(k)
		ks.ByKey[name] = t
		switch {
		case groupsKeys[name]:
			g = g.add(t)
		case offsetsKeys[name]:
			o = o.add(t)
		default:
			ks.Other = ks.Other.add(t)
		}
	}
	per := func(t Traffic, n float64) PerPoll {
		if n <= 0 {
			return PerPoll{math.NaN(), math.NaN(), math.NaN()}
		}
		return PerPoll{float64(t.Requests) / n, float64(t.ReqBytes) / n, float64(t.RespBytes) / n}
	}
	ks.GroupsPoll, ks.OffsetPoll = per(g, groupsPolls), per(o, offsetsPolls)
	for k, t := range ByKey(wire, func(string) bool { return true }) {
		ks.WireAll[KeyName(k)] = t.Requests
	}
	for k, n := range ctlB {
		if d := n - ctlA[k]; d != 0 {
			ks.ControlAll[KeyName(k)] = d
		}
	}
	for api, n := range b.requests {
		if d := n - a.requests[api]; d != 0 {
			ks.SelfReported[api] = d
		}
	}
	return ks
}

func mustProc(pid int) ProcStat {
	p, err := ReadProc(pid)
	if err != nil {
		return ProcStat{At: time.Now(), CPU: math.NaN()}
	}
	return p
}

// load runs one scrape load and measures the exporter around it.
func (r *Runner) load(ctx context.Context, e *Exporter, scrapers, maxInFlight int, d time.Duration, idleRate float64, peak *int64) PhaseStats {
	return r.loadWith(ctx, e, LoadOptions{Scrapers: scrapers, Duration: d, MaxScrapes: r.opts.MaxScrapes, Backoff: 100 * time.Millisecond}, maxInFlight, idleRate, peak)
}

func (r *Runner) loadWith(ctx context.Context, e *Exporter, lo LoadOptions, maxInFlight int, idleRate float64, peak *int64) PhaseStats {
	segment(e.Pid, peak)
	p0, fo := mustProc(e.Pid), StartForeign(e.Pid)
	age := time.Since(e.Started)
	samples := Load(ctx, e.URL("/metrics"), lo)
	p1 := mustProc(e.Pid)
	foreign := fo.Cores()
	ps := Summarise(samples)
	ps.Scrapers, ps.MaxInFlight, ps.Age, ps.Foreign = lo.Scrapers, maxInFlight, age.Seconds(), foreign
	if ps.MaxInFlight == 0 {
		ps.MaxInFlight = r.maxScrapes()
	}
	ps.Wall = p1.At.Sub(p0.At).Seconds()
	ps.CPU = p1.CPU - p0.CPU
	if ps.OK > 0 {
		ps.CPUPerScrape = (ps.CPU - idleRate*ps.Wall) / float64(ps.OK)
	}
	if ps.Snapshots > 0 {
		ps.CPUPerSnapshot = (ps.CPU - idleRate*ps.Wall) / float64(ps.Snapshots)
	}
	ps.PeakRSS = p1.HWM
	*peak = max(*peak, p1.HWM)
	return ps
}

// maxScrapes is KRE_WEB_MAX_SCRAPES of the runs without an override.
func (r *Runner) maxScrapes() int {
	for _, kv := range r.opts.Env {
		if k, v, ok := strings.Cut(kv, "="); ok && k == "KRE_WEB_MAX_SCRAPES" {
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	f, _ := reflect.TypeFor[config.Config]().FieldByName("WebMaxScrapes")
	n, _ := strconv.Atoi(f.Tag.Get("default"))
	return n
}

// high loads a second exporter, allowed High concurrent scrapes, with High
// scrapers.
func (r *Runner) high(ctx context.Context, st Step, res *Result) {
	n := strconv.Itoa(r.opts.High)
	e, err := r.start(ctx, st, res, "high", "KRE_WEB_MAX_SCRAPES="+n)
	if err != nil {
		res.Errors = append(res.Errors, err.Error())
		return
	}
	defer r.stop(e, res)
	if _, _, err := r.waitServed(ctx, e, st.Spec, nil); err != nil {
		res.Errors = append(res.Errors, "high: "+err.Error())
	}
	interval, _ := Intervals(r.env())
	sleep(ctx, time.Until(e.Started.Add(interval+time.Second))) // two offsets polls: lag in seconds has history
	var peak int64
	segment(e.Pid, &peak) // the start
	idleRate := res.Idle.CPU / math.Max(res.Idle.Window, 1e-9)
	ps := r.load(ctx, e, r.opts.High, r.opts.High, r.opts.Phase, idleRate, &peak)
	res.High = &ps
	res.HighPeakRSS = peak // its whole life
	r.logf("[%s] %d scrapers, KRE_WEB_MAX_SCRAPES=%d: %d ok, %d × 503, p50 %.1f ms, p99 %.1f ms, peak RSS %s",
		st.Name, ps.Scrapers, ps.MaxInFlight, ps.OK, ps.Rejected, ps.P50*1000, ps.P99*1000, mb(ps.PeakRSS))
}

// split runs an exporter whose offsets loop polls once only, to measure
// the CPU of a groups poll on its own (many of them fit in the window, so
// the figure is precise); the offsets poll is the rest of a main-run
// period. (The other way round, one offsets poll per 10 s, leaves the
// small groups share inside the noise of two or three polls.)
func (r *Runner) split(ctx context.Context, st Step, res *Result) {
	e, err := r.start(ctx, st, res, "split", "KRE_POLL_INTERVAL=24h")
	if err != nil {
		res.Errors = append(res.Errors, err.Error())
		return
	}
	defer r.stop(e, res)
	interval, gi := Intervals(r.env())
	if gi <= 0 || interval <= 0 {
		return
	}
	// The start's offsets poll and its analysis are done well before a
	// few groups polls are.
	sleep(ctx, time.Until(e.Started.Add(3*gi)))
	a, _, err := FetchProm(ctx, e.URL("/metrics"))
	if err != nil {
		res.Errors = append(res.Errors, "split: "+err.Error())
		return
	}
	fa := readSelf(a)
	sleep(ctx, time.Second)
	p0 := mustProc(e.Pid)
	sleep(ctx, r.opts.SplitIdle)
	p1 := mustProc(e.Pid)
	b, _, err := FetchProm(ctx, e.URL("/metrics"))
	if err != nil {
		res.Errors = append(res.Errors, "split: "+err.Error())
		return
	}
	fb := readSelf(b)
	w := p1.At.Sub(p0.At).Seconds()
	s := &SplitStats{Window: w, GroupsPolls: fb.polls["groups"] - fa.polls["groups"]}
	// A window of whole intervals holds the CPU of exactly w/interval polls.
	s.GroupsPerPoll = (p1.CPU - p0.CPU) / (w / gi.Seconds())
	if n := fb.pollCount["groups"] - fa.pollCount["groups"]; n > 0 {
		s.GroupsWallMean = (fb.pollSum["groups"] - fa.pollSum["groups"]) / n
	}
	if res.Idle.Window > 0 {
		s.OffsetsPerPoll = res.Idle.CPUPerPeriod - s.GroupsPerPoll*interval.Seconds()/gi.Seconds()
	}
	res.Split = s
	r.logf("[%s] split: %.3f CPU-s per groups poll (groups-only exporter), so %.3f CPU-s per offsets poll", st.Name, s.GroupsPerPoll, s.OffsetsPerPoll)
}

// perfRun is `perf record` attached to the exporter.
type perfRun struct {
	cmd  *exec.Cmd
	data string
}

func (r *Runner) startPerf(st Step, pid int, tag string, res *Result) *perfRun {
	if _, err := exec.LookPath("perf"); err != nil {
		res.Errors = append(res.Errors, "perf not found; no profile")
		return nil
	}
	data := filepath.Join(r.opts.WorkDir, fmt.Sprintf("perf-%s-%s.data", st.Name, tag))
	cmd := exec.Command("perf", "record", "-F", "499", "-g", "-p", strconv.Itoa(pid), "-o", data)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		res.Errors = append(res.Errors, "perf: "+err.Error())
		return nil
	}
	return &perfRun{cmd: cmd, data: data}
}

// stop ends the recording and writes two reports beside it: flat (self)
// and cumulative (children).
func (p *perfRun) stop(r *Runner, res *Result) {
	if p == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	_ = p.cmd.Wait()
	for _, mode := range []string{"self", "children"} {
		args := []string{"report", "--stdio", "-i", p.data, "--sort", "symbol", "--percent-limit", "0.5", "-g", "none"}
		if mode == "self" {
			args = append(args, "--no-children")
		} else {
			args = append(args, "--children")
		}
		out, err := exec.Command("perf", args...).Output()
		if err != nil {
			res.Errors = append(res.Errors, "perf report: "+err.Error())
			continue
		}
		path := strings.TrimSuffix(p.data, ".data") + "-" + mode + ".txt"
		if err := os.WriteFile(path, compactColumns(out), 0o644); err == nil {
			res.Perf = append(res.Perf, path)
		}
	}
	r.logf("perf profile: %s", strings.Join(res.Perf, ", "))
}

// compactColumns squeezes the padding perf pads its columns with.
func compactColumns(b []byte) []byte {
	var out bytes.Buffer
	for _, line := range strings.Split(string(b), "\n") {
		for strings.Contains(line, "   ") {
			line = strings.ReplaceAll(line, "   ", "  ")
		}
		out.WriteString(strings.TrimRight(line, " -") + "\n")
	}
	return out.Bytes()
}

func sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
