//go:build !linux

package bench

import "os/exec"

// dieWithParent is Linux-only; elsewhere the benchmark's own cleanup stops
// the exporter. (The measurements read /proc, so they need Linux anyway.)
func dieWithParent(*exec.Cmd) {}
