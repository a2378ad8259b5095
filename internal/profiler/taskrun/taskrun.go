//go:build linux

// Package taskrun is the life cycle shared by the profiling tasks of one
// process (on-CPU, off-CPU): a report every interval, a final report at the
// end, and the end itself — the task's duration, its process exiting (a
// clean end), or its context being cancelled.
package taskrun

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/contprof/contprof/internal/monitor/procfs"
)

const (
	// DefaultReportInterval is used when a task sets none.
	DefaultReportInterval = 10 * time.Second
	// MinReportInterval bounds how often a task drains the kernel's maps.
	MinReportInterval = 100 * time.Millisecond
	// exitPoll is how often a running task checks that its process lives.
	exitPoll = time.Second
)

// Loop is the validated schedule of one task.
type Loop struct {
	duration       time.Duration
	reportInterval time.Duration
	// alive reports whether what the task covers still runs.
	alive func() bool
}

// New checks the task's settings and that its process exists; target names
// the task kind in errors ("off_cpu report_interval: ..."). A zero
// reportInterval takes the default; a zero duration means until ctx is done.
func New(target string, pid int, duration, reportInterval time.Duration) (*Loop, error) {
	if pid <= 0 || pid > 1<<22 {
		return nil, fmt.Errorf("%s pid: %d is not a valid process id", target, pid)
	}
	st, err := procfs.StartTime(pid)
	if err != nil {
		return nil, fmt.Errorf("%s: process %d: %w", target, pid, err)
	}
	// The start time changes when the PID is reused.
	return NewGroup(target, duration, reportInterval, func() bool {
		now, err := procfs.StartTime(pid)
		return err == nil && now == st
	})
}

// NewGroup is New for a task over several processes: it ends cleanly once
// alive reports that none of them runs any more.
func NewGroup(target string, duration, reportInterval time.Duration, alive func() bool) (*Loop, error) {
	if reportInterval == 0 {
		reportInterval = DefaultReportInterval
	}
	if reportInterval < MinReportInterval {
		return nil, fmt.Errorf("%s report_interval: %v is shorter than %v", target, reportInterval, MinReportInterval)
	}
	if duration < 0 {
		return nil, fmt.Errorf("%s duration: %v is negative", target, duration)
	}
	return &Loop{duration: duration, reportInterval: reportInterval, alive: alive}, nil
}

// ReportInterval is the interval between reports.
func (l *Loop) ReportInterval() time.Duration { return l.reportInterval }

// Run calls flush(false) every report interval and flush(true) once at the
// end: when the duration elapses or the process exits (nil is returned
// unless flush fails) or when ctx is done (ctx.Err() is returned). An error
// from a periodic flush ends the task.
func (l *Loop) Run(ctx context.Context, flush func(final bool) error) error {
	var end <-chan time.Time
	if l.duration > 0 {
		timer := time.NewTimer(l.duration)
		defer timer.Stop()
		end = timer.C
	}
	report := time.NewTicker(l.reportInterval)
	defer report.Stop()
	poll := time.NewTicker(min(exitPoll, l.reportInterval))
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), flush(true))
		case <-end:
			return flush(true)
		case <-report.C:
			if err := flush(false); err != nil {
				return err
			}
		case <-poll.C:
			if !l.alive() {
				return flush(true) // exited (or the PID was reused)
			}
		}
	}
}
