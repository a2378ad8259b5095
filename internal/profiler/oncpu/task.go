//go:build linux

package oncpu

import (
	"github.com/contprof/contprof/internal/output/profiles"
	"github.com/contprof/contprof/internal/profiler/symbolize"
	"github.com/contprof/contprof/internal/profiler/taskrun"
)

// Task is one on-CPU profiling task for one process.
type Task = taskrun.Task

// TaskRun is a started task.
type TaskRun = taskrun.Run

// StartTask starts sampling t.PID. An error means the task did not start.
func StartTask(mgr *Manager, sym *symbolize.Symbolizer, t Task) (*TaskRun, error) {
	return taskrun.Start("on_cpu", sym, t, mgr.Acquire, func(sub *Subscription, _ bool) (*profiles.Profile, error) {
		b, err := sub.Drain()
		if b == nil || len(b.Samples) == 0 {
			return nil, err
		}
		return b.Profile(sym, t.Resource, t.Attributes), err
	})
}
