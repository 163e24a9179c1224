package e2e

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// instruction is one Dockerfile instruction with continuation lines joined.
type instruction struct {
	Cmd  string // upper case: FROM, RUN, ...
	Args string
}

func parseDockerfile(t testing.TB) []instruction {
	t.Helper()
	b := readFile(t, repoPath(t, "Dockerfile"))
	var out []instruction
	var cur strings.Builder
	for _, line := range strings.Split(string(b), "\n") {
		trimmed := strings.TrimSpace(line)
		if cur.Len() == 0 && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if strings.HasSuffix(trimmed, "\\") {
			cur.WriteString(strings.TrimSuffix(trimmed, "\\") + " ")
			continue
		}
		cur.WriteString(trimmed)
		full := cur.String()
		cur.Reset()
		cmd, args, _ := strings.Cut(full, " ")
		out = append(out, instruction{strings.ToUpper(cmd), strings.TrimSpace(args)})
	}
	return out
}

type stage struct {
	Name, Image  string
	Instructions []instruction
}

func dockerfileStageList(ins []instruction) []stage {
	var out []stage
	for _, in := range ins {
		if in.Cmd == "FROM" {
			f := strings.Fields(in.Args)
			s := stage{Image: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				s.Name = f[2]
			}
			out = append(out, s)
			continue
		}
		if len(out) > 0 {
			out[len(out)-1].Instructions = append(out[len(out)-1].Instructions, in)
		}
	}
	return out
}

func dockerfileStages(t testing.TB, ins []instruction) map[string]bool {
	out := map[string]bool{}
	for _, s := range dockerfileStageList(ins) {
		out[s.Name] = true
	}
	return out
}

func dockerfileExposes(t testing.TB, port string) bool {
	stages := dockerfileStageList(parseDockerfile(t))
	for _, in := range stages[len(stages)-1].Instructions {
		if in.Cmd == "EXPOSE" && strings.Fields(in.Args)[0] == port {
			return true
		}
	}
	return false
}

var goBuildOutput = regexp.MustCompile(`go build .*-o\s+(\S+).*\s(\./cmd/\w+)\s*$`)

// TestDockerfileImage checks the image's shape: a Go build stage no older
// than go.mod asks, static binaries, and a non-root final stage that runs
// the exporter built from ./cmd/exporter and exposes its port.
func TestDockerfileImage(t *testing.T) {
	stages := dockerfileStageList(parseDockerfile(t))
	if len(stages) < 2 {
		t.Fatalf("want a multi-stage Dockerfile, got %d stage(s)", len(stages))
	}
	build := stages[0]
	goImage := regexp.MustCompile(`^golang:(\d+\.\d+(\.\d+)?)`).FindStringSubmatch(build.Image)
	if goImage == nil {
		t.Fatalf("first stage %q is not a pinned golang image", build.Image)
	}
	gomod := readFile(t, repoPath(t, "go.mod"))
	goDirective := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(gomod)
	if goDirective == nil || versionLess(goImage[1], string(goDirective[1])) {
		t.Errorf("build stage uses Go %s, go.mod needs %s", goImage[1], goDirective[1])
	}

	built := map[string]string{} // output path -> package
	for _, in := range build.Instructions {
		if in.Cmd != "RUN" || !strings.Contains(in.Args, "go build") {
			continue
		}
		if !strings.Contains(in.Args, "CGO_ENABLED=0") {
			t.Errorf("go build without CGO_ENABLED=0 (the runtime image has no libc): %s", in.Args)
		}
		m := goBuildOutput.FindStringSubmatch(in.Args)
		if m == nil {
			t.Errorf("cannot read the output and package of: %s", in.Args)
			continue
		}
		built[m[1]] = m[2]
	}
	final := stages[len(stages)-1]
	if !strings.HasPrefix(final.Image, "gcr.io/distroless/static") && final.Image != "scratch" {
		t.Errorf("final stage %s: want distroless static or scratch", final.Image)
	}
	copied := map[string]string{} // image path -> package
	var user, entrypoint string
	for _, in := range final.Instructions {
		switch in.Cmd {
		case "COPY":
			f := strings.Fields(in.Args)
			if len(f) == 3 && strings.HasPrefix(f[0], "--from=") {
				copied[f[2]] = built[f[1]]
			}
		case "USER":
			user = in.Args
		case "ENTRYPOINT":
			entrypoint = in.Args
		}
	}
	if u := strings.Split(user, ":")[0]; u == "" || u == "root" || u == "0" {
		t.Errorf("final stage runs as %q, want a non-root user", user)
	}
	m := regexp.MustCompile(`^\["([^"]+)"`).FindStringSubmatch(entrypoint)
	if m == nil || copied[m[1]] != "./cmd/exporter" {
		t.Errorf("final stage's ENTRYPOINT %s is not the binary built from ./cmd/exporter (copied: %v)", entrypoint, copied)
	}
	if !dockerfileExposes(t, "9308") {
		t.Error("final stage does not EXPOSE 9308")
	}
}

