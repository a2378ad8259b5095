//go:build linux

package offcpu

import (
	"context"
	"errors"
	"os"
	"regexp"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/contprof/contprof/internal/output/profiles"
	"github.com/contprof/contprof/internal/testhelper/proftest"
	"github.com/contprof/contprof/internal/testhelper/workload"
)

// loadedPrograms counts the BPF programs in the kernel with our names.
func loadedPrograms(t *testing.T) int {
	t.Helper()
	n := 0
	var id ebpf.ProgramID
	for {
		next, err := ebpf.ProgramGetNextID(id)
		if errors.Is(err, os.ErrNotExist) {
			return n
		}
		if err != nil {
			t.Fatalf("list BPF programs: %v", err)
		}
		id = next
		prog, err := ebpf.NewProgramFromID(id)
		if err != nil {
			continue // unloaded meanwhile
		}
		if info, err := prog.Info(); err == nil && (info.Name == "offcpu_switch" || info.Name == "offcpu_exit") {
			n++
		}
		_ = prog.Close()
	}
}

// waitUnloaded waits until no off-CPU program is in the kernel: the kernel
// frees a detached program after an RCU grace period, not at close.
func waitUnloaded(t *testing.T) int {
	t.Helper()
	n := loadedPrograms(t)
	for deadline := time.Now().Add(5 * time.Second); n != 0 && time.Now().Before(deadline); n = loadedPrograms(t) {
		time.Sleep(20 * time.Millisecond)
	}
	return n
}

