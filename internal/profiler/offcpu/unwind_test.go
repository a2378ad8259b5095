//go:build linux

package offcpu

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/contprof/contprof/internal/output/profiles"
	"github.com/contprof/contprof/internal/profiler/symbolize"
	"github.com/contprof/contprof/internal/testhelper/workload"
)

// TestBlockingThroughLibc: a program built with gcc's defaults (no frame
// pointers) blocks through libc (nanosleep, read) from three functions for
// 6:3:1 of its main thread's time. Its off-CPU profile must keep the
// application frames above libc's blocking calls and split the time right.
func TestBlockingThroughLibc(t *testing.T) {
	requireEBPF(t)
	bin := workload.BuildCDefault(t, "callers.c")
	// 120, 60 and 20 ms: long enough that wake-up latencies on a busy
	// machine (which add to each block) do not skew the split much.
	proc := workload.Start(t, bin, "sleep", "20")
	p, err := Open(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	sub, err := p.Add(proc.PID())
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	sym := symbolize.New(symbolize.Options{})
	if err := sym.Preload(proc.PID()); err != nil {
		t.Fatal(err)
	}
	if !p.k.uw.Unwinder.Wait(proc.PID(), 20*time.Second) {
		t.Fatal("unwind tables not built within 20s")
	}
	sub.Drain()
	time.Sleep(5 * time.Second)
	b, err := sub.Drain()
	if err != nil {
		t.Fatal(err)
	}
	prof := b.Profile(sym, nil, nil)

	// Each function's time, and the frames below and above it.
	type want struct {
		fn      string
		share   float64
		libc    []string // one of these must be below fn (leafward)
		callers []string // in order above fn (rootward)
	}
	wants := []want{
		{"sleep_a", 0.6, []string{"nanosleep", "clock_nanosleep", "__nanosleep", "__clock_nanosleep"}, []string{"main"}},
		{"read_b", 0.3, []string{"read", "__read", "__libc_read"}, []string{"main"}},
		{"sleep_c", 0.1, []string{"nanosleep", "clock_nanosleep", "__nanosleep", "__clock_nanosleep"}, []string{"main"}},
	}
	ns := make([]int64, len(wants))
	var total, whole int64
	for _, s := range prof.Samples {
		var user []string
		for _, f := range s.Frames {
			if f.Type != profiles.FrameKernel {
				user = append(user, f.Function)
			}
		}
		for i, w := range wants {
			at := indexOf(user, w.fn)
			if at < 0 {
				continue
			}
			ns[i] += s.Value
			total += s.Value
			okLibc := false
			for _, l := range w.libc {
				if indexOf(user[:at], l) >= 0 {
					okLibc = true
				}
			}
			if okLibc && indexOf(user[at:], "main") > 0 && indexOf(user[at:], "__libc_start_main") > 0 {
				whole += s.Value
			} else {
				t.Logf("incomplete stack for %s (%v): %s", w.fn, time.Duration(s.Value), strings.Join(user, " <- "))
			}
		}
	}
	if total < int64(2*time.Second) {
		t.Fatalf("only %v off the CPU in the three functions in 5s", time.Duration(total))
	}
	if float64(whole) < 0.95*float64(total) {
		t.Errorf("only %.1f%% of the time has whole stacks (libc call, function, main, libc start)", 100*float64(whole)/float64(total))
	}
	for i, w := range wants {
		got := float64(ns[i]) / float64(total)
		t.Logf("%s: %.1f%% (want %.0f%%)", w.fn, 100*got, 100*w.share)
		if math.Abs(got-w.share) > 0.04 {
			t.Errorf("%s: %.1f%% of the blocked time, want %.0f%% ± 4 points", w.fn, 100*got, 100*w.share)
		}
	}
}

func indexOf(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}
