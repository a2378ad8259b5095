package profilingpolicyextension // import "github.com/contprof/contprof/extension/profilingpolicyextension"

import (
	"fmt"
	"time"

	"github.com/contprof/contprof/internal/control"
	"github.com/contprof/contprof/internal/monitor/procfs"
)

// processByPID identifies a process for a manual task. A monitored process
// with that pid (as the processor sees it, with all its resource
// attributes) is preferred, so that silences line up with policy tasks;
// otherwise the process is read from /proc.
func (e *profilingPolicy) processByPID(pid int) (control.Process, error) {
	p, err := procProcess(pid)
	if err != nil {
		return control.Process{}, err
	}
	procs, _ := e.processes()
	var best *control.Process
	for i := range procs {
		q := &procs[i].Process
		if q.PID != pid || (q.Host != "" && q.Host != p.Host) {
			continue
		}
		if best == nil || absDur(q.StartTime.Sub(p.StartTime)) < absDur(best.StartTime.Sub(p.StartTime)) {
			best = q
		}
	}
	// The pid may have been reused since the view last saw it.
	if best != nil && absDur(best.StartTime.Sub(p.StartTime)) <= 2*time.Second {
		return *best, nil
	}
	return p, nil
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

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
