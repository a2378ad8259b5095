package taskcontrol

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/contprof/contprof/internal/control"
	"github.com/contprof/contprof/internal/control/dispatch"
	"github.com/contprof/contprof/internal/control/policy"
	"github.com/contprof/contprof/internal/output/profiles"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// executor records what it is asked to run and lets the test drive it. It
// reports Started inside StartTask unless holdStart is set.
type executor struct {
	targets   []policy.Target
	mu        sync.Mutex
	startErr  error
	holdStart bool
	onStart   func()
	started   []control.Task
	sinks     map[string]dispatch.Sink
	ctxs      map[string]context.Context
}

func newExecutor(targets ...policy.Target) *executor {
	if len(targets) == 0 {
		targets = policy.Targets
	}
	return &executor{targets: targets, sinks: map[string]dispatch.Sink{}, ctxs: map[string]context.Context{}}
}

func (e *executor) Targets() []policy.Target { return e.targets }

func (e *executor) StartTask(ctx context.Context, t control.Task, s dispatch.Sink) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.onStart != nil {
		e.onStart()
	}
	if e.startErr != nil {
		return e.startErr
	}
	e.started = append(e.started, t)
	e.sinks[t.ID] = s
	e.ctxs[t.ID] = ctx
	if !e.holdStart {
		s.Started()
	}
	return nil
}

func (e *executor) sink(id string) dispatch.Sink {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.sinks[id]
}

func (e *executor) ctx(id string) context.Context {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.ctxs[id]
}

func proc(pid int, attrs ...string) control.Process {
	p := control.Process{Host: "h1", PID: pid, StartTime: time.Unix(int64(1000+pid), 0), Attributes: map[string]any{}}
	for i := 0; i+1 < len(attrs); i += 2 {
		p.Attributes[attrs[i]] = attrs[i+1]
	}
	return p
}

func req(target policy.Target, silence time.Duration, ps ...control.Process) control.TaskRequest {
	return control.TaskRequest{Policy: "pol", Target: target, Duration: time.Minute, Silence: silence, Processes: ps,
		Causes: []control.Cause{{Policy: "pol", Monitor: policy.MonitorProcessCPU, Threshold: 80, Period: 10, Count: 5, Values: []float64{90, 91}}}}
}

func newController(t *testing.T, cfg Config) (*Controller, *clock) {
	clk := newClock()
	cfg.Now = clk.Now
	c := New(cfg)
	t.Cleanup(c.Shutdown)
	return c, clk
}

func mustAccept(t *testing.T, c *Controller, r control.TaskRequest) string {
	t.Helper()
	id, err := c.RequestTask(r)
	if err != nil {
		t.Fatalf("refused: %v", err)
	}
	return id
}

func mustRefuse(t *testing.T, c *Controller, r control.TaskRequest, want string) *control.RefusedError {
	t.Helper()
	_, err := c.RequestTask(r)
	var re *control.RefusedError
	if !errors.As(err, &re) {
		t.Fatalf("got %v, want refusal containing %q", err, want)
	}
	if !strings.Contains(re.Reason, want) {
		t.Fatalf("reason %q does not contain %q", re.Reason, want)
	}
	return re
}

func state(t *testing.T, c *Controller, id string) TaskInfo {
	t.Helper()
	ti, ok := c.Task(id)
	if !ok {
		t.Fatalf("task %s not found", id)
	}
	return ti
}

