package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"time"
)

// Machine describes where the benchmark ran.
type Machine struct {
	Nproc   string `json:"nproc"`
	Free    string `json:"free"`
	CPU     string `json:"cpu"`
	Kernel  string `json:"kernel"`
	Go      string `json:"go"`
	KFake   string `json:"kfake"`
	Sarama  string `json:"sarama"`
	Started string `json:"started"`
}

// DescribeMachine runs nproc and free -h and reads /proc.
func DescribeMachine() Machine {
	m := Machine{Go: runtime.Version(), Started: time.Now().UTC().Format(time.RFC3339)}
	m.Nproc = cmdOut("nproc")
	if m.Nproc == "" {
		m.Nproc = fmt.Sprint(runtime.NumCPU())
	}
	m.Free = cmdOut("free", "-h")
	m.Kernel = cmdOut("uname", "-srm")
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			switch d.Path {
			case "github.com/twmb/franz-go/pkg/kfake":
				m.KFake = d.Version
			case "github.com/IBM/sarama":
				m.Sarama = d.Version
			}
		}
	}
	return m
}

func cmdOut(name string, args ...string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).Output()
	if err != nil {
		return ""
	}
	return strings.TrimRight(string(out), "\n")
}

// ModuleRoot is the nearest directory at or above the working directory
// with this module's go.mod.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.HasPrefix(string(b), "module github.com/kafka-rebalance-exporter/kafka-rebalance-exporter\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("not inside the kafka-rebalance-exporter module")
		}
		dir = parent
	}
}

// BuildExporter compiles ./cmd/exporter into dir, as the Dockerfile
// builds it (CGO_ENABLED=0, -trimpath).
func BuildExporter(ctx context.Context, root, dir string) (string, error) {
	bin := filepath.Join(dir, "kafka-rebalance-exporter")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", bin, "./cmd/exporter")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/exporter: %v\n%s", err, out)
	}
	return bin, nil
}

// GoBenchmarks are the repository's Go benchmarks that docs/performance.md
// quotes.
var GoBenchmarks = [][]string{
	{"go", "test", "-run", "^$", "-bench", "Scrape", "-benchmem", "./collector/"},
	{"go", "test", "-run", "^$", "-bench", "TrackerObserve", "./internal/rebalance/"},
	{"go", "test", "-run", "^$", "-bench", "PollCycle", "-benchtime", "20x", "./internal/kafka/"},
}

// GoBench is one Go benchmark command and what it printed.
type GoBench struct {
	Command string `json:"command"`
	Output  string `json:"output"`
	Err     string `json:"error,omitempty"`
}

// RunGoBenchmarks runs GoBenchmarks in root, each bounded to 5 minutes.
func RunGoBenchmarks(ctx context.Context, root string) []GoBench {
	var out []GoBench
	for _, args := range GoBenchmarks {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		cmd := exec.CommandContext(cctx, args[0], args[1:]...)
		cmd.Dir = root
		b, err := cmd.CombinedOutput()
		cancel()
		g := GoBench{Command: shellQuote(args), Output: strings.TrimRight(string(b), "\n")}
		if err != nil {
			g.Err = err.Error()
		}
		out = append(out, g)
	}
	return out
}

// shellQuote joins args as a shell would need them.
func shellQuote(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " '\"$^*?[]{}()|&;<>\\`!#~") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		q[i] = a
	}
	return strings.Join(q, " ")
}

// ShellQuote is shellQuote for the command's own line.
func ShellQuote(args []string) string { return shellQuote(args) }
