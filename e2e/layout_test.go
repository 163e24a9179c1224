package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The README's layout table names every directory at the top of the
// repository and under internal/, and nothing that is not there.
func TestReadmeLayoutMatchesTree(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	readme := readFile(t, filepath.Join(root, "README.md"))
	text := string(readme)
	start := strings.Index(text, "\n## Layout")
	if start < 0 {
		t.Fatal("README has no Layout section")
	}
	section := text[start+1:]
	if end := strings.Index(section, "\n## "); end >= 0 {
		section = section[:end]
	}
	listed := map[string]bool{}
	cell := regexp.MustCompile("`([a-z0-9_/.-]+)`")
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		first := strings.SplitN(line, "|", 3)[1]
		for _, m := range cell.FindAllStringSubmatch(first, -1) {
			listed[m[1]] = true
		}
	}
	for p := range listed {
		if fi, err := os.Stat(filepath.Join(root, p)); err != nil || !fi.IsDir() {
			t.Errorf("README layout lists %s, which is not a directory", p)
		}
	}
	want := func(dir string, prefix string) {
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			name := prefix + e.Name()
			if !e.IsDir() || strings.HasPrefix(e.Name(), ".") || name == "internal" || name == "cmd" {
				continue
			}
			if !listed[name] {
				t.Errorf("directory %s is missing from the README layout table", name)
			}
		}
	}
	want(root, "")
	want(filepath.Join(root, "internal"), "internal/")
	want(filepath.Join(root, "cmd"), "cmd/")
}
