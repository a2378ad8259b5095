//go:build !linux

package profilingpolicyextension // import "github.com/contprof/contprof/extension/profilingpolicyextension"

import (
	"fmt"
	"runtime"

	"github.com/contprof/contprof/internal/control"
)

// procProcess: processes are read from /proc, which only Linux has.
func procProcess(pid int) (control.Process, error) {
	return control.Process{}, fmt.Errorf("pid: %d: reading processes from /proc is Linux only (this is %s)", pid, runtime.GOOS)
}
