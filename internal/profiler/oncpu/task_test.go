//go:build linux

package oncpu

import (
	"context"
	"regexp"
	"testing"
	"time"

	"github.com/contprof/contprof/internal/output/profiles"
	"github.com/contprof/contprof/internal/testhelper/proftest"
	"github.com/contprof/contprof/internal/testhelper/workload"
)

const taskFrequency = 199

func newTaskManager() (*Manager, error) { return NewManager(Options{Frequency: taskFrequency}) }

// A process exiting mid-task ends the task cleanly with what was collected.
func TestTaskProcessExits(t *testing.T) {
	requireEBPF(t)
	proc := workload.Start(t, workload.BuildC(t, "hotcpu.c"), "30") // ~1.5 s of work
	go func() { _ = proc.Wait() }()
	got, took, err := proftest.RunTask(context.Background(), t, newTaskManager, Task{
		PID: proc.PID(), Duration: time.Minute, ReportInterval: 500 * time.Millisecond,
		Attributes: map[string]any{"contprof.task.id": "x"},
	})
	all := proftest.TaskProfiles(t, got, took, err, profiles.OnCPU(taskFrequency))
	if s := share(all, regexp.MustCompile(`^hot_[ab]$`)); all.Total() < 100 || s < 0.9 {
		t.Errorf("%d samples, %.2f in hot_a/hot_b", all.Total(), s)
	}
}

func TestTaskDurationAndCancel(t *testing.T) {
	requireEBPF(t)
	proc := workload.Start(t, workload.BuildC(t, "hotcpu.c"))
	proftest.TaskEnds(t, newTaskManager, proc.PID())
}

func TestStartTaskErrors(t *testing.T) {
	mgr, err := NewManager(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer mgr.Close()
	proftest.StartTaskErrors(t, mgr)
}
