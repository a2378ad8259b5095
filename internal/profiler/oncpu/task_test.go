//go:build linux

package oncpu

import (
	"context"
	"errors"
	"regexp"
	"testing"
	"time"

	"github.com/contprof/contprof/internal/output/profiles"
	"github.com/contprof/contprof/internal/profiler/symbolize"
	"github.com/contprof/contprof/internal/testhelper/workload"
)

func runTask(ctx context.Context, t *testing.T, task Task) ([]*profiles.Profile, time.Duration, error) {
	t.Helper()
	mgr, err := NewManager(Options{Frequency: 199})
	if err != nil {
		t.Fatal(err)
	}
	defer mgr.Close()
	sym := symbolize.New(symbolize.Options{})
	r, err := StartTask(mgr, sym, task)
	if err != nil {
		t.Fatalf("start task: %v", err)
	}
	var got []*profiles.Profile
	start := time.Now()
	err = r.Run(ctx, func(p *profiles.Profile) { got = append(got, p) })
	if mgr.Loaded() {
		t.Error("sampler still loaded after the task ended")
	}
	return got, time.Since(start), err
}

// A process exiting mid-task ends the task cleanly with what was collected.
func TestTaskProcessExits(t *testing.T) {
	requireEBPF(t)
	proc := workload.Start(t, workload.BuildC(t, "hotcpu.c"), "300") // ~1.5 s of work
	go func() { _ = proc.Wait() }()
	got, took, err := runTask(context.Background(), t, Task{
		PID: proc.PID(), Duration: time.Minute, ReportInterval: 500 * time.Millisecond,
		Attributes: map[string]any{"contprof.task.id": "x"},
	})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if took > 10*time.Second {
		t.Errorf("task ran %v after its process exited", took)
	}
	if len(got) < 2 {
		t.Fatalf("%d profiles, want one per report interval", len(got))
	}
	var total int64
	for i, p := range got {
		total += p.Total()
		if p.Attributes["contprof.task.id"] != "x" {
			t.Errorf("profile %d lacks the task attributes", i)
		}
		if i > 0 && !p.Start.Equal(got[i-1].End) {
			t.Errorf("profile %d starts at %v, previous ended at %v", i, p.Start, got[i-1].End)
		}
	}
	all := &profiles.Profile{}
	for _, p := range got {
		all.Samples = append(all.Samples, p.Samples...)
	}
	if s := share(all, regexp.MustCompile(`^hot_[ab]$`)); total < 100 || s < 0.9 {
		t.Errorf("%d samples, %.2f in hot_a/hot_b", total, s)
	}
}

func TestTaskDurationAndCancel(t *testing.T) {
	requireEBPF(t)
	bin := workload.BuildC(t, "hotcpu.c")
	proc := workload.Start(t, bin)
	got, took, err := runTask(context.Background(), t, Task{PID: proc.PID(), Duration: 1500 * time.Millisecond, ReportInterval: time.Hour})
	if err != nil || len(got) != 1 || took < 1500*time.Millisecond || took > 5*time.Second {
		t.Errorf("duration end: err %v, %d profiles, took %v; want the final profile after 1.5s", err, len(got), took)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	got, _, err = runTask(ctx, t, Task{PID: proc.PID(), ReportInterval: time.Hour})
	if !errors.Is(err, context.DeadlineExceeded) || len(got) != 1 {
		t.Errorf("cancel: err %v, %d profiles; want the context error and the final profile", err, len(got))
	}
}

func TestStartTaskErrors(t *testing.T) {
	mgr, err := NewManager(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer mgr.Close()
	sym := symbolize.New(symbolize.Options{})
	for _, task := range []Task{
		{PID: 1 << 30},
		{PID: 1, ReportInterval: time.Millisecond},
		{PID: 1, Duration: -time.Second},
	} {
		if _, err := StartTask(mgr, sym, task); err == nil {
			t.Errorf("StartTask(%+v) succeeded", task)
		} else {
			t.Log(err)
		}
	}
	if mgr.Loaded() {
		t.Error("a task that did not start left the sampler loaded")
	}
}
