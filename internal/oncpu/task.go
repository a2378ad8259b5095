//go:build linux

package oncpu

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/contprof/contprof/internal/profiles"
	"github.com/contprof/contprof/internal/symbolize"
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
	t         Task
	sub       *Subscription
	sym       *symbolize.Symbolizer
	startTime string // /proc/PID/stat starttime, to notice PID reuse
}

// exitPoll is how often a running task checks that its process lives.
const exitPoll = time.Second

// StartTask starts sampling t.PID. An error means the task did not start.
func StartTask(mgr *Manager, sym *symbolize.Symbolizer, t Task) (*TaskRun, error) {
	if t.ReportInterval == 0 {
		t.ReportInterval = 10 * time.Second
	}
	if t.ReportInterval < 100*time.Millisecond {
		return nil, fmt.Errorf("on_cpu report_interval: %v is shorter than 100ms", t.ReportInterval)
	}
	if t.Duration < 0 {
		return nil, fmt.Errorf("on_cpu duration: %v is negative", t.Duration)
	}
	st, err := procStartTime(t.PID)
	if err != nil {
		return nil, fmt.Errorf("on_cpu: process %d: %w", t.PID, err)
	}
	sub, err := mgr.Acquire(t.PID)
	if err != nil {
		return nil, err
	}
	// Best effort: a failure only means frames of this process may stay
	// unsymbolized if it exits before the first drain.
	_ = sym.Preload(t.PID)
	return &TaskRun{t: t, sub: sub, sym: sym, startTime: st}, nil
}

// Run emits a profile for every report interval that has samples, and a
// final one, until the duration elapses, the process exits (a clean end:
// what was collected is emitted) or ctx is done (then ctx.Err() is
// returned). It releases the sampler for this task before returning.
func (r *TaskRun) Run(ctx context.Context, emit func(*profiles.Profile)) error {
	defer r.sym.Forget(r.t.PID)
	defer r.sub.Close()

	var end <-chan time.Time
	if r.t.Duration > 0 {
		timer := time.NewTimer(r.t.Duration)
		defer timer.Stop()
		end = timer.C
	}
	report := time.NewTicker(r.t.ReportInterval)
	defer report.Stop()
	poll := time.NewTicker(min(exitPoll, r.t.ReportInterval))
	defer poll.Stop()

	flush := func() error {
		b, err := r.sub.Drain()
		if b != nil && len(b.Samples) > 0 {
			emit(b.Profile(r.sym, r.t.Resource, r.t.Attributes))
		}
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), flush())
		case <-end:
			return flush()
		case <-report.C:
			if err := flush(); err != nil {
				return err
			}
		case <-poll.C:
			if st, err := procStartTime(r.t.PID); err != nil || st != r.startTime {
				return flush() // exited (or the PID was reused)
			}
		}
	}
}

// procStartTime returns field 22 of /proc/PID/stat (start time in clock
// ticks since boot), which with the PID identifies a process.
func procStartTime(pid int) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", errors.New("no such process")
		}
		return "", err
	}
	// The command name (field 2) may hold spaces and parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return "", errors.New("malformed /proc/PID/stat")
	}
	fields := strings.Fields(s[i+1:])
	if len(fields) < 20 {
		return "", errors.New("malformed /proc/PID/stat")
	}
	if fields[0] == "Z" || fields[0] == "X" {
		return "", errors.New("process has exited")
	}
	return fields[19], nil
}