// versionLess compares dotted numeric versions.
func versionLess(a, b string) bool {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) || i < len(bs); i++ {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(as[i])
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(bs[i])
		}
		if x != y {
			return x < y
		}
	}
	return false
}

// TestDockerfileBuildCommands runs the build stage's RUN commands as
// written, in a copy of the build context filtered by .dockerignore, with
// the image's /out directory mapped to a temporary one. It then checks that
// the exporter binary carries the version passed as a build argument.
func TestDockerfileBuildCommands(t *testing.T) {
	stages := dockerfileStageList(parseDockerfile(t))
	ctxDir := t.TempDir()
	ignore := loadDockerignore(t)
	copyContext(t, repoRoot(t), ctxDir, ignore)
	outDir := filepath.Join(t.TempDir(), "out")

	version := fmt.Sprintf("e2e-%d", os.Getpid())
	env := []string{"CGO_ENABLED=1"} // the Dockerfile must turn cgo off itself
	for _, in := range stages[0].Instructions {
		switch in.Cmd {
		case "ARG":
			name, def, _ := strings.Cut(in.Args, "=")
			if name == "VERSION" {
				def = version
			}
			env = append(env, name+"="+def)
		case "RUN":
			cmd := stripRunFlags(in.Args)
			cmd = strings.ReplaceAll(cmd, "/out/", outDir+"/")
			if err := os.MkdirAll(outDir, 0o755); err != nil {
				t.Fatal(err)
			}
			if out, err := run(t, ctxDir, env, "sh", "-c", cmd); err != nil {
				t.Fatalf("RUN %s\n%v\n%s", cmd, err, out)
			}
		}
	}
	exporter := filepath.Join(outDir, "exporter")
	out, err := run(t, ctxDir, nil, exporter, "-version")
	if err != nil {
		t.Fatalf("%s -version: %v\n%s", exporter, err, out)
	}
	if !strings.Contains(out, "version "+version) || !strings.Contains(out, "build user:       docker") {
		t.Errorf("exporter -version does not show the stamped version %s and build user docker:\n%s", version, out)
	}
	if _, err := os.Stat(filepath.Join(outDir, "loadgen")); err != nil {
		t.Errorf("the build stage did not build loadgen: %v", err)
	}
}

// stripRunFlags removes RUN's own options (--mount=..., --network=...).
func stripRunFlags(args string) string {
	for strings.HasPrefix(args, "--") {
		_, rest, _ := strings.Cut(args, " ")
		args = strings.TrimSpace(rest)
	}
	return args
}

// dockerignore holds .dockerignore patterns in order; a later match wins,
// "!" re-includes.
type dockerignore []string

func loadDockerignore(t testing.TB) dockerignore {
	b := readFile(t, repoPath(t, ".dockerignore"))
	var out dockerignore
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "#") {
			out = append(out, strings.TrimPrefix(line, "/"))
		}
	}
	return out
}

// ignored reports whether rel (slash-separated, relative to the context)
// is left out of the build context.
func (d dockerignore) ignored(rel string) bool {
	ignored := false
	for _, p := range d {
		neg := strings.HasPrefix(p, "!")
		p = strings.TrimPrefix(p, "!")
		if matchIgnore(p, rel) {
			ignored = !neg
		}
	}
	return ignored
}

// matchIgnore matches a pattern against a path or any of its parents, with
// a leading "**/" matching any number of directories.
func matchIgnore(pattern, rel string) bool {
	parts := strings.Split(rel, "/")
	for n := 1; n <= len(parts); n++ {
		prefix := strings.Join(parts[:n], "/")
		if rest, ok := strings.CutPrefix(pattern, "**/"); ok {
			for i := 0; i < n; i++ {
				if m, _ := path.Match(rest, strings.Join(parts[i:n], "/")); m {
					return true
				}
			}
			continue
		}
		if m, _ := path.Match(pattern, prefix); m {
			return true
		}
	}
	return false
}

func TestDockerignoreMatching(t *testing.T) {
	d := dockerignore{".git", "*.md", "**/testdata", "**/*_test.go", "docs", "!docs/keep.md"}
	for rel, want := range map[string]bool{
		".git/config": true, "README.md": true, "docs/runbook.md": true, "docs/keep.md": false,
		"collector/testdata/x.golden": true, "collector/collector.go": false, "collector/collector_test.go": true,
		"cmd/exporter/main.go": false, "go.mod": false,
	} {
		if got := d.ignored(rel); got != want {
			t.Errorf("ignored(%q) = %v, want %v", rel, got, want)
		}
	}
}

func copyContext(t testing.TB, src, dst string, ignore dockerignore) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if rel == "." {
			return nil
		}
		if ignore.ignored(filepath.ToSlash(rel)) {
			if e.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		target := filepath.Join(dst, rel)
		if e.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !e.Type().IsRegular() {
			return nil
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.Create(target)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
	if err != nil {
		t.Fatal(err)
	}
}
