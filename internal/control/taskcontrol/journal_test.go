package taskcontrol

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/contprof/contprof/internal/control/policy"
)

// memKV is an in-memory storage client; the e2e test uses file_storage.
type memKV struct {
	mu sync.Mutex
	m  map[string][]byte
}

func newMemKV() *memKV { return &memKV{m: map[string][]byte{}} }

func (k *memKV) Get(_ context.Context, key string) ([]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.m[key], nil
}

func (k *memKV) Set(_ context.Context, key string, v []byte) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.m[key] = v
	return nil
}

func (k *memKV) Delete(_ context.Context, key string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.m, key)
	return nil
}

func (k *memKV) keys(prefix string) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	n := 0
	for key := range k.m {
		if strings.HasPrefix(key, prefix) {
			n++
		}
	}
	return n
}

// persisted is the first run's controller on kv, with an executor.
func persisted(t *testing.T, kv KV, clk *clock) (*Controller, *executor) {
	c := New(Config{Now: clk.Now})
	if n, err := c.Persist(kv); n != 0 || err != nil {
		t.Fatalf("empty storage: %d restored, %v", n, err)
	}
	ex := newExecutor()
	c.RegisterExecutor(ex)
	return c, ex
}

// restart is a controller of a new run on the same storage and clock.
func restart(t *testing.T, kv KV, clk *clock) (*Controller, int, error) {
	c := New(Config{Now: clk.Now})
	t.Cleanup(c.Shutdown)
	n, err := c.Persist(kv)
	return c, n, err
}

// TestHistorySurvivesRestart: tasks, causes and profiles come back after a
// restart; the task running at shutdown is interrupted with what it
// collected; 48 h retention applies to what was restored.
func TestHistorySurvivesRestart(t *testing.T) {
	kv := newMemKV()
	clk := newClock()
	c1, ex := persisted(t, kv, clk)
	done := mustAccept(t, c1, req(policy.TargetOnCPU, time.Minute, proc(1)))
	ex.sink(done).Started()
	ex.sink(done).AddProfile(cpuProfile(t, 3, "work"))
	ex.sink(done).Done(nil)
	clk.Add(time.Second)
	running := mustAccept(t, c1, req(policy.TargetOffCPU, 0, proc(2)))
	ex.sink(running).Started()
	ex.sink(running).AddProfile(cpuProfile(t, 5, "busy"))
	c1.Shutdown()
	// The executor's last report arrives after its task was interrupted.
	ex.sink(running).AddProfile(cpuProfile(t, 2, "busy"))

	c2, n, err := restart(t, kv, clk)
	if n != 2 || err != nil {
		t.Fatalf("restored %d tasks, %v; want 2", n, err)
	}
	if ti := state(t, c2, done); ti.State != StateFinished || len(ti.Causes) != 1 || ti.Causes[0].Values[1] != 91 || ti.Silence != time.Minute {
		t.Fatalf("finished task after restart: %+v", ti)
	}
	ti := state(t, c2, running)
	if ti.State != StateInterrupted || ti.Error != interruptedText || ti.Profile.Profiles != 1 {
		t.Fatalf("running task after restart: %+v", ti)
	}
	p, _ := download(t, c2, running)
	var total int64
	for _, s := range p.Sample {
		total += s.Value[0]
	}
	if total != 5 {
		t.Fatalf("interrupted task's profile has %d samples, want the 5 collected before the stop", total)
	}
	if got := c2.Tasks(); len(got) != 2 || got[0].ID != running {
		t.Fatalf("restored order: %+v", got)
	}
	if n, _ := c2.ProcessStats(proc(1).Key()); n != 1 {
		t.Fatal("summary lost a restored task")
	}
	c2.Shutdown()

	// Two days later nothing is left, in memory or in storage.
	clk.Add(DefaultHistoryTTL + time.Minute)
	c3, n, err := restart(t, kv, clk)
	if n != 0 || err != nil || len(c3.Tasks()) != 0 {
		t.Fatalf("after 48 h: %d restored, %v", n, err)
	}
	c3.Shutdown()
	if tk, pk := kv.keys(taskPrefix), kv.keys(profilePrefix); tk != 0 || pk != 0 {
		t.Fatalf("storage keeps %d tasks and %d profiles past the retention", tk, pk)
	}
}

// TestKilledCollectorTasksInterrupted: without a clean stop, what was
// running is interrupted at the next start.
func TestKilledCollectorTasksInterrupted(t *testing.T) {
	kv := newMemKV()
	clk := newClock()
	c1, ex := persisted(t, kv, clk)
	id := mustAccept(t, c1, req(policy.TargetOnCPU, 0, proc(1)))
	ex.sink(id).Started()
	c1.closeJournal() // the process dies here
	c2, n, err := restart(t, kv, clk)
	if n != 1 || err != nil || state(t, c2, id).State != StateInterrupted {
		t.Fatalf("restored %d, %v: %+v", n, err, state(t, c2, id))
	}
	c1.Shutdown()
}

// TestCorruptStorage: a corrupt index starts an empty history with a clear
// error; a corrupt entry costs only itself.
func TestCorruptStorage(t *testing.T) {
	kv := newMemKV()
	clk := newClock()
	c1, ex := persisted(t, kv, clk)
	a := mustAccept(t, c1, req(policy.TargetOnCPU, 0, proc(1)))
	ex.sink(a).AddProfile(cpuProfile(t, 3, "work"))
	ex.sink(a).Done(nil)
	b := mustAccept(t, c1, req(policy.TargetOnCPU, 0, proc(2)))
	ex.sink(b).Done(nil)
	c1.Shutdown()

	kv.Set(context.Background(), profilePrefix+a, []byte("{not json"))
	kv.Set(context.Background(), taskPrefix+b, []byte("\x00\x01"))
	c2, n, err := restart(t, kv, clk)
	if n != 1 || err == nil || !strings.Contains(err.Error(), "profile "+a+": corrupt") || !strings.Contains(err.Error(), "task "+b) {
		t.Fatalf("restored %d, error %v", n, err)
	}
	if ti := state(t, c2, a); ti.State != StateFinished || ti.Profile.Profiles != 0 {
		t.Fatalf("task with a corrupt profile: %+v", ti)
	}
	c2.Shutdown()

	kv.Set(context.Background(), indexKey, []byte("[\"a\","))
	c3, n, err := restart(t, kv, clk)
	if n != 0 || err == nil || !strings.Contains(err.Error(), "the index is corrupt") || !strings.Contains(err.Error(), "starting with an empty history") {
		t.Fatalf("corrupt index: restored %d, %v", n, err)
	}
	ex3 := newExecutor()
	defer c3.RegisterExecutor(ex3)()
	mustAccept(t, c3, req(policy.TargetOnCPU, 0, proc(3)))
}
