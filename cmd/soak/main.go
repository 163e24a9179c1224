// Command soak runs the exporter against a churning kfake world for a
// chosen time and records its resources over time: it is the soak of
// docs/reliability.md, not a timed test.
//
// The world is internal/bench's (a three-broker kfake cluster with the
// demo's live groups: sarama and franz-go members, classic and KIP-848,
// joining and leaving every -live-churn) plus a churn of its own: every
// -cycle it creates -churn groups (offsets committed through kadm, no
// members) and deletes the -churn oldest, keeping -groups of them alive,
// and starts -members short-lived franz-go members in groups of their own,
// which consume, commit and leave within two cycles; those groups are then
// deleted too. The exporter is the real binary (built with go build, as
// the Dockerfile does), run as a child process; paced scrapers read
// /metrics the way Prometheus does.
//
// Every -sample it writes one row to soak.csv in -out: the exporter's RSS
// (/proc), its Go heap in use and goroutines (its own go_* metrics), the
// age of both snapshots, how many groups it exports and how many the world
// holds. At the end it writes soak.json (samples and summary) and prints
// the summary.
//
// Growth criterion (exit status 1): the samples after a warm-up (the first
// fifth of the run, at least two minutes) are split into thirds; the run
// fails when, from the first third to the last, the median goroutine count
// grows by more than 10 % + 10, or the floor (minimum) of the heap in use
// grows by more than 10 % + 4 MiB, or when the exporter exits. The heap's
// floor is what is live after a collection; its median swings with the
// garbage collector's cycle. A bounded process stays flat between the
// thirds; a goroutine a minute, or 1 MiB of heap a minute, does not.
// -judge FILE applies the criterion to a soak.csv written before.
// Scripted as scripts/soak.sh.
package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/bench"
)

type options struct {
	duration, sample, cycle time.Duration
	groups, churn, members  int
	out, bin                string
	base                    string
	groupPoll, offsetsPoll  time.Duration
	scrapers                int
}

func main() {
	var o options
	flag.DurationVar(&o.duration, "duration", 30*time.Minute, "how long to run the churning world")
	flag.DurationVar(&o.sample, "sample", 10*time.Second, "sampling interval")
	flag.DurationVar(&o.cycle, "cycle", 10*time.Second, "churn cycle")
	flag.IntVar(&o.groups, "groups", 2000, "churned member-less groups kept alive")
	flag.IntVar(&o.churn, "churn", 200, "member-less groups created and deleted per cycle")
	flag.IntVar(&o.members, "members", 4, "short-lived member groups started per cycle")
	flag.StringVar(&o.base, "world", "300x10x8", "the stable base world, GROUPSxTOPICSxPARTITIONS (see cmd/bench)")
	flag.DurationVar(&o.groupPoll, "group-poll", 2*time.Second, "KRE_GROUP_POLL_INTERVAL of the exporter")
	flag.DurationVar(&o.offsetsPoll, "poll", 10*time.Second, "KRE_POLL_INTERVAL of the exporter")
	flag.IntVar(&o.scrapers, "scrapers", 2, "paced scrapers, one scrape per groups poll interval each")
	flag.StringVar(&o.out, "out", "soak-out", "directory for soak.csv, soak.json and the exporter's log")
	flag.StringVar(&o.bin, "exporter", "", "exporter binary (default: go build ./cmd/exporter)")
	judge := flag.String("judge", "", "apply the growth criterion to this soak.csv instead of running")
	flag.Parse()
	if *judge != "" {
		samples, err := readCSV(*judge)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		var took time.Duration
		if len(samples) > 0 {
			took = time.Duration(samples[len(samples)-1].Elapsed * float64(time.Second))
		}
		sum := summarise(samples, took, nil)
		if len(samples) > 0 {
			l := samples[len(samples)-1]
			sum.Created, sum.Deleted, sum.MemberGroups, sum.Scrapes, sum.ScrapeErrors = l.Created, l.Deleted, l.MembersRun, l.Scrapes, l.ScrapeErrors
		}
		fmt.Println(sum.text())
		if !sum.Pass {
			os.Exit(1)
		}
		return
	}
	log := zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr, TimeFormat: time.TimeOnly}).With().Timestamp().Logger()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sum, err := run(ctx, o, log)
	if err != nil {
		log.Error().Err(err).Msg("soak")
		os.Exit(2)
	}
	fmt.Println(sum.text())
	if !sum.Pass {
		os.Exit(1)
	}
}

