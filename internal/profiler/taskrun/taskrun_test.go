package taskrun

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"testing"
	"time"
)

func TestNewErrors(t *testing.T) {
	for _, c := range []struct {
		pid              int
		duration, report time.Duration
		want             string
	}{
		{os.Getpid(), 0, time.Millisecond, "off_cpu report_interval: 1ms is shorter than 100ms"},
		{os.Getpid(), -time.Second, 0, "off_cpu duration: -1s is negative"},
		{0, 0, 0, "off_cpu pid: 0 is not a valid process id"},
		{1 << 22, 0, 0, "off_cpu: process 4194304: no such process"},
	} {
		_, err := New("off_cpu", c.pid, c.duration, c.report)
		if err == nil || err.Error() != c.want {
			t.Errorf("New(%d, %v, %v): %v, want %q", c.pid, c.duration, c.report, err, c.want)
		}
	}
	l, err := New("on_cpu", os.Getpid(), 0, 0)
	if err != nil || l.ReportInterval() != DefaultReportInterval {
		t.Errorf("defaults: %v, %v", l, err)
	}
}

type flushes struct{ periodic, final int }

func run(t *testing.T, ctx context.Context, pid int, d, report time.Duration) (flushes, time.Duration, error) {
	t.Helper()
	l, err := New("on_cpu", pid, d, report)
	if err != nil {
		t.Fatal(err)
	}
	var f flushes
	start := time.Now()
	err = l.Run(ctx, func(final bool) error {
		if final {
			f.final++
		} else {
			f.periodic++
		}
		return nil
	})
	return f, time.Since(start), err
}

func TestRunEnds(t *testing.T) {
	f, took, err := run(t, context.Background(), os.Getpid(), 550*time.Millisecond, 100*time.Millisecond)
	if err != nil || f.final != 1 || f.periodic < 3 || f.periodic > 6 || took < 550*time.Millisecond {
		t.Errorf("duration: %+v, %v after %v; want ~5 periodic and 1 final flush after 550ms", f, err, took)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	f, _, err = run(t, ctx, os.Getpid(), 0, time.Hour)
	if !errors.Is(err, context.DeadlineExceeded) || f.final != 1 || f.periodic != 0 {
		t.Errorf("cancel: %+v, %v; want the context error and one final flush", f, err)
	}

	cmd := exec.Command("sleep", "0.3")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = cmd.Wait() }()
	f, took, err = run(t, context.Background(), cmd.Process.Pid, time.Minute, 200*time.Millisecond)
	if err != nil || f.final != 1 || took > 5*time.Second {
		t.Errorf("process exit: %+v, %v after %v; want a clean end with one final flush", f, err, took)
	}
}
