package bench

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
)

// PeakThrough is the exporter's peak RSS from its start through the loads
// of at most scrapers concurrent scrapers.
func (r *Result) PeakThrough(scrapers int) int64 {
	p := max(r.StartupHWM, r.PreIdleHWM, r.Idle.PeakRSS)
	for _, ph := range r.Phases {
		if ph.Scrapers <= scrapers {
			p = max(p, ph.PeakRSS)
		}
	}
	return p
}

// Phase returns the load of n scrapers against the default scrape limit.
func (r *Result) Phase(n int) *PhaseStats {
	for i := range r.Phases {
		if r.Phases[i].Scrapers == n {
			return &r.Phases[i]
		}
	}
	return nil
}

// CPUPerCycle is the CPU of one groups poll plus one offsets poll when the
// split run measured them apart, else NaN.
func (r *Result) CPUPerCycle() float64 {
	if r.Split == nil {
		return math.NaN()
	}
	return r.Split.OffsetsPerPoll + r.Split.GroupsPerPoll
}

// WriteTables writes the result tables in Markdown.
func WriteTables(w io.Writer, results []*Result) {
	full := filter(results, func(r *Result) bool { return r.Full })
	curve := filter(results, func(r *Result) bool { return r.Curve })
	if len(full) > 0 {
		fmt.Fprintf(w, "### Results\n\n")
		writeSummary(w, full)
		fmt.Fprintf(w, "\n### Polls and Kafka traffic (idle window, counted at the brokers)\n\n")
		writePolls(w, full)
		fmt.Fprintf(w, "\n### Scrapes\n\n")
		writeScrapes(w, full)
	}
	if len(curve) > 0 {
		fmt.Fprintf(w, "\n### Curve\n\n")
		writeCurve(w, curve)
	}
	for _, r := range results {
		for _, e := range r.Remeasured {
			fmt.Fprintf(w, "\n- %s: %s", r.Name, e)
		}
		for _, e := range r.Errors {
			fmt.Fprintf(w, "\n- **%s: %s**", r.Name, e)
		}
	}
	fmt.Fprintln(w)
}

func filter(rs []*Result, keep func(*Result) bool) []*Result {
	var out []*Result
	for _, r := range rs {
		if keep(r) {
			out = append(out, r)
		}
	}
	return out
}

func writeSummary(w io.Writer, rs []*Result) {
	fmt.Fprintln(w, "| world | groups (+ live) | group-partitions | series | text exposition | OpenMetrics gzip | all groups served after start | idle CPU | CPU per cycle (groups + offsets poll) | heap in use (idle) | peak RSS: start to 4 scrapers / all loads / 50 scrapers at limit 50 | other processes' CPU (idle window / whole run) |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range rs {
		om := float64(r.Series.OpenMetricsGzip)
		high := "—"
		if r.High != nil {
			high = mb(r.HighPeakRSS)
		}
		cycle := "—"
		if c := r.CPUPerCycle(); !math.IsNaN(c) {
			cycle = fmt.Sprintf("%.3f CPU-s (%.3f + %.3f)", c, r.Split.GroupsPerPoll, r.Split.OffsetsPerPoll)
		} else if r.Idle.Period > 0 {
			cycle = fmt.Sprintf("%.3f CPU-s per %gs period", r.Idle.CPUPerPeriod, r.Idle.Period)
		}
		fmt.Fprintf(w, "| %s `%s` | %s (+%d) | %s | %s | %s | %s | %s | %.2f CPU-s/min | %s | %s | %s / %s / %s | %s / %s |\n",
			r.Name, r.World, thousands(r.Groups), len(r.LiveGroups), thousands(r.GroupParts), thousands(r.Series.Total),
			mb(int64(r.Series.TextBytes)), mbf(om), secs(r.ServedAfter), r.Idle.CPUPerMin, cycle, mbf(r.Idle.Heap),
			mb(r.PeakThrough(4)), mb(r.PeakRSS), high, cores(r.Idle.Foreign), cores(r.Foreign))
	}
}