// Several tasks share one profiler: subscriptions to the same process each
// get every block; the PID leaves the filter with the last one; processes
// not added are never recorded; nothing stays in the kernel after.
func TestSharedProfiler(t *testing.T) {
	requireEBPF(t)
	bin := workload.BuildC(t, "offcpu.c")
	a := startFed(t, bin, feedPeriod)
	other := startFed(t, bin, 10*time.Millisecond) // blocks a lot, never added
	_ = other

	if n := waitUnloaded(t); n != 0 {
		t.Fatalf("%d off-CPU programs loaded before the test", n)
	}
	m, err := NewManager(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	sub1, err := m.Acquire(a.PID())
	if err != nil {
		t.Fatal(err)
	}
	sub2, err := m.Acquire(a.PID())
	if err != nil {
		t.Fatal(err)
	}
	if !m.Loaded() || loadedPrograms(t) != 2 {
		t.Fatalf("profiler not loaded while subscriptions are open (%d programs)", loadedPrograms(t))
	}
	profiler := loaded(t, m)
	time.Sleep(2 * time.Second)
	b1, err := sub1.Drain()
	if err != nil {
		t.Fatal(err)
	}
	b2, err := sub2.Drain()
	if err != nil {
		t.Fatal(err)
	}
	// sub1's drain collected for both; sub2 gets the same plus at most a
	// block or two that ended between the drains.
	if b1.Total() == 0 || b2.Total() < b1.Total() || b2.Total() > b1.Total()+uint64(2*feedPeriod) {
		t.Errorf("shared subscriptions: %v and %v, want equal (± two blocks)", time.Duration(b1.Total()), time.Duration(b2.Total()))
	}
	st, err := profiler.Stats()
	if err != nil {
		t.Fatal(err)
	}
	// a blocks twice per 80 ms, other twice per 10 ms: had other been
	// recorded, the count would be several times higher.
	if st.Blocks > 2*uint64(2*time.Second/feedPeriod)+10 {
		t.Errorf("profiler counted %d blocks in 2s, more than the target's ~50: other processes were recorded", st.Blocks)
	}

	if err := sub1.Close(); err != nil {
		t.Fatal(err)
	}
	if on, err := profiler.IsTarget(a.PID()); err != nil || !on {
		t.Fatalf("pid left the filter while a subscription is open: %v", err)
	}
	if _, err := sub1.Drain(); err != ErrClosed {
		t.Errorf("drain after close: %v, want ErrClosed", err)
	}
	time.Sleep(500 * time.Millisecond)
	if b, err := sub2.Drain(); err != nil || b.Total() == 0 {
		t.Errorf("remaining subscription: %v, %v", err, b)
	}
	objs := profiler.k.objs
	if err := sub2.Close(); err != nil {
		t.Fatal(err)
	}
	if m.Loaded() {
		t.Error("profiler still loaded after the last subscription closed")
	}
	if _, err := objs.TargetPids.Info(); err == nil {
		t.Error("filter map still open after unload")
	}
	if n := waitUnloaded(t); n != 0 {
		t.Errorf("%d off-CPU programs still in the kernel 5s after the last subscription closed", n)
	}
}

// Opening and closing leaves no goroutine, file descriptor or program
// behind.
func TestNoLeaks(t *testing.T) {
	requireEBPF(t)
	proftest.NoLeaks(t, newManager)
	if n := waitUnloaded(t); n != 0 {
		t.Errorf("%d off-CPU programs still in the kernel 5s after Close", n)
	}
}

func newManager() (*Manager, error) { return NewManager(Options{}) }

// The path a collector in a container takes: PIDs compared in our PID
// namespace through bpf_get_ns_current_pid_tgid.
func TestPIDNamespacePath(t *testing.T) {
	requireEBPF(t)
	proc := startFed(t, workload.BuildC(t, "offcpu.c"), feedPeriod)
	s, err := Open(Options{forcePIDNamespace: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var ino uint64
	if err := s.k.objs.PidnsIno.Get(&ino); err != nil || ino == 0 {
		t.Fatalf("namespace path not enabled: ino %d, %v", ino, err)
	}
	p := record(t, s, proc.PID(), 300*time.Millisecond, 2*time.Second)
	long := share(p, regexp.MustCompile(`^wait_long$`), nil)
	short := share(p, regexp.MustCompile(`^wait_short$`), nil)
	if p.Total() < int64(time.Second) || long+short < 0.98 || long < 0.6 {
		t.Errorf("namespace path: %v off-CPU, wait_long %.2f wait_short %.2f; want the workload's", time.Duration(p.Total()), long, short)
	}
}

func TestBadOptions(t *testing.T) {
	for _, o := range []Options{{MinBlock: -1}, {MinBlock: time.Hour}, {StackEntries: -5}, {ThreadEntries: 1 << 21}, {MaxPIDs: -1}} {
		if _, err := NewManager(o); err == nil {
			t.Errorf("NewManager(%+v) accepted", o)
		} else {
			t.Log(err)
		}
	}
}

func TestAddBadPID(t *testing.T) {
	requireEBPF(t)
	s, err := Open(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, pid := range []int{0, -3, 1 << 30} {
		if _, err := s.Add(pid); err == nil {
			t.Errorf("Add(%d) accepted", pid)
		}
	}
}

// A process exiting mid-task ends the task cleanly with what was collected.
func TestTaskProcessExits(t *testing.T) {
	requireEBPF(t)
	proc := startFed(t, workload.BuildC(t, "offcpu.c"), feedPeriod)
	go func() {
		time.Sleep(1500 * time.Millisecond)
		proc.Stop()
	}()
	got, took, err := proftest.RunTask(context.Background(), t, newManager, Task{
		PID: proc.PID(), Duration: time.Minute, ReportInterval: 500 * time.Millisecond,
		Attributes: map[string]any{"contprof.task.id": "x"},
	})
	all := proftest.TaskProfiles(t, got, took, err, profiles.OffCPU())
	if s := share(all, regexp.MustCompile(`^wait_(long|short)$`), nil); all.Total() < int64(time.Second) || s < 0.95 {
		t.Errorf("%v off-CPU, %.2f in wait_long/wait_short", time.Duration(all.Total()), s)
	}
}

func TestTaskDurationAndCancel(t *testing.T) {
	requireEBPF(t)
	proc := startFed(t, workload.BuildC(t, "offcpu.c"), feedPeriod)
	proftest.TaskEnds(t, newManager, proc.PID())
}

func TestStartTaskErrors(t *testing.T) {
	mgr, err := newManager()
	if err != nil {
		t.Fatal(err)
	}
	defer mgr.Close()
	proftest.StartTaskErrors(t, mgr)
}

// loaded is the profiler m has loaded now.
func loaded(t *testing.T, m *Manager) *Profiler {
	t.Helper()
	p, ok := m.Profiler()
	if !ok {
		t.Fatal("profiler not loaded")
	}
	return &Profiler{Profiler: p, k: p.Kernel().(*kernel)}
}
