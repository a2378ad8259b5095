//go:build linux

package ebpfprocessreceiver // import "github.com/contprof/contprof/receiver/ebpfprocessreceiver"

import (
	"errors"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componentstatus"
	"go.uber.org/zap"

	"github.com/contprof/contprof/internal/control"
	"github.com/contprof/contprof/internal/control/policy"
	"github.com/contprof/contprof/internal/monitor/procfs"
	"github.com/contprof/contprof/internal/output/taskevents"
	"github.com/contprof/contprof/internal/profiler/privilege"
)

var (
	_ control.Admitter       = (*executor)(nil)
	_ control.StatusReporter = (*executor)(nil)
)

// probePrivileges checks once what profiling may do and says it in one
// log line and the component status: a collector without CAP_BPF would
// otherwise only show it as one failed task per trigger.
func (r *ebpfReceiver) probePrivileges(host component.Host) {
	r.priv = privilege.Probe("/sys")
	sum := r.priv.Summary()
	if sum == "" {
		r.logger.Info("eBPF profiling: every privilege and kernel feature is present")
		return
	}
	r.logger.Warn("eBPF profiling is limited: "+sum,
		zap.Strings("missing", r.priv.Missing), zap.Any("disabled_targets", r.priv.DisabledTargets()))
	componentstatus.ReportStatus(host, componentstatus.NewRecoverableErrorEvent(errors.New(sum)))
}

// Admit refuses, before a task exists, what cannot run: a target whose
// privileges or kernel features are missing, and an on- or off-CPU task
// on a kernel thread or a zombie. It only reads /proc/PID/stat, so the
// controller can call it under its lock.
func (e *executor) Admit(target policy.Target, procs []control.Process) error {
	err := e.admit(target, procs)
	if err != nil {
		e.r.events.emit(taskevents.Event{Name: taskevents.Refused, Task: control.Task{Target: target, Process: procs}, Err: err})
	}
	return err
}

func (e *executor) admit(target policy.Target, procs []control.Process) error {
	if err := e.r.priv.Admit(target); err != nil {
		return err
	}
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

// ExecutorStatus is what GET /api/v1/status shows for this receiver.
func (e *executor) ExecutorStatus() control.ExecutorStatus {
	p := e.r.priv
	return control.ExecutorStatus{
		Component: e.r.set.ID.String(),
		Targets:   e.Targets(),
		Disabled:  p.Disabled,
		Have:      p.Have,
		Missing:   p.Missing,
		Degraded:  p.Degraded,
		UID:       p.UID,
	}
}