func TestAcceptAndRun(t *testing.T) {
	c, clk := newController(t, Config{})
	ex := newExecutor()
	defer c.RegisterExecutor(ex)()
	r := req(policy.TargetOnCPU, 20*time.Minute, proc(10, "service.name", "checkout"))
	id := mustAccept(t, c, r)
	if len(ex.started) != 1 || ex.started[0].ID != id || ex.started[0].Duration != time.Minute || ex.started[0].Process[0].PID != 10 || ex.started[0].Causes[0].Values[1] != 91 {
		t.Fatalf("executor got %+v", ex.started)
	}
	ti := state(t, c, id)
	if ti.State != StateRunning || !ti.Started.Equal(clk.Now()) || ti.Policy != "pol" || c.Active() != 1 {
		t.Fatalf("task %+v", ti)
	}
	clk.Add(time.Minute)
	ex.sink(id).Done(nil)
	ex.sink(id).Done(errors.New("late")) // only the first Done counts
	ti = state(t, c, id)
	if ti.State != StateFinished || !ti.Ended.Equal(clk.Now()) || ti.Error != "" || c.Active() != 0 {
		t.Fatalf("task %+v", ti)
	}
	if ex.ctx(id).Err() == nil {
		t.Fatal("context of a finished task not released")
	}
	// Executor reports a failure.
	id2 := mustAccept(t, c, req(policy.TargetOffCPU, time.Minute, proc(10)))
	ex.sink(id2).Done(errors.New("perf_event_open: permission denied"))
	if ti := state(t, c, id2); ti.State != StateFailed || ti.Error != "perf_event_open: permission denied" {
		t.Fatalf("task %+v", ti)
	}
}

func TestDefaultDuration(t *testing.T) {
	c, _ := newController(t, Config{})
	defer c.RegisterExecutor(newExecutor())()
	r := req(policy.TargetOnCPU, 0, proc(1))
	r.Duration = 0
	if ti := state(t, c, mustAccept(t, c, r)); ti.Duration != policy.DefaultDuration {
		t.Fatal(ti.Duration)
	}
}

func TestSilence(t *testing.T) {
	c, clk := newController(t, Config{})
	ex := newExecutor()
	defer c.RegisterExecutor(ex)()
	p := proc(10)

	// The executor takes 5s to start: the silence counts from the start.
	ex.onStart = func() { clk.Add(5 * time.Second) }
	id := mustAccept(t, c, req(policy.TargetOnCPU, 20*time.Minute, p))
	ex.onStart = nil
	start := state(t, c, id).Started
	if !start.Equal(state(t, c, id).Created.Add(5 * time.Second)) {
		t.Fatal("started time is not the end of StartTask")
	}

	mustRefuse(t, c, req(policy.TargetOnCPU, 20*time.Minute, p), "is already running for process "+p.Key())
	ex.sink(id).Done(nil)

	re := mustRefuse(t, c, req(policy.TargetOnCPU, 20*time.Minute, p), "silenced until")
	if !re.Until.Equal(start.Add(20 * time.Minute)) {
		t.Fatalf("until %v, want %v", re.Until, start.Add(20*time.Minute))
	}
	// Other targets and other processes are not silenced.
	mustAccept(t, c, req(policy.TargetOffCPU, 20*time.Minute, p))
	mustAccept(t, c, req(policy.TargetOnCPU, 20*time.Minute, proc(11)))
	// The same pid with another start time is another process.
	reused := p
	reused.StartTime = p.StartTime.Add(time.Hour)
	mustAccept(t, c, req(policy.TargetOnCPU, 20*time.Minute, reused))

	// A manual task is not held back by the silence.
	manual := req(policy.TargetOnCPU, 0, p)
	manual.Manual = true
	mid := mustAccept(t, c, manual)
	ex.sink(mid).Done(nil)

	clk.Add(20*time.Minute - time.Second)
	mustRefuse(t, c, req(policy.TargetOnCPU, 20*time.Minute, p), "silenced until")
	clk.Add(time.Second)
	mustAccept(t, c, req(policy.TargetOnCPU, 20*time.Minute, p))
}

