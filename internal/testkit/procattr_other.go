//go:build !linux

package testkit

import "os/exec"

// dieWithParent has no portable equivalent outside Linux; the tests' own
// cleanups stop what they started.
func dieWithParent(*exec.Cmd) {}
