//go:build linux

package offcpu

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/contprof/contprof/internal/testhelper/workload"
)

// runTime is the time the threads of pid have run, by the scheduler's
// accounting (/proc/PID/task/TID/schedstat), and the number of threads.
func runTime(pid int) (runNs int64, threads int, err error) {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, 0, err
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name(), "schedstat"))
		if err != nil {
			return 0, 0, err
		}
		f := strings.Fields(string(b))
		if len(f) < 1 {
			return 0, 0, fmt.Errorf("bad schedstat %q", b)
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, 0, err
		}
		runNs += n
		threads++
	}
	return runNs, threads, nil
}

// offCPU records a single-threaded workload that blocks thousands of times
// a second (sleeploop: ~250 us sleeps) under a profiler with the given
// stack budget for about 2 s, and returns its off-CPU time as recorded and
// as the kernel's scheduler statistics give it (wall time minus run time).
func offCPU(t *testing.T, bin string, budget int) (recorded, truth time.Duration, st Stats) {
	t.Helper()
	p, err := Open(Options{MaxStacksPerSecond: budget})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	proc := workload.Start(t, bin, "200")
	defer proc.Stop()
	sub, err := p.Add(proc.PID())
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	time.Sleep(300 * time.Millisecond) // rate windows settled
	before, err := p.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sub.Drain(); err != nil {
		t.Fatal(err)
	}
	run0, _, err := runTime(proc.PID())
	if err != nil {
		t.Fatal(err)
	}
	wall0 := time.Now()
	time.Sleep(2 * time.Second)
	b, err := sub.Drain()
	if err != nil {
		t.Fatal(err)
	}
	run1, n, err := runTime(proc.PID())
	if err != nil {
		t.Fatal(err)
	}
	wall := time.Since(wall0)
	if n != 1 {
		t.Fatalf("sleeploop has %d threads, want 1", n)
	}
	after, err := p.Stats()
	if err != nil {
		t.Fatal(err)
	}
	st = Stats{SwitchOuts: after.SwitchOuts - before.SwitchOuts, Unsampled: after.Unsampled - before.Unsampled}
	return time.Duration(b.Total()), wall - time.Duration(run1-run0), st
}

// The stack budget samples a thread that blocks thousands of times a
// second and scales what it records by the inverse of the probability: the
// recorded off-CPU time matches the kernel's scheduler statistics, sampled
// or not, within what sampling explains.
//
// Two small effects of the walk itself bound the accuracy on very short
// blocks. A sampled block starts after its stack walk (~10-20 us here):
// for a timer or I/O wait the walk eats into the block, so ~250 us sleeps
// come out ~5-8% short at p = 0.05. For a ping-pong of microsecond blocks
// the cache misses of the walk lengthen the partner's run, i.e. the block
// being recorded, and sampled blocks come out long (+15-40% at small
// budgets on perf bench sched pipe). Neither matters for the millisecond
// blocks off-CPU profiling is about.
func TestStackBudgetUnbiased(t *testing.T) {
	requireEBPF(t)
	bin := workload.BuildC(t, "sleeploop.c")
	for _, budget := range []int{200, 1 << 20} {
		rec, truth, st := offCPU(t, bin, budget)
		t.Logf("budget %d/s: recorded %v, scheduler says %v (%.3f); %d switch-outs recorded, %d skipped", budget, rec, truth, float64(rec)/float64(truth), st.SwitchOuts, st.Unsampled)
		if budget == 200 && st.Unsampled < 5*st.SwitchOuts {
			t.Errorf("budget %d/s: %d switch-outs recorded, %d skipped: want most skipped", budget, st.SwitchOuts, st.Unsampled)
		}
		// ~400 samples at 200/s: sampling alone deviates about 5%; a
		// scaling mistake would be off by the factor 1/p (about 15).
		if r := float64(rec) / float64(truth); r < 0.8 || r > 1.2 {
			t.Errorf("budget %d/s: recorded %v off-CPU, the scheduler's statistics say %v: want ± 20%%", budget, rec, truth)
		}
	}
}
