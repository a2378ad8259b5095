package taskcontrol

import (
	"context"
	"testing"
	"time"

	"github.com/contprof/contprof/internal/control"
	"github.com/contprof/contprof/internal/control/dispatch"
	"github.com/contprof/contprof/internal/control/policy"
)

// syncExecutor ends every task inside StartTask: the benchmark measures the
// controller, not an executor.
type syncExecutor struct{}

func (syncExecutor) Targets() []policy.Target { return policy.Targets }
func (syncExecutor) StartTask(_ context.Context, _ control.Task, s dispatch.Sink) error {
	s.Started()
	s.Done(nil)
	return nil
}

// BenchmarkRequestTaskAccepted: accepted, dispatched and finished tasks,
// each for a new process, with a full history (the count bound prunes).
func BenchmarkRequestTaskAccepted(b *testing.B) {
	c := New(Config{})
	defer c.Shutdown()
	defer c.RegisterExecutor(syncExecutor{})()
	procs := make([]control.Process, 4096)
	for i := range procs {
		procs[i] = proc(i + 1)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.RequestTask(req(policy.TargetOnCPU, 0, procs[i%len(procs)])); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRequestTaskSilenced: the common case under a storm of triggers,
// refused by the silence, from parallel goroutines.
func BenchmarkRequestTaskSilenced(b *testing.B) {
	c := New(Config{})
	defer c.Shutdown()
	defer c.RegisterExecutor(syncExecutor{})()
	p := proc(1)
	if _, err := c.RequestTask(req(policy.TargetOnCPU, time.Hour, p)); err != nil {
		b.Fatal(err)
	}
	r := req(policy.TargetOnCPU, time.Hour, p)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.RequestTask(r); err == nil {
				b.Fatal("accepted")
			}
		}
	})
}

// BenchmarkTasksSnapshot reads the whole history (1000 tasks), as GET
// /api/v1/tasks does.
func BenchmarkTasksSnapshot(b *testing.B) {
	c := New(Config{})
	defer c.Shutdown()
	defer c.RegisterExecutor(syncExecutor{})()
	for i := range DefaultHistoryMaxTasks {
		if _, err := c.RequestTask(req(policy.TargetOnCPU, 0, proc(i+1))); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if len(c.Tasks()) != DefaultHistoryMaxTasks {
			b.Fatal("history size")
		}
	}
}
