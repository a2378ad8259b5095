//go:build linux

package ebpfprocessreceiver // import "github.com/contprof/contprof/receiver/ebpfprocessreceiver"

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componentstatus"
	"go.uber.org/zap"

	"github.com/contprof/contprof/internal/control"
	"github.com/contprof/contprof/internal/control/dispatch"
	"github.com/contprof/contprof/internal/control/policy"
	"github.com/contprof/contprof/internal/output/profiles"
	"github.com/contprof/contprof/internal/output/taskevents"
	"github.com/contprof/contprof/internal/profiler/jit"
	"github.com/contprof/contprof/internal/profiler/offcpu"
	"github.com/contprof/contprof/internal/profiler/oncpu"
	"github.com/contprof/contprof/internal/profiler/privilege"
	"github.com/contprof/contprof/internal/profiler/symbolize"
	"github.com/contprof/contprof/receiver/ebpfprocessreceiver/internal/metadata"
)

// maxParallelStarts bounds how many tasks start at once: a start loads BPF
// objects, opens perf events on every CPU and preloads symbols, and a
// burst of them must not take every core from the scrape loop.
const maxParallelStarts = 2

// executor runs the extension's tasks. Profilers are loaded only while a
// task runs (the managers load on the first subscription). Tasks start on
// the executor's goroutines, never on the caller's: the caller is the
// processor inside the metrics pipeline.
type executor struct {
	r    *ebpfReceiver
	host component.Host
	// stopCtx ends every task at Shutdown.
	stopCtx context.Context

	oncpu  *oncpu.Manager
	offcpu *offcpu.Manager
	sym    *symbolize.Symbolizer
	// jit names JIT frames of a task's process (HotSpot attach, perf maps).
	jit *jit.Manager

	// starting holds one token per start in progress.
	starting chan struct{}
	// mu orders StartTask's wg.Add before stop's wg.Wait: a request
	// admitted just before the executor unregistered may still arrive.
	mu      sync.Mutex
	stopped bool
	wg      sync.WaitGroup
	// active counts the tasks starting or running; when it drops to
	// zero the symbolizer lets its tables go (see taskDone).
	active int
}

// startExecutor registers the receiver as the executor of profiling tasks.
func startExecutor(ctx context.Context, r *ebpfReceiver, host component.Host, reg dispatch.Registry) (stop func(), err error) {
	mgr, err := oncpu.NewManager(oncpu.Options{Frequency: r.cfg.Profiling.OnCPU.Frequency})
	if err != nil {
		return nil, fmt.Errorf("profiling.on_cpu: %w", err)
	}
	offMgr, err := offcpu.NewManager(offcpu.Options{MinBlock: r.cfg.Profiling.OffCPU.MinBlock})
	if err != nil {
		return nil, fmt.Errorf("profiling.off_cpu: %w", err)
	}
	sym := symbolize.New(symbolize.Options{})
	e := &executor{
		r: r, host: host, stopCtx: ctx, oncpu: mgr, offcpu: offMgr, sym: sym,
		jit:      jit.NewManager(jit.Options{Symbolizer: sym, Logger: r.logger}),
		starting: make(chan struct{}, maxParallelStarts),
	}
	unregister := reg.RegisterExecutor(e)
	return func() {
		unregister()
		e.mu.Lock()
		e.stopped = true
		e.mu.Unlock()
		// The caller cancelled ctx: every task ends and emits what it has.
		e.wg.Wait()
		e.jit.Wait()
		_ = e.oncpu.Close()
		_ = e.offcpu.Close()
	}, nil
}

// taskDone ends a task's share of the executor. The last one out drops the
// symbolizer's tables (kernel symbols, ELF symbol tables, process maps):
// several MB that an idle collector would otherwise keep from its last
// task on. A task starting meanwhile reads what it needs again.
func (e *executor) taskDone() {
	e.mu.Lock()
	e.active--
	idle := e.active == 0
	e.mu.Unlock()
	if idle {
		e.sym.Release()
	}
}

// Targets lists what this receiver can profile: on/off-CPU need a
// profiles pipeline, network a metrics or logs pipeline for its output.
func (e *executor) Targets() []policy.Target {
	var ts []policy.Target
	if e.r.profiles != nil {
		ts = append(ts, policy.TargetOnCPU, policy.TargetOffCPU)
	}
	if e.r.metrics != nil || e.r.logs != nil {
		ts = append(ts, policy.TargetNetwork)
	}
	return ts
}