func writePolls(w io.Writer, rs []*Result) {
	fmt.Fprintln(w, "| world | groups poll wall (mean) | offsets poll wall (mean) | requests per groups poll | requests per offsets poll | bytes per groups poll (sent / received) | bytes per offsets poll (sent / received) | requests by API over the window | exporter's own count agrees | all clients' requests: control hook / wire |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range rs {
		k := r.Kafka
		var keys []string
		for name := range k.ByKey {
			keys = append(keys, name)
		}
		sort.Strings(keys)
		var by []string
		agree := true
		for _, name := range keys {
			by = append(by, fmt.Sprintf("%s %d", name, k.ByKey[name].Requests))
			if name != "ApiVersions" && name != "FindCoordinator" && k.SelfReported[name] != float64(k.ByKey[name].Requests) {
				agree = false
			}
		}
		var ctl, wire int64
		for _, n := range k.ControlAll {
			ctl += n
		}
		for _, n := range k.WireAll {
			wire += n
		}
		fmt.Fprintf(w, "| %s | %s | %s | %.1f | %.1f | %s / %s | %s / %s | %s (%g groups, %g offsets polls) | %s | %d / %d |\n",
			r.Name, ms(r.Idle.GroupsWall), ms(r.Idle.OffsetsWall), k.GroupsPoll.Requests, k.OffsetPoll.Requests,
			kb(k.GroupsPoll.ReqBytes), kb(k.GroupsPoll.RespBytes), kb(k.OffsetPoll.ReqBytes), kb(k.OffsetPoll.RespBytes),
			strings.Join(by, ", "), r.Idle.GroupsPolls, r.Idle.OffsetsPolls, yesNo(agree), ctl, wire)
	}
}

func writeScrapes(w io.Writer, rs []*Result) {
	fmt.Fprintln(w, "| world | scrapers | limit | exporter age | other processes | ok | 503 | failed | p50 | p99 | max | first scrape of a snapshot: p50 (n) / max | other scrapes p50 | exporter CPU per scrape | peak RSS | max heap in use |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range rs {
		var phases []PhaseStats
		if r.Paced != nil {
			phases = append(phases, *r.Paced)
		}
		phases = append(phases, r.Phases...)
		if r.High != nil {
			phases = append(phases, *r.High)
		}
		for _, p := range phases {
			scrapers := fmt.Sprint(p.Scrapers)
			if p.Every > 0 {
				scrapers = fmt.Sprintf("%d, every %gs", p.Scrapers, p.Every)
			}
			fmt.Fprintf(w, "| %s | %s | %d | %.0f s | %s | %d | %d | %d | %s | %s | %s | %s (%d) / %s | %s | %.4f CPU-s | %s | %s |\n",
				r.Name, scrapers, p.MaxInFlight, p.Age, cores(p.Foreign), p.OK, p.Rejected, p.Failed, ms(p.P50), ms(p.P99), ms(p.Max),
				ms(p.ColdP50), p.ColdN, ms(p.ColdMax), ms(p.WarmP50), p.CPUPerScrape, mb(p.PeakRSS), mbf(p.MaxHeap))
		}
	}
}