func TestNetworkSilencePerInstance(t *testing.T) {
	c, _ := newController(t, Config{})
	ex := newExecutor()
	defer c.RegisterExecutor(ex)()
	a1, a2 := proc(1, "service.instance.id", "a"), proc(2, "service.instance.id", "a")
	b := proc(3, "service.instance.id", "b")
	id := mustAccept(t, c, req(policy.TargetNetwork, time.Hour, a1, a2))
	ex.sink(id).Done(nil)
	mustRefuse(t, c, req(policy.TargetNetwork, time.Hour, a2), "service instance service.instance.id=a")
	mustAccept(t, c, req(policy.TargetNetwork, time.Hour, b))
	// Process-level targets for the same processes are independent.
	mustAccept(t, c, req(policy.TargetOnCPU, time.Hour, a1))
	if _, err := c.RequestTask(req(policy.TargetNetwork, time.Hour, a1, b)); err == nil || !strings.Contains(err.Error(), "a network task covers one service instance") {
		t.Fatalf("mixed instances: %v", err)
	}
}

func TestFailedStartHoldsNoSilence(t *testing.T) {
	c, _ := newController(t, Config{MaxConcurrentTasks: 1})
	ex := newExecutor()
	defer c.RegisterExecutor(ex)()
	ex.startErr = errors.New("no permission to open perf events")
	_, err := c.RequestTask(req(policy.TargetOnCPU, time.Hour, proc(5)))
	if err == nil || !strings.Contains(err.Error(), "did not start: no permission") {
		t.Fatalf("err = %v", err)
	}
	var re *control.RefusedError
	if errors.As(err, &re) {
		t.Fatal("a failed start is not a refusal")
	}
	tasks := c.Tasks()
	if len(tasks) != 1 || tasks[0].State != StateFailed || tasks[0].Error != "start: no permission to open perf events" || !tasks[0].Started.IsZero() {
		t.Fatalf("tasks %+v", tasks)
	}
	if c.Active() != 0 {
		t.Fatal("failed start holds a concurrency slot")
	}
	ex.startErr = nil
	mustAccept(t, c, req(policy.TargetOnCPU, time.Hour, proc(5)))
}

func TestConcurrencyLimit(t *testing.T) {
	c, _ := newController(t, Config{MaxConcurrentTasks: 2})
	ex := newExecutor()
	defer c.RegisterExecutor(ex)()
	id1 := mustAccept(t, c, req(policy.TargetOnCPU, 0, proc(1)))
	mustAccept(t, c, req(policy.TargetOnCPU, 0, proc(2)))
	mustRefuse(t, c, req(policy.TargetOnCPU, 0, proc(3)), "concurrency limit reached: 2 tasks pending or running (max_concurrent_tasks)")
	ex.sink(id1).Done(nil)
	mustAccept(t, c, req(policy.TargetOnCPU, 0, proc(3)))
	if c.cfg.MaxConcurrentTasks != 2 {
		t.Fatal("config")
	}
	c2, _ := newController(t, Config{})
	if c2.cfg.MaxConcurrentTasks != 4 {
		t.Fatal("default max_concurrent_tasks is not 4")
	}
}

func TestNoExecutor(t *testing.T) {
	c, _ := newController(t, Config{})
	mustRefuse(t, c, req(policy.TargetOnCPU, 0, proc(1)), "no executor registered for target on_cpu")
	ex := newExecutor(policy.TargetNetwork)
	unregister := c.RegisterExecutor(ex)
	mustRefuse(t, c, req(policy.TargetOnCPU, 0, proc(1)), "no executor registered for target on_cpu")
	id := mustAccept(t, c, req(policy.TargetNetwork, 0, proc(1)))
	unregister()
	unregister()
	// Executors unregister when the collector stops.
	if ti := state(t, c, id); ti.State != StateInterrupted || ti.Error != interruptedText {
		t.Fatalf("task %+v", ti)
	}
	if ex.ctx(id).Err() == nil {
		t.Fatal("context not cancelled")
	}
	mustRefuse(t, c, req(policy.TargetNetwork, 0, proc(1)), "no executor registered for target network")
}