// Sample is one row of soak.csv.
type Sample struct {
	Elapsed      float64 `json:"elapsed_s"`
	RSS          int64   `json:"rss_bytes"`
	HeapInuse    float64 `json:"heap_inuse_bytes"`
	Goroutines   float64 `json:"goroutines"`
	GroupsAge    float64 `json:"groups_snapshot_age_s"`
	OffsetsAge   float64 `json:"offsets_snapshot_age_s"`
	Exported     int     `json:"groups_exported"`
	WorldGroups  int64   `json:"groups_in_world"`
	Created      int64   `json:"groups_created_total"`
	Deleted      int64   `json:"groups_deleted_total"`
	MembersRun   int64   `json:"member_groups_total"`
	ScrapeErrors int64   `json:"scrape_errors_total"`
	Scrapes      int64   `json:"scrapes_total"`
}

var header = []string{"elapsed_s", "rss_bytes", "heap_inuse_bytes", "goroutines", "groups_snapshot_age_s", "offsets_snapshot_age_s",
	"groups_exported", "groups_in_world", "groups_created_total", "groups_deleted_total", "member_groups_total", "scrapes_total", "scrape_errors_total"}

func (s Sample) row() []string {
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
	return []string{f(math.Round(s.Elapsed)), strconv.FormatInt(s.RSS, 10), f(s.HeapInuse), f(s.Goroutines), f(s.GroupsAge), f(s.OffsetsAge),
		strconv.Itoa(s.Exported), strconv.FormatInt(s.WorldGroups, 10), strconv.FormatInt(s.Created, 10), strconv.FormatInt(s.Deleted, 10),
		strconv.FormatInt(s.MembersRun, 10), strconv.FormatInt(s.Scrapes, 10), strconv.FormatInt(s.ScrapeErrors, 10)}
}

// readCSV reads a soak.csv back.
func readCSV(path string) ([]Sample, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return nil, err
	}
	if len(recs) == 0 || !slices.Equal(recs[0], header) {
		return nil, fmt.Errorf("%s: not a soak.csv (header %v)", path, recs[:min(len(recs), 1)])
	}
	var out []Sample
	for _, r := range recs[1:] {
		fl := func(i int) float64 { v, _ := strconv.ParseFloat(r[i], 64); return v }
		in := func(i int) int64 { v, _ := strconv.ParseInt(r[i], 10, 64); return v }
		out = append(out, Sample{Elapsed: fl(0), RSS: in(1), HeapInuse: fl(2), Goroutines: fl(3), GroupsAge: fl(4), OffsetsAge: fl(5),
			Exported: int(in(6)), WorldGroups: in(7), Created: in(8), Deleted: in(9), MembersRun: in(10), Scrapes: in(11), ScrapeErrors: in(12)})
	}
	return out, nil
}

