package main

import (
	"context"
	"debug/buildinfo"
	"os"
	"os/exec"
	"regexp"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/version"

	"github.com/kafka-rebalance-exporter/kafka-rebalance-exporter/internal/testkit"
)

// TestMain removes the binaries testkit.Build made for this package.
func TestMain(m *testing.M) {
	code := m.Run()
	testkit.RemoveBinaries()
	os.Exit(code)
}

// A binary built with a plain go build, as the README says, reports the
// commit it was built from, its module version and the commit time:
// Go embeds them, and main stamps prometheus/common/version from them
// when no -ldflags did.
func TestGoBuildBinaryReportsItsRevision(t *testing.T) {
	root, err := testkit.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("git", "-C", root, "rev-parse", "--git-dir").CombinedOutput(); err != nil {
		t.Skipf("not a git checkout, so go build embeds no revision: %v %s", err, out)
	}
	// Go's default is -buildvcs=auto; a machine's GOFLAGS may turn it off
	// (go env -w GOFLAGS=-buildvcs=false), which an operator's go build
	// would not have. testkit.Build builds with this environment.
	var flags []string
	for _, f := range strings.Fields(os.Getenv("GOFLAGS")) {
		if !strings.HasPrefix(f, "-buildvcs") {
			flags = append(flags, f)
		}
	}
	t.Setenv("GOFLAGS", strings.Join(append(flags, "-buildvcs=auto"), " "))
	bin := testkit.Binary(t, "exporter")

	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	rev := settings["vcs.revision"]
	if !regexp.MustCompile(`^[0-9a-f]{40}$`).MatchString(rev) {
		t.Fatalf("go build embedded no commit (vcs.revision %q, settings %v)", rev, settings)
	}
	// The commit is this checkout's (HEAD may move on while the test runs).
	if out, err := exec.Command("git", "-C", root, "cat-file", "-e", rev+"^{commit}").CombinedOutput(); err != nil {
		t.Fatalf("embedded revision %s is not a commit of %s: %v %s", rev, root, err, out)
	}
	if settings["vcs.modified"] == "true" {
		rev += "-modified"
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "-version").CombinedOutput()
	if err != nil {
		t.Fatalf("%s -version: %v\n%s", bin, err, out)
	}
	text := string(out)
	m := regexp.MustCompile(`version (\S+) \(branch: [^,]*, revision: (\S+)\)`).FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("-version printed no version line:\n%s", text)
	}
	if m[1] != info.Main.Version || m[1] == "" {
		t.Errorf("-version says version %q, the binary's module version is %q:\n%s", m[1], info.Main.Version, text)
	}
	if m[2] != rev {
		t.Errorf("-version says revision %q, want %q:\n%s", m[2], rev, text)
	}
	at, err := time.Parse(time.RFC3339, settings["vcs.time"])
	if err != nil {
		t.Fatal(err)
	}
	if want := "build date:       " + at.UTC().Format("20060102-15:04:05"); !strings.Contains(text, want) {
		t.Errorf("-version lacks %q:\n%s", want, text)
	}
}

func TestStampVersion(t *testing.T) {
	saved := [4]string{version.Version, version.Revision, version.BuildDate, version.Branch}
	t.Cleanup(func() {
		version.Version, version.Revision, version.BuildDate, version.Branch = saved[0], saved[1], saved[2], saved[3]
	})
	vcs := []debug.BuildSetting{{Key: "vcs.revision", Value: "0123abc"}, {Key: "vcs.time", Value: "2026-03-04T05:06:07Z"}, {Key: "vcs.modified", Value: "true"}}

	for _, tc := range []struct {
		name                   string
		preset                 [3]string // Version, Revision, BuildDate as -ldflags left them
		info                   debug.BuildInfo
		version, revision, day string
	}{
		{name: "go install of a tag", info: debug.BuildInfo{Main: debug.Module{Version: "v1.4.0"}},
			version: "v1.4.0", revision: "", day: ""},
		{name: "go build of a dirty checkout", info: debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20260304050607-0123abc+dirty"}, Settings: vcs},
			version: "v0.0.0-20260304050607-0123abc+dirty", revision: "0123abc-modified", day: "20260304-05:06:07"},
		{name: "no version at all", info: debug.BuildInfo{Settings: vcs[:2]},
			version: "(devel)", revision: "0123abc", day: "20260304-05:06:07"},
		{name: "ldflags win", preset: [3]string{"1.2.3", "feedbeef", "20250101-00:00:00"}, info: debug.BuildInfo{Main: debug.Module{Version: "v9.9.9"}, Settings: vcs},
			version: "1.2.3", revision: "feedbeef", day: "20250101-00:00:00"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			version.Version, version.Revision, version.BuildDate = tc.preset[0], tc.preset[1], tc.preset[2]
			stampVersion(&tc.info)
			if got := [3]string{version.Version, version.Revision, version.BuildDate}; got != [3]string{tc.version, tc.revision, tc.day} {
				t.Errorf("stamped %q, want %q", got, [3]string{tc.version, tc.revision, tc.day})
			}
		})
	}
}