func TestBadRequests(t *testing.T) {
	c, _ := newController(t, Config{})
	defer c.RegisterExecutor(newExecutor())()
	long := req(policy.TargetOnCPU, 0, proc(1))
	long.Duration = 2 * time.Hour
	negSilence := req(policy.TargetOnCPU, -time.Second, proc(1))
	tests := []struct {
		r    control.TaskRequest
		want string
	}{
		{req("gpu", 0, proc(1)), `target: "gpu" is not one of on_cpu, off_cpu, network`},
		{req(policy.TargetOnCPU, 0), "processes: at least one process is required"},
		{req(policy.TargetOffCPU, 0, proc(1), proc(2)), "processes: a off_cpu task covers exactly one process, got 2"},
		{req(policy.TargetOnCPU, 0, proc(0)), "processes[0].pid: 0 is not a process id"},
		{long, "duration: 2h0m0s is out of range 1s..1h"},
		{negSilence, "silence: -1s is out of range"},
	}
	for _, tt := range tests {
		_, err := c.RequestTask(tt.r)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("got %v, want %q", err, tt.want)
		}
	}
	if len(c.Tasks()) != 0 {
		t.Fatal("bad requests made tasks")
	}
}

func TestCancel(t *testing.T) {
	c, clk := newController(t, Config{MaxConcurrentTasks: 1})
	ex := newExecutor()
	defer c.RegisterExecutor(ex)()
	p := proc(7)
	id := mustAccept(t, c, req(policy.TargetOnCPU, 10*time.Minute, p))
	clk.Add(time.Second)
	ti, err := c.Cancel(id)
	if err != nil || ti.State != StateCancelled || !ti.Ended.Equal(clk.Now()) {
		t.Fatalf("%v %+v", err, ti)
	}
	if ex.ctx(id).Err() == nil {
		t.Fatal("cancel did not cancel the executor's context")
	}
	if c.Active() != 0 {
		t.Fatal("cancelled task holds a slot")
	}
	// Done after cancel does not change the state.
	ex.sink(id).Done(nil)
	if state(t, c, id).State != StateCancelled {
		t.Fatal("Done overrode cancel")
	}
	// It started, so its silence stands.
	mustRefuse(t, c, req(policy.TargetOnCPU, 10*time.Minute, p), "silenced until")
	mustAccept(t, c, req(policy.TargetOnCPU, 10*time.Minute, proc(8)))

	if _, err := c.Cancel(id); err == nil || !strings.Contains(err.Error(), "already ended (cancelled)") {
		t.Fatalf("err = %v", err)
	}
	if _, err := c.Cancel("nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v", err)
	}
}

func TestOverdueTaskFails(t *testing.T) {
	c, clk := newController(t, Config{MaxConcurrentTasks: 1, FinishGrace: 30 * time.Second})
	ex := newExecutor()
	defer c.RegisterExecutor(ex)()
	id := mustAccept(t, c, req(policy.TargetOnCPU, 0, proc(1)))
	clk.Add(time.Minute + 30*time.Second)
	mustRefuse(t, c, req(policy.TargetOnCPU, 0, proc(2)), "concurrency limit")
	clk.Add(time.Millisecond)
	mustAccept(t, c, req(policy.TargetOnCPU, 0, proc(2)))
	if ti := state(t, c, id); ti.State != StateFailed || !strings.Contains(ti.Error, "did not end the task within its duration 1m0s + 30s") {
		t.Fatalf("task %+v", ti)
	}
	if ex.ctx(id).Err() == nil {
		t.Fatal("overdue task's context not cancelled")
	}
}

