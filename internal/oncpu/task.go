//go:build linux

package oncpu

import (
	"context"
	"time"

	"github.com/contprof/contprof/internal/profiles"
	"github.com/contprof/contprof/internal/symbolize"
	"github.com/contprof/contprof/internal/taskrun"
)

// Task is one on-CPU profiling task for one process.
type Task struct {
	PID int
	// Duration bounds the task; zero means until ctx is done.
	Duration time.Duration
	// ReportInterval is how often a profile is emitted; default 10s.
	ReportInterval time.Duration
	// Resource and Attributes go on every profile (see
	// profiles.TaskAttributes for the trigger context).
	Resource, Attributes map[string]any
}

// TaskRun is a started task.
type TaskRun struct {
	t    Task
	loop *taskrun.Loop
	sub  *Subscription
	sym  *symbolize.Symbolizer
}

// StartTask starts sampling t.PID. An error means the task did not start.
func StartTask(mgr *Manager, sym *symbolize.Symbolizer, t Task) (*TaskRun, error) {
	loop, err := taskrun.New("on_cpu", t.PID, t.Duration, t.ReportInterval)
	if err != nil {
		return nil, err
	}
	sub, err := mgr.Acquire(t.PID)
	if err != nil {
		return nil, err
	}
	// Best effort: a failure only means frames of this process may stay
	// unsymbolized if it exits before the first drain.
	_ = sym.Preload(t.PID)
	return &TaskRun{t: t, loop: loop, sub: sub, sym: sym}, nil
}

// Run emits a profile for every report interval that has samples, and a
// final one, until the duration elapses, the process exits (a clean end:
// what was collected is emitted) or ctx is done (then ctx.Err() is
// returned). It releases the sampler for this task before returning.
func (r *TaskRun) Run(ctx context.Context, emit func(*profiles.Profile)) error {
	defer r.sym.Forget(r.t.PID)
	defer r.sub.Close()
	return r.loop.Run(ctx, func(bool) error {
		b, err := r.sub.Drain()
		if b != nil && len(b.Samples) > 0 {
			emit(b.Profile(r.sym, r.t.Resource, r.t.Attributes))
		}
		return err
	})
}