func writeCurve(w io.Writer, rs []*Result) {
	fmt.Fprintln(w, "| groups | group-partitions | series | text exposition | served after start | idle CPU | idle CPU per 1,000 groups | groups poll wall | offsets poll wall | requests per cycle | heap in use | peak RSS (start to 4 scrapers) | scrape p50, 1 scraper back to back | scrape p50, 1 scraper once per snapshot |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range rs {
		p50, cold := math.NaN(), math.NaN()
		if p1 := r.Phase(1); p1 != nil {
			p50 = p1.P50
		}
		if r.Paced != nil {
			cold = r.Paced.P50
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %.2f CPU-s/min | %.3f | %s | %s | %.0f | %s | %s | %s | %s |\n",
			thousands(r.Groups), thousands(r.GroupParts), thousands(r.Series.Total), mb(int64(r.Series.TextBytes)), secs(r.ServedAfter),
			r.Idle.CPUPerMin, r.Idle.CPUPerMin/float64(r.Groups)*1000, ms(r.Idle.GroupsWall), ms(r.Idle.OffsetsWall),
			r.Kafka.GroupsPoll.Requests+r.Kafka.OffsetPoll.Requests, mbf(r.Idle.Heap), mb(r.PeakThrough(4)), ms(p50), ms(cold))
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Growth exponent k (cost ∝ groupsᵏ; k ≤ 1 is linear or better), over the whole curve and between consecutive points:")
	fmt.Fprintln(w)
	for _, m := range curveMetrics {
		fmt.Fprintf(w, "- %s: k = %s\n", m.name, exponent(rs, m.get))
	}
	fmt.Fprintln(w)
	for _, m := range curveMetrics[:3] {
		fmt.Fprintf(w, "```text\n%s\n```\n\n", chart(rs, m.name, m.unit, m.get))
	}
}

type curveMetric struct {
	name, unit string
	get        func(*Result) float64
}

var curveMetrics = []curveMetric{
	{"idle CPU", "CPU-s/min", func(r *Result) float64 { return r.Idle.CPUPerMin }},
	{"peak RSS (start to 4 scrapers)", "MB", func(r *Result) float64 { return float64(r.PeakThrough(4)) / 1e6 }},
	{"scrape p50, once per snapshot", "ms", func(r *Result) float64 {
		if r.Paced != nil {
			return r.Paced.P50 * 1000
		}
		return math.NaN()
	}},
	{"series", "series", func(r *Result) float64 { return float64(r.Series.Total) }},
	{"heap in use", "MB", func(r *Result) float64 { return r.Idle.Heap / 1e6 }},
	{"groups poll wall", "ms", func(r *Result) float64 { return r.Idle.GroupsWall * 1000 }},
	{"offsets poll wall", "ms", func(r *Result) float64 { return r.Idle.OffsetsWall * 1000 }},
	{"requests per cycle", "requests", func(r *Result) float64 { return r.Kafka.GroupsPoll.Requests + r.Kafka.OffsetPoll.Requests }},
}

// growth is log(cost ratio) / log(groups ratio): cost ∝ groupsᵏ.
func growth(ya, yb float64, ga, gb int) float64 {
	if !(ya > 0 && yb > 0) || ga == gb {
		return math.NaN()
	}
	return math.Log(yb/ya) / math.Log(float64(gb)/float64(ga))
}

// exponent is the growth exponent over the whole curve and between its
// consecutive points.
func exponent(rs []*Result, get func(*Result) float64) string {
	if len(rs) < 2 {
		return "—"
	}
	a, b := rs[0], rs[len(rs)-1]
	out := fmt.Sprintf("%.2f overall (%s → %s groups: %.3g → %.3g); by step:", growth(get(a), get(b), a.Groups, b.Groups),
		thousands(a.Groups), thousands(b.Groups), get(a), get(b))
	for i := 1; i < len(rs); i++ {
		out += fmt.Sprintf(" %.2f", growth(get(rs[i-1]), get(rs[i]), rs[i-1].Groups, rs[i].Groups))
	}
	return out
}

// chart draws one horizontal bar per point.
func chart(rs []*Result, name, unit string, get func(*Result) float64) string {
	var top float64
	for _, r := range rs {
		if v := get(r); v > top {
			top = v
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%s) by groups\n", name, unit)
	const width = 50
	for _, r := range rs {
		v := get(r)
		n := 0
		if top > 0 && v > 0 {
			n = int(math.Round(v / top * width))
		}
		fmt.Fprintf(&b, "%7s │%-*s %.3g\n", thousands(r.Groups), width, strings.Repeat("█", n), v)
	}
	return strings.TrimRight(b.String(), "\n")
}

// Target is one of issue 10's targets, checked.
type Target struct {
	World, What, Limit, Measured string
	Holds                        bool
	Known                        bool
}

// Targets checks issue 10's targets against the results named b (2,000
// groups / 80,000 group-partitions), c (10,000 / 100,000) and the curve.
func Targets(results []*Result) []Target {
	var out []Target
	byName := map[string]*Result{}
	for _, r := range results {
		byName[r.Name] = r
	}
	add := func(world, what, limit string, v, lim float64, format func(float64) string) {
		t := Target{World: world, What: what, Limit: limit, Measured: format(v), Known: !math.IsNaN(v)}
		t.Holds = t.Known && v <= lim
		out = append(out, t)
	}
	if r := byName["b"]; r != nil {
		p4 := r.Phase(4)
		if p4 != nil {
			add(r.World, "scrape p50, 4 concurrent scrapers", "≤ 100 ms", p4.P50, 0.100, ms)
			add(r.World, "scrape p99, 4 concurrent scrapers", "≤ 300 ms", p4.P99, 0.300, ms)
		}
		peak := float64(r.PeakRSS)
		if r.High != nil {
			peak = math.Max(peak, float64(r.HighPeakRSS))
		}
		add(r.World, "peak RSS including 50 concurrent scrapers", "≤ 250 MB", peak, 250e6, func(v float64) string { return mb(int64(v)) })
		add(r.World, "series at default settings", "≤ 200,000", float64(r.Series.Total), 200000, func(v float64) string { return thousands(int(v)) })
	}
	if r := byName["c"]; r != nil {
		if p4 := r.Phase(4); p4 != nil {
			add(r.World, "scrape p50, 4 concurrent scrapers", "≤ 250 ms", p4.P50, 0.250, ms)
		}
		if r.Paced != nil {
			add(r.World, "scrape p50, 1 scraper once per snapshot (what a Prometheus at any interval ≥ 2 s waits)", "≤ 250 ms", r.Paced.P50, 0.250, ms)
		}
		add(r.World, "peak RSS with 4 concurrent scrapers (start to the 4-scraper load)", "≤ 600 MB", float64(r.PeakThrough(4)), 600e6, func(v float64) string { return mb(int64(v)) })
		add(r.World, "idle poll CPU", "≤ 2 CPU-s/min", r.Idle.CPUPerMin, 2, func(v float64) string { return fmt.Sprintf("%.2f CPU-s/min", v) })
		add(r.World, "all groups served after start", "≤ 5 s", r.ServedAfter, 5, secs)
	}
	curve := filter(results, func(r *Result) bool { return r.Curve })
	if len(curve) >= 2 {
		// Linear or better at the top of the curve: the growth exponent
		// between its two largest points (a fixed baseline flatters the
		// exponent over the whole range).
		a, b := curve[len(curve)-2], curve[len(curve)-1]
		worst, what := math.Inf(-1), ""
		for _, m := range curveMetrics[:5] {
			if k := growth(m.get(a), m.get(b), a.Groups, b.Groups); k > worst {
				worst, what = k, m.name
			}
		}
		add(fmt.Sprintf("curve %s → %s groups", thousands(a.Groups), thousands(b.Groups)),
			"cost grows linearly or better between the two largest points (largest exponent k: "+what+")", "k ≤ 1.05", worst, 1.05, func(v float64) string { return fmt.Sprintf("k = %.2f", v) })
	}
	return out
}

// WriteTargets writes the targets table.
func WriteTargets(w io.Writer, ts []Target) {
	if len(ts) == 0 {
		return
	}
	fmt.Fprintln(w, "| world | target | limit | measured | holds |")
	fmt.Fprintln(w, "|---|---|---|---|---|")
	for _, t := range ts {
		verdict := "**no**"
		switch {
		case !t.Known:
			verdict = "not measured"
		case t.Holds:
			verdict = "yes"
		}
		fmt.Fprintf(w, "| `%s` | %s | %s | %s | %s |\n", t.World, t.What, t.Limit, t.Measured, verdict)
	}
}

// WriteBefore compares with the "before" figures of issue 10.
func WriteBefore(w io.Writer, results []*Result) {
	byName := map[string]*Result{}
	for _, r := range results {
		byName[r.Name] = r
	}
	type before struct {
		name, world                            string
		scrape, cpu, series, bytes, rss4, idle string
	}
	rows := []before{
		{name: "b", world: "2,000 groups, 80,000 group-partitions", scrape: "0.91 s", cpu: "1.30 s", series: "326,150", bytes: "30.8 MB", rss4: "1,415–1,490 MB", idle: "3.2 CPU-s/min"},
		{name: "c", world: "10,000 groups, 100,000 group-partitions", scrape: "1.73 s", cpu: "2.49 s (2.73 gzip)", series: "712,200", bytes: "63.6 MB", rss4: "3,281 MB", idle: "7.35 CPU-s/min"},
	}
	fmt.Fprintln(w, "| world | | scrape wall | CPU per scrape | series | exposition | peak RSS with 4 concurrent scrapers | CPU with no scrapes |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|")
	for _, b := range rows {
		r := byName[b.name]
		fmt.Fprintf(w, "| %s | before (issue 10) | %s | %s | %s | %s | %s | %s |\n", b.world, b.scrape, b.cpu, b.series, b.bytes, b.rss4, b.idle)
		if r == nil {
			fmt.Fprintf(w, "| | now | not measured | | | | | |\n")
			continue
		}
		scrape, cpu := "—", "—"
		if p := r.Paced; p != nil {
			scrape = fmt.Sprintf("%s p50, %s max (1 scraper, once per snapshot)", ms(p.P50), ms(p.Max))
			cpu = fmt.Sprintf("%.3f s (once per snapshot: a rendering, OpenMetrics + gzip, and the live part)", p.CPUPerScrape)
		}
		if p4 := r.Phase(4); p4 != nil {
			scrape += fmt.Sprintf("; %s p50, %s p99 with 4 back to back", ms(p4.P50), ms(p4.P99))
			cpu += fmt.Sprintf("; %.4f s back to back", p4.CPUPerScrape)
		}
		fmt.Fprintf(w, "| | now | %s | %s | %s | %s text | %s | %.2f CPU-s/min |\n",
			scrape, cpu, thousands(r.Series.Total), mb(int64(r.Series.TextBytes)), mb(r.PeakThrough(4)), r.Idle.CPUPerMin)
	}
}

// Busy is the share of a core other processes may use before a figure is
// marked as taken on a busy machine.
const Busy = 0.3

// cores formats other processes' CPU, marked when the machine was busy.
func cores(c float64) string {
	if c > Busy {
		return fmt.Sprintf("%.2f cores ⚠", c)
	}
	return fmt.Sprintf("%.2f cores", c)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func ms(s float64) string {
	if math.IsNaN(s) {
		return "—"
	}
	v := s * 1000
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f ms", v)
	case v >= 10:
		return fmt.Sprintf("%.1f ms", v)
	default:
		return fmt.Sprintf("%.2f ms", v)
	}
}

func secs(s float64) string {
	if math.IsNaN(s) {
		return "—"
	}
	return fmt.Sprintf("%.2f s", s)
}

// mb formats bytes in MB (10⁶), as issue 10 states its figures.
func mb(b int64) string { return mbf(float64(b)) }

func mbf(b float64) string {
	if math.IsNaN(b) || b == 0 {
		return "—"
	}
	if b < 10e6 {
		return fmt.Sprintf("%.2f MB", b/1e6)
	}
	return fmt.Sprintf("%.0f MB", b/1e6)
}

func kb(b float64) string {
	if math.IsNaN(b) {
		return "—"
	}
	if b < 1e4 {
		return fmt.Sprintf("%.0f B", b)
	}
	if b < 1e7 {
		return fmt.Sprintf("%.1f kB", b/1e3)
	}
	return fmt.Sprintf("%.1f MB", b/1e6)
}

// thousands writes n with comma separators.
func thousands(n int) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