func TestHistoryExpiryAndSummary(t *testing.T) {
	c, clk := newController(t, Config{})
	ex := newExecutor()
	defer c.RegisterExecutor(ex)()
	p1, p2 := proc(1), proc(2)
	run := func(pol string, p control.Process) string {
		r := req(policy.TargetOnCPU, 0, p)
		r.Policy = pol
		id := mustAccept(t, c, r)
		ex.sink(id).AddProfile(cpuProfile(t, 1, "main"))
		ex.sink(id).Done(nil)
		return id
	}
	first := run("a", p1)
	clk.Add(time.Hour)
	run("a", p2)
	clk.Add(time.Hour)
	run("a", p2)
	run("b", p1)
	last := clk.Now()

	sum := c.Summary()
	if len(sum["a"]) != 2 || sum["a"][0].Process.PID != 2 || sum["a"][0].Tasks != 2 || !sum["a"][0].LastTrigger.Equal(last) || sum["a"][1].Tasks != 1 {
		t.Fatalf("summary a = %+v", sum["a"])
	}
	if n, l := c.ProcessStats(p1.Key()); n != 2 || !l.Equal(last) {
		t.Fatalf("ProcessStats p1 = %d %v", n, l)
	}
	if tasks := c.Tasks(); len(tasks) != 4 || tasks[0].Policy != "b" || tasks[3].ID != first {
		t.Fatalf("tasks not newest first: %+v", tasks)
	}

	// 48 hours after the first task it leaves the history, with its profile.
	clk.Add(46*time.Hour + time.Second)
	tasks := c.Tasks()
	if len(tasks) != 3 {
		t.Fatalf("after 48h: %d tasks", len(tasks))
	}
	if _, ok := c.Task(first); ok {
		t.Fatal("expired task still visible")
	}
	if _, ok, _ := c.Profile(first); ok {
		t.Fatal("expired task's profile still stored")
	}
	sum = c.Summary()
	if len(sum["a"]) != 1 || sum["a"][0].Process.PID != 2 {
		t.Fatalf("summary a after expiry = %+v", sum["a"])
	}
	if n, _ := c.ProcessStats(p1.Key()); n != 1 {
		t.Fatalf("ProcessStats p1 after expiry = %d", n)
	}
	clk.Add(48 * time.Hour)
	if len(c.Tasks()) != 0 || len(c.Summary()) != 0 || c.profiles.usage() != 0 {
		t.Fatal("history not emptied after 48h")
	}
}

func TestHistoryCountBound(t *testing.T) {
	c, clk := newController(t, Config{HistoryMaxTasks: 5, MaxConcurrentTasks: 10})
	ex := newExecutor()
	defer c.RegisterExecutor(ex)()
	// A running task is never dropped, even when it is the oldest.
	running := mustAccept(t, c, req(policy.TargetOnCPU, 0, proc(100)))
	for i := range 10 {
		clk.Add(time.Second)
		id := mustAccept(t, c, req(policy.TargetOnCPU, 0, proc(i+1)))
		ex.sink(id).Done(nil)
	}
	tasks := c.Tasks()
	if len(tasks) != 5 {
		t.Fatalf("%d tasks kept, want 5", len(tasks))
	}
	if tasks[0].Processes[0].PID != 10 || tasks[4].ID != running {
		t.Fatalf("kept %+v", tasks)
	}
	// The summary still counts every task of the window.
	if n, _ := c.ProcessStats(proc(1).Key()); n != 1 {
		t.Fatal("summary lost a pruned task")
	}
}

func TestShutdown(t *testing.T) {
	c, _ := newController(t, Config{})
	ex := newExecutor()
	c.RegisterExecutor(ex)
	id := mustAccept(t, c, req(policy.TargetOnCPU, 0, proc(1)))
	c.Shutdown()
	if ti := state(t, c, id); ti.State != StateInterrupted || ti.Error != interruptedText {
		t.Fatalf("task %+v", ti)
	}
	if ex.ctx(id).Err() == nil {
		t.Fatal("context not cancelled")
	}
	mustRefuse(t, c, req(policy.TargetOnCPU, 0, proc(2)), "shut down")
}

