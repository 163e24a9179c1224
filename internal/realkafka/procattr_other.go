//go:build !linux

package realkafka

import (
	"io"
	"syscall"
)

func procAttr() *syscall.SysProcAttr { return nil }

func shrinkPipe(io.Reader) {}
