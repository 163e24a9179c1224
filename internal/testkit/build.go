package testkit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"
)

// modulePath is this repository's module, the one ModuleRoot looks for.
const modulePath = "github.com/kafka-rebalance-exporter/kafka-rebalance-exporter"

// ModuleRoot is the repository root: the nearest directory at or above the
// working directory (a test runs in its package's directory) whose go.mod
// declares this module.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(b, []byte("module "+modulePath+"\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod of " + modulePath + " at or above the working directory")
		}
		dir = parent
	}
}

// builds caches the binaries Build made, one per command, in one
// temporary directory.
var builds struct {
	mu   sync.Mutex
	dir  string
	bins map[string]string
}

// Build compiles the command ./cmd/<name> of this module (static, as the
// Dockerfile builds it: CGO_ENABLED=0, -trimpath) once per test binary and
// returns the binary's path; later calls return the same path. It needs no
// *testing.T, so a TestMain can build while it starts other things. The
// binaries live in one temporary directory until RemoveBinaries.
func Build(name string) (string, error) {
	builds.mu.Lock()
	defer builds.mu.Unlock()
	if bin, ok := builds.bins[name]; ok {
		return bin, nil
	}
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	if builds.dir == "" {
		dir, err := os.MkdirTemp("", "kre-test-bin-")
		if err != nil {
			return "", err
		}
		builds.dir, builds.bins = dir, map[string]string{}
	}
	bin := filepath.Join(builds.dir, name)
	if runtime.GOOS == "windows" {
		bin += ".exe"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", bin, "./cmd/"+name)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/%s: %w\n%s", name, err, out)
	}
	builds.bins[name] = bin
	return bin, nil
}

// Binary is Build for a test: a failed build fails it. A package that
// calls it should have a TestMain that calls RemoveBinaries after m.Run.
func Binary(t testing.TB, name string) string {
	t.Helper()
	bin, err := Build(name)
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// RemoveBinaries deletes what Build made; the next Build builds again.
func RemoveBinaries() {
	builds.mu.Lock()
	defer builds.mu.Unlock()
	if builds.dir != "" {
		os.RemoveAll(builds.dir)
	}
	builds.dir, builds.bins = "", nil
}