// Concurrent requests, completions and reads never exceed the limit or
// hand one process two tasks of a target (run with -race).
func TestConcurrentRequests(t *testing.T) {
	c := New(Config{MaxConcurrentTasks: 3})
	defer c.Shutdown()
	var mu sync.Mutex
	running := map[int]bool{}
	ex := &doneExecutor{onStart: func(t control.Task) {
		mu.Lock()
		defer mu.Unlock()
		if running[t.Process[0].PID] {
			panic(fmt.Sprintf("two tasks for pid %d", t.Process[0].PID))
		}
		running[t.Process[0].PID] = true
	}, onDone: func(t control.Task) {
		mu.Lock()
		defer mu.Unlock()
		delete(running, t.Process[0].PID)
	}}
	defer c.RegisterExecutor(ex)()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				_, _ = c.RequestTask(req(policy.TargetOnCPU, 0, proc(1+(g*7+i)%5)))
				if a := c.Active(); a > 3 {
					t.Errorf("%d active tasks", a)
				}
				_ = c.Tasks()
			}
		}()
	}
	wg.Wait()
	ex.wg.Wait()
}

// doneExecutor ends each task from its own goroutine right away.
type doneExecutor struct {
	onStart, onDone func(control.Task)
	wg              sync.WaitGroup
}

func (e *doneExecutor) Targets() []policy.Target { return policy.Targets }

func (e *doneExecutor) StartTask(_ context.Context, t control.Task, s dispatch.Sink) error {
	if e.onStart != nil {
		e.onStart(t)
	}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		if e.onDone != nil {
			e.onDone(t)
		}
		s.Started()
		s.Done(nil)
	}()
	return nil
}

// cpuProfile is an on-CPU profile with one stack of the given leaf and
// sample count.
func cpuProfile(t testing.TB, samples int64, leaf string) *profiles.Profile {
	t.Helper()
	m := &profiles.Mapping{Start: 0x400000, Limit: 0x500000, File: "/bin/app", BuildID: "abc"}
	return &profiles.Profile{
		Kind:  profiles.OnCPU(99),
		Start: time.Now(), End: time.Now().Add(10 * time.Second),
		Samples: []profiles.Sample{{Value: samples, Frames: []profiles.Frame{
			{Function: leaf, Address: 0x401000, Mapping: m, Type: profiles.FrameNative},
			{Function: "runtime.main", Address: 0x402000, Mapping: m, Type: profiles.FrameNative},
		}}},
		Resource:   map[string]any{"process.pid": int64(1)},
		Attributes: map[string]any{"contprof.task.id": "x"},
	}
}

// A task is pending from its admission until the executor reports the
// start; the request does not wait for it.
func TestAsynchronousStart(t *testing.T) {
	c, clk := newController(t, Config{FinishGrace: time.Minute})
	ex := newExecutor()
	ex.holdStart = true
	defer c.RegisterExecutor(ex)()
	p := proc(10)
	id := mustAccept(t, c, req(policy.TargetOnCPU, 20*time.Minute, p))
	if ti := state(t, c, id); ti.State != StatePending || !ti.Started.IsZero() || c.Active() != 1 {
		t.Fatalf("task %+v before the executor started it", ti)
	}
	// Pending holds the process's slot, not yet a silence.
	mustRefuse(t, c, req(policy.TargetOnCPU, 20*time.Minute, p), "is already pending for process")

	clk.Add(2 * time.Second)
	ex.sink(id).Started()
	ti := state(t, c, id)
	if ti.State != StateRunning || !ti.Started.Equal(ti.Created.Add(2*time.Second)) {
		t.Fatalf("task %+v after Started", ti)
	}
	ex.sink(id).Done(nil)
	re := mustRefuse(t, c, req(policy.TargetOnCPU, 20*time.Minute, p), "silenced until")
	if !re.Until.Equal(ti.Started.Add(20 * time.Minute)) {
		t.Fatalf("silence until %v, want from the start %v", re.Until, ti.Started.Add(20*time.Minute))
	}
}

