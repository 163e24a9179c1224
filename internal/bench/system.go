package bench

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"time"
)

// systemBusy is the CPU seconds all processes have used since boot
// (/proc/stat: every state but idle and iowait).
func systemBusy() (float64, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0, errors.New("unexpected /proc/stat format")
	}
	var busy int64
	for i, v := range f[1:] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, err
		}
		// user nice system idle iowait irq softirq steal guest guest_nice;
		// guest time is already in user.
		if i == 3 || i == 4 || i >= 8 {
			continue
		}
		busy += n
	}
	return float64(busy) / clockTicks(), nil
}

// Foreign measures the CPU other processes (neither this one nor the
// exporter) use over a span: on a shared machine they compete with the
// exporter, and latency and wall figures taken beside them are not the
// exporter's alone.
type Foreign struct {
	pid        int
	at         time.Time
	sys, bench float64
	exp        float64
}

// StartForeign starts a span; pid is the exporter (0: none).
func StartForeign(pid int) Foreign {
	f := Foreign{pid: pid, at: time.Now()}
	f.sys, _ = systemBusy()
	f.bench = benchCPU()
	if pid > 0 {
		f.exp = mustProc(pid).CPU
	}
	return f
}

// Cores is the mean number of cores other processes kept busy since the
// start of the span.
func (f Foreign) Cores() float64 {
	sys, err := systemBusy()
	if err != nil {
		return 0
	}
	used := benchCPU() - f.bench
	if f.pid > 0 {
		used += mustProc(f.pid).CPU - f.exp
	}
	w := time.Since(f.at).Seconds()
	if w <= 0 {
		return 0
	}
	return max(0, (sys-f.sys-used)/w)
}

// WaitQuiet waits, at most max, until other processes have used less than
// limit cores over a 5-second look; it returns the last look.
func WaitQuiet(ctx context.Context, limit float64, maxWait time.Duration) float64 {
	deadline := time.Now().Add(maxWait)
	for {
		f := StartForeign(0)
		sleep(ctx, 5*time.Second)
		c := f.Cores()
		if c < limit || time.Now().After(deadline) || ctx.Err() != nil {
			return c
		}
	}
}
