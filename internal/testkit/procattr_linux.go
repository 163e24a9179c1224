package testkit

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes the kernel kill a started process if the test binary
// dies without running its cleanups (a panic, or go test's -timeout), so no
// exporter or Prometheus outlives a crashed run.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
