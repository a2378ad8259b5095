//go:build linux

package taskrun

import (
	"context"
	"io"
	"time"

	"github.com/contprof/contprof/internal/output/profiles"
	"github.com/contprof/contprof/internal/profiler/symbolize"
)

// Task is one profiling task for one process.
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

// Run is a started task.
type Run struct {
	pid int
	// started is when the subscription began: samples count from then.
	started time.Time
	loop    *Loop
	sym     *symbolize.Symbolizer
	sub     io.Closer
	report  func(final bool) (*profiles.Profile, error)
}

// Start checks t and subscribes to the profiler for t.PID with acquire;
// report drains sub into a profile (nil when nothing was gathered), final
// being set for the task's last report. target names the task kind in
// errors. An error means the task did not start.
func Start[S io.Closer](target string, sym *symbolize.Symbolizer, t Task,
	acquire func(pid int) (S, error), report func(sub S, final bool) (*profiles.Profile, error),
) (*Run, error) {
	loop, err := New(target, t.PID, t.Duration, t.ReportInterval)
	if err != nil {
		return nil, err
	}
	sub, err := acquire(t.PID)
	if err != nil {
		return nil, err
	}
	started := time.Now()
	// Best effort: a failure only means frames of this process may stay
	// unsymbolized if it exits before the first drain.
	_ = sym.Preload(t.PID)
	return &Run{
		pid: t.PID, started: started, loop: loop, sym: sym, sub: sub,
		report: func(final bool) (*profiles.Profile, error) { return report(sub, final) },
	}, nil
}

// Started is when the task began to gather samples (its subscription
// started; the profiler was loaded before).
func (r *Run) Started() time.Time { return r.started }

// Run emits a profile for every report interval that gathered something,
// and a final one, until the duration elapses, the process exits (a clean
// end: what was collected is emitted) or ctx is done (then ctx.Err() is
// returned). It closes the task's subscription before returning.
func (r *Run) Run(ctx context.Context, emit func(*profiles.Profile)) error {
	defer r.sym.Forget(r.pid)
	defer r.sub.Close()
	return r.loop.Run(ctx, func(final bool) error {
		p, err := r.report(final)
		if p != nil {
			emit(p)
		}
		return err
	})
}