// Summary is the verdict of a run.
type Summary struct {
	Duration       float64  `json:"duration_s"`
	Samples        int      `json:"samples"`
	MaxRSS         int64    `json:"max_rss_bytes"`
	LastRSS        int64    `json:"last_rss_bytes"`
	MaxHeap        float64  `json:"max_heap_inuse_bytes"`
	FirstGoroutine float64  `json:"goroutines_first_third_median"`
	LastGoroutine  float64  `json:"goroutines_last_third_median"`
	FirstHeap      float64  `json:"heap_first_third_min"`
	LastHeap       float64  `json:"heap_last_third_min"`
	FirstRSS       float64  `json:"rss_first_third_median"`
	LastRSSMedian  float64  `json:"rss_last_third_median"`
	MaxGroupsAge   float64  `json:"max_groups_snapshot_age_s"`
	MaxOffsetsAge  float64  `json:"max_offsets_snapshot_age_s"`
	Created        int64    `json:"groups_created_total"`
	Deleted        int64    `json:"groups_deleted_total"`
	MemberGroups   int64    `json:"member_groups_total"`
	Scrapes        int64    `json:"scrapes_total"`
	ScrapeErrors   int64    `json:"scrape_errors_total"`
	Failures       []string `json:"failures"`
	Pass           bool     `json:"pass"`
}

func (s Summary) text() string {
	verdict := "PASS"
	if !s.Pass {
		verdict = "FAIL"
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "soak %s: %.0f s, %d samples\n", verdict, s.Duration, s.Samples)
	fmt.Fprintf(&b, "  RSS max %.1f MiB, last %.1f MiB (medians of first/last third after warm-up: %.1f / %.1f MiB)\n",
		mib(float64(s.MaxRSS)), mib(float64(s.LastRSS)), mib(s.FirstRSS), mib(s.LastRSSMedian))
	fmt.Fprintf(&b, "  heap in use max %.1f MiB (floors of first/last third %.1f / %.1f MiB)\n", mib(s.MaxHeap), mib(s.FirstHeap), mib(s.LastHeap))
	fmt.Fprintf(&b, "  goroutines medians %.0f / %.0f\n", s.FirstGoroutine, s.LastGoroutine)
	fmt.Fprintf(&b, "  snapshot age max: groups %.1f s, offsets %.1f s\n", s.MaxGroupsAge, s.MaxOffsetsAge)
	fmt.Fprintf(&b, "  world: %d groups created, %d deleted, %d member groups; %d scrapes, %d failed", s.Created, s.Deleted, s.MemberGroups, s.Scrapes, s.ScrapeErrors)
	for _, f := range s.Failures {
		fmt.Fprintf(&b, "\n  failure: %s", f)
	}
	return b.String()
}

func mib(b float64) float64 { return b / (1 << 20) }

func run(ctx context.Context, o options, log zerolog.Logger) (Summary, error) {
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return Summary{}, err
	}
	spec, err := bench.ParseWorld(o.base)
	if err != nil {
		return Summary{}, err
	}
	bin := o.bin
	if bin == "" {
		root, err := bench.ModuleRoot()
		if err != nil {
			return Summary{}, err
		}
		log.Info().Msg("building the exporter")
		if bin, err = bench.BuildExporter(ctx, root, o.out); err != nil {
			return Summary{}, err
		}
	}
	log.Info().Str("world", spec.String()).Msg("starting the world")
	w, err := bench.StartWorld(ctx, bench.WorldOptions{ProduceRate: 200, Live: true, LiveRate: 20})
	if err != nil {
		return Summary{}, err
	}
	defer w.Close()
	if err := w.Grow(ctx, spec); err != nil {
		return Summary{}, err
	}

	env := []string{
		"KRE_BROKERS=" + joinAddrs(w.Addrs()),
		"KRE_GROUP_POLL_INTERVAL=" + o.groupPoll.String(),
		"KRE_POLL_INTERVAL=" + o.offsetsPoll.String(),
		"KRE_LOG_LEVEL=warn",
		"PATH=" + os.Getenv("PATH"),
	}
	e, err := bench.StartExporter(bin, env, filepath.Join(o.out, "exporter.log"))
	if err != nil {
		return Summary{}, err
	}
	defer func() {
		if err := e.Stop(10 * time.Second); err != nil {
			log.Warn().Err(err).Msg("exporter stop")
		}
	}()
	rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	err = e.WaitReady(rctx)
	cancel()
	if err != nil {
		return Summary{}, err
	}
	log.Info().Str("addr", e.Addr).Dur("duration", o.duration).Msg("exporter ready; soaking")

	runCtx, cancelRun := context.WithTimeout(ctx, o.duration)
	defer cancelRun()
	ch, err := newChurner(w.Addrs(), o, spec.Topics, spec.Partitions, log)
	if err != nil {
		return Summary{}, err
	}
	defer ch.close()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); ch.run(runCtx) }()

	var scrapes, scrapeErrs atomic.Int64
	for range o.scrapers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(o.groupPoll)
			defer t.Stop()
			for {
				select {
				case <-runCtx.Done():
					return
				case <-t.C:
				}
				sctx, c := context.WithTimeout(runCtx, 30*time.Second)
				_, _, err := bench.FetchProm(sctx, e.URL("/metrics"))
				c()
				scrapes.Add(1)
				if err != nil && runCtx.Err() == nil {
					scrapeErrs.Add(1)
				}
			}
		}()
	}

	f, err := os.Create(filepath.Join(o.out, "soak.csv"))
	if err != nil {
		return Summary{}, err
	}
	defer f.Close()
	cw := csv.NewWriter(f)
	_ = cw.Write(header)
	var samples []Sample
	var exited error
	start := time.Now()
	t := time.NewTicker(o.sample)
	defer t.Stop()
