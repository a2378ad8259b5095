package ebpfprocessreceiver

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.uber.org/zap"

	"github.com/contprof/contprof/internal/control"
	"github.com/contprof/contprof/internal/control/policy"
	"github.com/contprof/contprof/internal/output/profiles"
	"github.com/contprof/contprof/internal/profiler/symbolize"
)

// recordingSink records what the executor reports.
type recordingSink struct {
	mu      sync.Mutex
	started bool
	done    chan error
}

func newRecordingSink() *recordingSink { return &recordingSink{done: make(chan error, 1)} }

func (s *recordingSink) Started()                     { s.mu.Lock(); s.started = true; s.mu.Unlock() }
func (s *recordingSink) AddProfile(*profiles.Profile) {}
func (s *recordingSink) Done(err error)               { s.done <- err }

func bareExecutor(t *testing.T) *executor {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	r := &ebpfReceiver{cfg: createDefaultConfig().(*Config), logger: zap.NewNop(), profiles: consumertest.NewNop()}
	return &executor{r: r, stopCtx: ctx, starting: make(chan struct{}, maxParallelStarts), sym: symbolize.New(symbolize.Options{})}
}

// StartTask returns at once; a start waits for one of the bounded start
// slots on the task's own goroutine, and a task cancelled meanwhile ends
// as a failed start, never reported started.
func TestStartTaskWaitsForAStartSlot(t *testing.T) {
	e := bareExecutor(t)
	for range maxParallelStarts {
		e.starting <- struct{}{} // every slot busy
	}
	ctx, cancel := context.WithCancel(context.Background())
	sink := newRecordingSink()
	begin := time.Now()
	task := control.Task{ID: "t1", Target: policy.TargetOnCPU, Duration: time.Minute, Process: []control.Process{{PID: 1}}}
	if err := e.StartTask(ctx, task, sink); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(begin); d > 100*time.Millisecond {
		t.Fatalf("StartTask took %v: it must only queue the task", d)
	}
	select {
	case err := <-sink.done:
		t.Fatalf("task ended (%v) while every start slot was busy", err)
	case <-time.After(100 * time.Millisecond):
	}
	cancel()
	select {
	case err := <-sink.done:
		if err == nil || !strings.Contains(err.Error(), "cancelled before it started") {
			t.Fatalf("done with %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a cancelled queued task did not end")
	}
	e.wg.Wait()
	if sink.started {
		t.Fatal("a task that never started was reported started")
	}
}

// After the executor stopped, a late request is refused at once instead of
// racing the wait for running tasks.
func TestStartTaskAfterStop(t *testing.T) {
	e := bareExecutor(t)
	e.stopped = true
	err := e.StartTask(context.Background(), control.Task{ID: "t", Target: policy.TargetOnCPU}, newRecordingSink())
	if err == nil || !strings.Contains(err.Error(), "shutting down") {
		t.Fatalf("err %v", err)
	}
	// A target without its pipeline is refused too.
	e.stopped = false
	err = e.StartTask(context.Background(), control.Task{ID: "n", Target: policy.TargetNetwork}, newRecordingSink())
	if err == nil || !strings.Contains(err.Error(), `target "network" is not supported`) {
		t.Fatalf("err %v", err)
	}
}
