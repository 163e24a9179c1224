package main

import (
	"bytes"
	"testing"
)

// The standard set holds issue 10's worlds under the names the targets
// look for, and the curve from 100 to 10,000 groups.
func TestStandardPlan(t *testing.T) {
	steps, err := plan(nil, "", "100x10", false)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	var curve []int
	for _, s := range steps {
		got[s.Name] = s.Spec.String()
		if s.Curve {
			curve = append(curve, s.Spec.Groups)
		}
	}
	if got["a"] != "100x1x1000" || got["b"] != "2000x50x20x2" || got["c"] != "10000x100x10" {
		t.Fatalf("worlds: %v", got)
	}
	if len(curve) != 6 || curve[0] != 100 || curve[5] != 10000 {
		t.Fatalf("curve: %v", curve)
	}
	last := steps[len(steps)-1]
	if !last.Full || !last.Grow || last.Spec.GroupPartitions() != 100000 {
		t.Fatalf("last step: %+v", last)
	}
}

func TestFlagsRejected(t *testing.T) {
	for _, args := range [][]string{{"-world", "1x2"}, {"-env", "FOO=bar"}, {"-scrapers", "0"}, {"stray"}} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 2 {
			t.Errorf("%v: exit %d, want 2 (%s)", args, code, errb.String())
		}
	}
}