// A start that fails on the executor's goroutine fails the task and holds
// no silence: the next trigger may try again.
func TestAsynchronousFailedStartHoldsNoSilence(t *testing.T) {
	c, _ := newController(t, Config{})
	ex := newExecutor()
	ex.holdStart = true
	defer c.RegisterExecutor(ex)()
	p := proc(10)
	id := mustAccept(t, c, req(policy.TargetOnCPU, 20*time.Minute, p))
	ex.sink(id).Done(errors.New("perf_event_open: no such process"))
	ti := state(t, c, id)
	if ti.State != StateFailed || ti.Error != "start: perf_event_open: no such process" || !ti.Started.IsZero() || c.Active() != 0 {
		t.Fatalf("task %+v", ti)
	}
	mustAccept(t, c, req(policy.TargetOnCPU, 20*time.Minute, p))
}

// An executor that never reports the start does not hold a slot forever.
func TestPendingTimesOut(t *testing.T) {
	c, clk := newController(t, Config{FinishGrace: time.Minute})
	ex := newExecutor()
	ex.holdStart = true
	defer c.RegisterExecutor(ex)()
	id := mustAccept(t, c, req(policy.TargetOnCPU, 0, proc(1)))
	clk.Add(time.Minute + time.Second)
	if ti := state(t, c, id); ti.State != StateFailed || !strings.Contains(ti.Error, "did not start the task within 1m0s") {
		t.Fatalf("task %+v", ti)
	}
	if ex.ctx(id).Err() == nil {
		t.Fatal("context of a timed out start not cancelled")
	}
}

func TestWaitStarted(t *testing.T) {
	c, _ := newController(t, Config{})
	ex := newExecutor()
	ex.holdStart = true
	defer c.RegisterExecutor(ex)()
	id := mustAccept(t, c, req(policy.TargetOnCPU, 0, proc(1)))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if ti, err := c.WaitStarted(ctx, id); err != nil || ti.State != StatePending {
		t.Fatalf("wait with nothing started: %+v %v", ti, err)
	}
	go ex.sink(id).Started()
	if ti, err := c.WaitStarted(context.Background(), id); err != nil || ti.State != StateRunning {
		t.Fatalf("wait: %+v %v", ti, err)
	}
	// A task cancelled while pending stops waiting too.
	id2 := mustAccept(t, c, req(policy.TargetOnCPU, 0, proc(2)))
	go func() { _, _ = c.Cancel(id2) }()
	if ti, err := c.WaitStarted(context.Background(), id2); err != nil || ti.State != StateCancelled {
		t.Fatalf("wait: %+v %v", ti, err)
	}
	if ex.ctx(id2).Err() == nil {
		t.Fatal("pending task's context not cancelled")
	}
	if _, err := c.WaitStarted(context.Background(), "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
}

// admittingExecutor refuses what its admit func refuses.
type admittingExecutor struct {
	*executor
	admit func(policy.Target, []control.Process) error
}

func (e admittingExecutor) Admit(target policy.Target, ps []control.Process) error {
	return e.admit(target, ps)
}

// TestAdmitterRefusesWithoutATask: a request the executor says cannot run
// (no privilege, a kernel thread) is refused with that reason, creates no
// task and starts nothing, so it neither fills the history nor holds a
// slot.
func TestAdmitterRefusesWithoutATask(t *testing.T) {
	c, _ := newController(t, Config{})
	x := admittingExecutor{executor: newExecutor(), admit: func(target policy.Target, ps []control.Process) error {
		if target == policy.TargetOnCPU {
			return errors.New("on_cpu profiling needs CAP_PERFMON (missing)")
		}
		return nil
	}}
	defer c.RegisterExecutor(x)()
	mustRefuse(t, c, req(policy.TargetOnCPU, 0, proc(10)), "on_cpu profiling needs CAP_PERFMON (missing)")
	if n := len(c.Tasks()); n != 0 || c.Active() != 0 || len(x.started) != 0 {
		t.Fatalf("a refused request left %d tasks, %d active, %d started", n, c.Active(), len(x.started))
	}
	mustAccept(t, c, req(policy.TargetOffCPU, 0, proc(10)))
}
