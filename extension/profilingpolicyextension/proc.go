package profilingpolicyextension // import "github.com/contprof/contprof/extension/profilingpolicyextension"

import (
	"time"

	"github.com/contprof/contprof/internal/control"
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
