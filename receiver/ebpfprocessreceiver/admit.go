package ebpfprocessreceiver // import "github.com/contprof/contprof/receiver/ebpfprocessreceiver"

import (
	"github.com/contprof/contprof/internal/control"
	"github.com/contprof/contprof/internal/control/policy"
	"github.com/contprof/contprof/internal/monitor/procfs"
)

var _ control.Admitter = (*executor)(nil)

// Admit refuses, before a task exists, what cannot run: an on- or off-CPU
// task on a kernel thread or a zombie. It only reads /proc/PID/stat, so
// the controller can call it under its lock.
func (e *executor) Admit(target policy.Target, procs []control.Process) error {
	if target == policy.TargetNetwork {
		return nil
	}
	for _, p := range procs {
		if err := procfs.CheckTarget("/proc", p.PID); procfs.IsNotProfilable(err) {
			return err
		}
	}
	return nil
}
