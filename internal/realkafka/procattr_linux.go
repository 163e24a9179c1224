package realkafka

import (
	"io"
	"os"
	"syscall"
)

// procAttr kills the child when the test process dies, so a crashed test
// leaves no Kafka client running.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// shrinkPipe makes the pipe of the child's standard output one page big
// (F_SETPIPE_SZ), so that a paused reader blocks the child's writes after a
// few lines rather than after 64 KiB.
func shrinkPipe(r io.Reader) {
	if f, ok := r.(*os.File); ok {
		const fSetPipeSz = 1031
		_, _, _ = syscall.Syscall(syscall.SYS_FCNTL, f.Fd(), fSetPipeSz, 4096)
	}
}
