//go:build linux

package offcpu

import (
	"github.com/contprof/contprof/internal/output/profiles"
	"github.com/contprof/contprof/internal/profiler/symbolize"
	"github.com/contprof/contprof/internal/profiler/taskrun"
)

// Task is one off-CPU profiling task for one process.
type Task = taskrun.Task

// TaskRun is a started task.
type TaskRun = taskrun.Run

// StartTask starts recording t.PID. An error means the task did not start.
// The task's final profile also holds the threads still blocked at the end,
// for the time they have been blocked during the task (see DrainFinal).
func StartTask(mgr *Manager, sym *symbolize.Symbolizer, t Task) (*TaskRun, error) {
	return taskrun.Start("off_cpu", sym, t, mgr.Acquire, func(sub *Subscription, final bool) (*profiles.Profile, error) {
		drain := sub.Drain
		if final {
			drain = sub.DrainFinal
		}
		b, err := drain()
		if b == nil || len(b.Samples) == 0 {
			return nil, err
		}
		return b.Profile(sym, t.Resource, t.Attributes), err
	})
}
