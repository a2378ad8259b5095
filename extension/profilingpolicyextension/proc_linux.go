package profilingpolicyextension // import "github.com/contprof/contprof/extension/profilingpolicyextension"

import (
	"fmt"

	"github.com/contprof/contprof/internal/control"
	"github.com/contprof/contprof/internal/monitor/procfs"
)

// procProcess reads pid from /proc the way the ebpfprocess receiver does
// (procfs), so that a manual task names the process with the receiver's
// resource attributes and the processor's identity: the same silence key.
func procProcess(pid int) (control.Process, error) {
	// A kernel thread or a zombie would run a task that ends without a
	// profile: refuse it up front, saying why.
	if err := procfs.CheckTarget("/proc", pid); procfs.IsNotProfilable(err) {
		return control.Process{}, fmt.Errorf("pid: %w", err)
	}
	in, err := procfs.Lookup(procfs.Config{}, pid)
	if err != nil {
		return control.Process{}, err
	}
	return processOf(in), nil
}

// processOf is the process as the processor names it from the receiver's
// resource: host.name, process.pid and process.creation.time.
func processOf(in *procfs.Info) control.Process {
	return control.Process{Host: in.HostName, PID: int(in.PID), StartTime: in.StartTime.UTC(), Attributes: in.Resource()}
}