loop:
	for {
		select {
		case <-runCtx.Done():
			break loop
		case <-t.C:
		}
		if done, err := e.Exited(); done {
			exited = fmt.Errorf("the exporter exited: %v (log %s)", err, e.Log)
			break
		}
		s, err := sampleOnce(runCtx, e)
		if err != nil {
			if runCtx.Err() != nil {
				break
			}
			log.Warn().Err(err).Msg("sample")
			continue
		}
		s.Elapsed = time.Since(start).Seconds()
		s.WorldGroups = int64(spec.Groups) + ch.alive.Load()
		s.Created, s.Deleted, s.MembersRun = ch.created.Load(), ch.deleted.Load(), ch.memberGroups.Load()
		s.Scrapes, s.ScrapeErrors = scrapes.Load(), scrapeErrs.Load()
		samples = append(samples, s)
		_ = cw.Write(s.row())
		cw.Flush()
		log.Info().Int("t", int(s.Elapsed)).Float64("rss_mib", math.Round(mib(float64(s.RSS)))).Float64("heap_mib", math.Round(mib(s.HeapInuse))).
			Float64("goroutines", s.Goroutines).Int("exported", s.Exported).Int64("world", s.WorldGroups).Msg("sample")
	}
	cancelRun()
	wg.Wait()
	sum := summarise(samples, time.Since(start), exited)
	sum.Created, sum.Deleted, sum.MemberGroups = ch.created.Load(), ch.deleted.Load(), ch.memberGroups.Load()
	sum.Scrapes, sum.ScrapeErrors = scrapes.Load(), scrapeErrs.Load()
	out, _ := json.MarshalIndent(struct {
		Summary Summary  `json:"summary"`
		Samples []Sample `json:"samples"`
	}{sum, samples}, "", "  ")
	if err := os.WriteFile(filepath.Join(o.out, "soak.json"), out, 0o644); err != nil {
		return sum, err
	}
	return sum, nil
}

func joinAddrs(a []string) string {
	var b bytes.Buffer
	for i, s := range a {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(s)
	}
	return b.String()
}