// StartTask queues t and returns at once; the start happens on the task's
// goroutine, at most maxParallelStarts at a time, and is reported through
// sink (Started, or Done with the start error).
func (e *executor) StartTask(ctx context.Context, t control.Task, sink dispatch.Sink) error {
	if !slices.Contains(e.Targets(), t.Target) {
		return fmt.Errorf("task %s: target %q is not supported by this receiver", t.ID, t.Target)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stopped {
		return errors.New("the receiver is shutting down")
	}
	e.wg.Add(1)
	e.active++
	go func() {
		defer e.wg.Done()
		defer e.taskDone()
		// The task's context also ends at Shutdown (the controller cancels
		// it when the executor unregisters); stopCtx covers the gap.
		runCtx, cancel := context.WithCancel(ctx)
		defer cancel()
		defer context.AfterFunc(e.stopCtx, cancel)()

		run, err := e.start(runCtx, t, sink)
		if err != nil {
			// Every target's start (network tasks too) names a missing
			// capability rather than cilium's MEMLOCK guess.
			err = privilege.Explain(err)
			if runCtx.Err() == nil {
				e.reportStartFailure(t, err)
			}
			e.r.events.emit(taskevents.Event{Name: taskevents.Failed, Task: t, Err: err})
			sink.Done(err)
			return
		}
		sink.Started()
		e.r.events.emit(taskevents.Event{Name: taskevents.Started, Task: t})
		err = run(runCtx)
		if errors.Is(err, context.Canceled) && e.stopCtx.Err() != nil {
			err = errors.New("collector shut down before the task's end")
		}
		if err != nil {
			e.r.events.emit(taskevents.Event{Name: taskevents.Failed, Task: t, Err: err})
		} else {
			e.r.events.emit(taskevents.Event{Name: taskevents.Finished, Task: t})
		}
		sink.Done(err)
	}()
	return nil
}

// start waits for a start slot, then starts t and returns its run loop.
func (e *executor) start(ctx context.Context, t control.Task, sink dispatch.Sink) (func(context.Context) error, error) {
	select {
	case e.starting <- struct{}{}:
		defer func() { <-e.starting }()
	case <-ctx.Done():
		return nil, fmt.Errorf("cancelled before it started: %w", ctx.Err())
	}
	if t.Target == policy.TargetNetwork {
		return e.startNetworkTask(t, sink)
	}
	if len(t.Process) != 1 {
		return nil, fmt.Errorf("task %s: target %s covers exactly one process, got %d", t.ID, t.Target, len(t.Process))
	}
	proc := t.Process[0]
	// oncpu.Task and offcpu.Task are the same task description.
	spec := oncpu.Task{
		PID:            proc.PID,
		Duration:       t.Duration,
		ReportInterval: e.r.cfg.Profiling.ReportInterval,
		Resource:       proc.Attributes,
		Attributes:     profiles.TaskAttributes(t),
	}
	// Both managers return the runtime's run, of either source.
	var run *oncpu.TaskRun
	var err error
	switch t.Target {
	case policy.TargetOnCPU:
		run, err = e.oncpu.StartTask(e.sym, spec)
	case policy.TargetOffCPU:
		run, err = e.offcpu.StartTask(e.sym, spec)
	default:
		return nil, fmt.Errorf("task %s: target %q is not supported by this receiver", t.ID, t.Target)
	}
	if err != nil {
		return nil, err
	}
	// started is when the task's own samples begin.
	started := run.Started()
	// Taken now, before the record moves on: the samples from
	// [trigger - lookback, the task's first sample).
	pre := e.prelude(t, proc.PID, started)
	// Only a task's process is prepared for its JIT runtime (a JVM is
	// attached to), never a process that is just monitored.
	js := e.jit.Start(proc.PID)
	return func(ctx context.Context) error {
		defer js.Close()
		return run.Run(ctx, applyPrelude(pre, func(p *profiles.Profile) {
			js.Annotate(p)
			e.emit(t, p, sink)
		}))
	}, nil
}

// emit sends one report interval to the profiles pipeline and hands it to
// the extension for download.
func (e *executor) emit(t control.Task, p *profiles.Profile, sink dispatch.Sink) {
	sink.AddProfile(p)
	pd := profiles.ToPprofile(metadata.ScopeName, p)
	// Not the task's context: the final profile of a cancelled task must
	// still be exported.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.r.profiles.ConsumeProfiles(ctx, pd); err != nil {
		e.r.logger.Warn("Profile not exported", zap.String("task", t.ID), zap.Error(err))
	}
}

// reportStartFailure surfaces a missing privilege or kernel feature through
// component status, so it shows without reading the task history.
func (e *executor) reportStartFailure(t control.Task, err error) {
	e.r.logger.Warn("Profiling task did not start", zap.String("task", t.ID), zap.String("target", string(t.Target)), zap.Error(err))
	componentstatus.ReportStatus(e.host, componentstatus.NewRecoverableErrorEvent(fmt.Errorf("%s task did not start: %w", t.Target, err)))
}
