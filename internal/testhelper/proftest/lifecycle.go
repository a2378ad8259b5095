//go:build linux

package proftest

import (
	"context"
	"errors"
	"os"
	"runtime"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/contprof/contprof/internal/output/profiles"
	"github.com/contprof/contprof/internal/profiler/stackprof"
	"github.com/contprof/contprof/internal/profiler/symbolize"
	"github.com/contprof/contprof/internal/profiler/taskrun"
)

// NoLeaks loads and unloads a source three times through its Manager (a
// subscription on this process, a drain and a final drain; the third time
// the Manager is closed with the subscription still open, which must
// unload too): no goroutine and no file descriptor may be left behind.
func NoLeaks[V stackprof.Value[V]](t *testing.T, newManager func() (*stackprof.Manager[V], error)) {
	t.Helper()
	defer goleak.VerifyNone(t)
	before := OpenFDs(t)
	for i := 0; i < 3; i++ {
		m, err := newManager()
		if err != nil {
			t.Fatal(err)
		}
		sub, err := m.Acquire(os.Getpid())
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
		if _, err := sub.Drain(); err != nil {
			t.Fatal(err)
		}
		if _, err := sub.DrainFinal(); err != nil {
			t.Fatal(err)
		}
		if i == 2 {
			if err := m.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := sub.Drain(); err != stackprof.ErrClosed {
				t.Errorf("drain after manager close: %v, want ErrClosed", err)
			}
			_ = sub.Close()
			continue
		}
		if err := sub.Close(); err != nil {
			t.Fatal(err)
		}
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
	}
	runtime.GC()
	if after := OpenFDs(t); after > before {
		t.Errorf("open fds: %d before, %d after", before, after)
	}
}

// RunTask runs task on a new Manager to its end and returns its profiles,
// how long it ran and its error; the source must be unloaded afterwards.
func RunTask[V stackprof.Value[V]](ctx context.Context, t *testing.T, newManager func() (*stackprof.Manager[V], error), task taskrun.Task) ([]*profiles.Profile, time.Duration, error) {
	t.Helper()
	mgr, err := newManager()
	if err != nil {
		t.Fatal(err)
	}
	defer mgr.Close()
	r, err := mgr.StartTask(symbolize.New(symbolize.Options{}), task)
	if err != nil {
		t.Fatalf("start task: %v", err)
	}
	var got []*profiles.Profile
	start := time.Now()
	err = r.Run(ctx, func(p *profiles.Profile) { got = append(got, p) })
	if mgr.Loaded() {
		t.Error("profiler still loaded after the task ended")
	}
	return got, time.Since(start), err
}

// TaskEnds checks both ends of a task on process pid other than its
// process exiting: its duration elapsing and its context being cancelled,
// each with one final profile.
func TaskEnds[V stackprof.Value[V]](t *testing.T, newManager func() (*stackprof.Manager[V], error), pid int) {
	t.Helper()
	got, took, err := RunTask(context.Background(), t, newManager, taskrun.Task{PID: pid, Duration: 1500 * time.Millisecond, ReportInterval: time.Hour})
	if err != nil || len(got) != 1 || took < 1500*time.Millisecond || took > 5*time.Second {
		t.Errorf("duration end: err %v, %d profiles, took %v; want the final profile after 1.5s", err, len(got), took)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	got, _, err = RunTask(ctx, t, newManager, taskrun.Task{PID: pid, ReportInterval: time.Hour})
	if !errors.Is(err, context.DeadlineExceeded) || len(got) != 1 {
		t.Errorf("cancel: err %v, %d profiles; want the context error and the final profile", err, len(got))
	}
}

// TaskProfiles checks the profiles of a task whose process exited mid-way
// (a clean end after at most 10 s): one per report interval, each carrying
// kind and the task attribute contprof.task.id = "x", back to back. It
// returns their samples together.
func TaskProfiles(t *testing.T, got []*profiles.Profile, took time.Duration, err error, kind profiles.Kind) *profiles.Profile {
	t.Helper()
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if took > 10*time.Second {
		t.Errorf("task ran %v after its process exited", took)
	}
	if len(got) < 2 {
		t.Fatalf("%d profiles, want one per report interval", len(got))
	}
	all := &profiles.Profile{Kind: kind}
	for i, p := range got {
		all.Samples = append(all.Samples, p.Samples...)
		if p.Attributes["contprof.task.id"] != "x" || p.Kind != kind {
			t.Errorf("profile %d: kind %+v attributes %v", i, p.Kind, p.Attributes)
		}
		if i > 0 && !p.Start.Equal(got[i-1].End) {
			t.Errorf("profile %d starts at %v, previous ended at %v", i, p.Start, got[i-1].End)
		}
	}
	return all
}

// StartTaskErrors checks that tasks with a bad PID, report interval or
// duration do not start, and leave the source unloaded.
func StartTaskErrors[V stackprof.Value[V]](t *testing.T, mgr *stackprof.Manager[V]) {
	t.Helper()
	sym := symbolize.New(symbolize.Options{})
	for _, task := range []taskrun.Task{
		{PID: 1 << 30},
		{PID: 0},
		{PID: 1, ReportInterval: time.Millisecond},
		{PID: 1, Duration: -time.Second},
	} {
		if _, err := mgr.StartTask(sym, task); err == nil {
			t.Errorf("StartTask(%+v) succeeded", task)
		} else {
			t.Log(err)
		}
	}
	if mgr.Loaded() {
		t.Error("a task that did not start left the profiler loaded")
	}
}