func sampleOnce(ctx context.Context, e *bench.Exporter) (Sample, error) {
	var s Sample
	ps, err := bench.ReadProc(e.Pid)
	if err != nil {
		return s, err
	}
	s.RSS = ps.RSS
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	// The text format: OpenMetrics names a gauge and a counter of the Go
	// collector alike (go_memstats_alloc_bytes), which expfmt's text
	// parser cannot take.
	body, _, err := bench.Fetch(sctx, e.URL("/metrics"), "text/plain;version=0.0.4")
	if err != nil {
		return s, err
	}
	_, mfs, err := bench.CountSeries(bytes.NewReader(body))
	if err != nil {
		return s, err
	}
	s.HeapInuse = bench.Value(mfs, "go_memstats_heap_inuse_bytes", nil)
	s.Goroutines = bench.Value(mfs, "go_goroutines", nil)
	s.GroupsAge = bench.Value(mfs, "kafka_rebalance_exporter_snapshot_age_seconds", map[string]string{"loop": "groups"})
	s.OffsetsAge = bench.Value(mfs, "kafka_rebalance_exporter_snapshot_age_seconds", map[string]string{"loop": "offsets"})
	if mf := mfs["kafka_consumergroup_members"]; mf != nil {
		s.Exported = len(mf.GetMetric())
	}
	return s, nil
}

// summarise applies the growth criterion of the package doc.
func summarise(samples []Sample, took time.Duration, exited error) Summary {
	sum := Summary{Duration: took.Seconds(), Samples: len(samples), Pass: true}
	if exited != nil {
		sum.Failures = append(sum.Failures, exited.Error())
	}
	for _, s := range samples {
		sum.MaxRSS = max(sum.MaxRSS, s.RSS)
		sum.MaxHeap = max(sum.MaxHeap, s.HeapInuse)
		sum.MaxGroupsAge = max(sum.MaxGroupsAge, s.GroupsAge)
		sum.MaxOffsetsAge = max(sum.MaxOffsetsAge, s.OffsetsAge)
	}
	if len(samples) > 0 {
		sum.LastRSS = samples[len(samples)-1].RSS
	}
	warm := max(took.Seconds()/5, 120)
	var after []Sample
	for _, s := range samples {
		if s.Elapsed >= warm {
			after = append(after, s)
		}
	}
	if len(after) < 6 {
		sum.Failures = append(sum.Failures, fmt.Sprintf("only %d samples after the %.0f s warm-up: run longer", len(after), warm))
	} else {
		first, last := after[:len(after)/3], after[len(after)-len(after)/3:]
		med := func(ss []Sample, get func(Sample) float64) float64 {
			xs := make([]float64, len(ss))
			for i, s := range ss {
				xs[i] = get(s)
			}
			slices.Sort(xs)
			return xs[len(xs)/2]
		}
		gor := func(s Sample) float64 { return s.Goroutines }
		heap := func(s Sample) float64 { return s.HeapInuse }
		rss := func(s Sample) float64 { return float64(s.RSS) }
		floor := func(ss []Sample, get func(Sample) float64) float64 {
			m := math.Inf(1)
			for _, s := range ss {
				m = min(m, get(s))
			}
			return m
		}
		sum.FirstGoroutine, sum.LastGoroutine = med(first, gor), med(last, gor)
		sum.FirstHeap, sum.LastHeap = floor(first, heap), floor(last, heap)
		sum.FirstRSS, sum.LastRSSMedian = med(first, rss), med(last, rss)
		if sum.LastGoroutine > sum.FirstGoroutine*1.1+10 {
			sum.Failures = append(sum.Failures, fmt.Sprintf("goroutines grew: median %.0f → %.0f", sum.FirstGoroutine, sum.LastGoroutine))
		}
		if sum.LastHeap > sum.FirstHeap*1.1+4<<20 {
			sum.Failures = append(sum.Failures, fmt.Sprintf("heap in use grew: floor %.1f → %.1f MiB", mib(sum.FirstHeap), mib(sum.LastHeap)))
		}
	}
	sum.Pass = len(sum.Failures) == 0
	return sum
}

