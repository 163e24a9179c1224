package bench

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes the kernel kill the exporter if the benchmark dies
// without stopping it (a panic, a kill), so no exporter outlives a run.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