// churner creates and deletes groups and runs short-lived members.
type churner struct {
	o                       options
	log                     zerolog.Logger
	addrs                   []string
	cl                      *kgo.Client
	adm                     *kadm.Client
	topics, partitions      int
	next                    int
	live                    []string // member-less churn groups, oldest first
	alive                   atomic.Int64
	created, deleted        atomic.Int64
	memberGroups            atomic.Int64
	memberSeq               int
	pendingMember           []string // member groups that have left, to delete
	membersWG               sync.WaitGroup
	errCommit, errDel, errM atomic.Int64
}

func newChurner(addrs []string, o options, topics, partitions int, log zerolog.Logger) (*churner, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ClientID("soak-churn"))
	if err != nil {
		return nil, err
	}
	return &churner{o: o, log: log, addrs: addrs, cl: cl, adm: kadm.NewClient(cl), topics: topics, partitions: partitions}, nil
}

func (c *churner) close() {
	c.membersWG.Wait()
	c.cl.Close()
}

func (c *churner) run(ctx context.Context) {
	t := time.NewTicker(c.o.cycle)
	defer t.Stop()
	var done []string
	var mu sync.Mutex
	for {
		c.cycle(ctx)
		mu.Lock()
		leftover := done
		done = nil
		mu.Unlock()
		if len(leftover) > 0 {
			c.delete(ctx, leftover)
		}
		for range c.o.members {
			c.memberSeq++
			name := fmt.Sprintf("soak-m%07d", c.memberSeq)
			c.membersWG.Add(1)
			go func() {
				defer c.membersWG.Done()
				if c.member(ctx, name) {
					c.memberGroups.Add(1)
				}
				mu.Lock()
				done = append(done, name)
				mu.Unlock()
			}()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// cycle creates o.churn groups and deletes the oldest beyond o.groups.
func (c *churner) cycle(ctx context.Context) {
	var made []string
	for range c.o.churn {
		name := fmt.Sprintf("soak-c%07d", c.next)
		topic := bench.TopicName(c.next % c.topics)
		c.next++
		var os kadm.Offsets
		for p := range c.partitions {
			os.AddOffset(topic, int32(p), int64(c.next%10), -1)
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		resp, err := c.adm.CommitOffsets(cctx, name, os)
		cancel()
		if err == nil {
			err = resp.Error()
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			c.errCommit.Add(1)
			continue
		}
		made = append(made, name)
	}
	c.live = append(c.live, made...)
	c.created.Add(int64(len(made)))
	if n := len(c.live) - c.o.groups; n > 0 {
		c.delete(ctx, c.live[:n])
		c.live = slices.Delete(c.live, 0, n)
	}
	c.alive.Store(int64(len(c.live)))
}

func (c *churner) delete(ctx context.Context, names []string) {
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	resp, err := c.adm.DeleteGroups(cctx, names...)
	if err != nil {
		c.errDel.Add(1)
		return
	}
	for _, r := range resp {
		if r.Err == nil {
			c.deleted.Add(1)
		}
	}
}

// member runs one franz-go member in group name: it joins, consumes what
// it can for up to one cycle, commits and leaves. It reports whether it
// joined.
func (c *churner) member(ctx context.Context, name string) bool {
	topic := bench.TopicName(c.memberSeq % c.topics)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.addrs...), kgo.ClientID("soak-member"), kgo.ConsumerGroup(name),
		kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.SessionTimeout(6*time.Second), kgo.HeartbeatInterval(time.Second), kgo.DisableAutoCommit())
	if err != nil {
		c.errM.Add(1)
		return false
	}
	defer cl.Close() // leaves the group
	mctx, cancel := context.WithTimeout(ctx, c.o.cycle)
	defer cancel()
	joined := false
	for mctx.Err() == nil {
		fs := cl.PollFetches(mctx)
		if fs.NumRecords() > 0 {
			joined = true
			cctx, c2 := context.WithTimeout(context.Background(), 5*time.Second)
			if err := cl.CommitUncommittedOffsets(cctx); err != nil && !errors.Is(err, context.Canceled) {
				c.errM.Add(1)
			}
			c2()
		}
	}
	return joined
}
