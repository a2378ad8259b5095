//go:build linux

package offcpu

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/contprof/contprof/internal/output/profiles"
	"github.com/contprof/contprof/internal/profiler/symbolize"
	"github.com/contprof/contprof/internal/testhelper/workload"
)

// profilePython records python running script (with args) for d and
// returns the off-CPU profile.
func profilePython(t *testing.T, script string, d time.Duration, args ...string) *profiles.Profile {
	t.Helper()
	proc := workload.Start(t, workload.DebianPython, append([]string{filepath.Join(workload.Dir(t), "python", script)}, args...)...)
	s, err := Open(Options{})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer s.Close()
	sub, err := s.Add(proc.PID())
	if err != nil {
		t.Fatalf("add pid: %v", err)
	}
	defer sub.Close()
	time.Sleep(d)
	b, err := sub.Drain()
	if err != nil {
		t.Fatalf("drain: %v", err)
	}
	if !strings.HasPrefix(b.PythonNote, "Python 3.11") {
		t.Errorf("note %q, want the interpreter walked", b.PythonNote)
	}
	return b.Profile(symbolize.New(symbolize.Options{}), nil, nil)
}

// timeUnder sums the time of samples whose stack has a frame named fn.
func timeUnder(p *profiles.Profile, fn string) int64 {
	var n int64
	for _, s := range p.Samples {
		for _, f := range s.Frames {
			if f.Function == fn {
				n += s.Value
				break
			}
		}
	}
	return n
}

// A Python function blocking in time.sleep and one in a socket read, 3:1
// in time: the off-CPU time lands on the right Python callers.
func TestPythonBlocking(t *testing.T) {
	requireEBPF(t)
	workload.RequirePython(t)
	spent := filepath.Join(t.TempDir(), "spent")
	p := profilePython(t, "blocking.py", 6*time.Second, spent)
	sleep, read := timeUnder(p, "blocking.py_sleeper"), timeUnder(p, "blocking.py_reader")
	// What the workload measured itself (nominally 3:1; wake-up latency
	// on a busy machine lengthens the short reads a little more).
	var realSleep, realRead float64
	if b, err := os.ReadFile(spent); err != nil {
		t.Fatal(err)
	} else if _, err := fmt.Sscan(string(b), &realSleep, &realRead); err != nil {
		t.Fatalf("workload times %q: %v", b, err)
	}
	want := realSleep / (realSleep + realRead)
	t.Logf("py_sleeper %v, py_reader %v; the workload measured %.2fs and %.2fs (%.1f%%)",
		time.Duration(sleep), time.Duration(read), realSleep, realRead, 100*want)
	if sleep+read == 0 {
		t.Fatal("neither Python caller in the profile")
	}
	got := float64(sleep) / float64(sleep+read)
	if math.Abs(got-want) > 0.05 || math.Abs(got-0.75) > 0.10 {
		t.Errorf("py_sleeper has %.1f%% of the two callers' time, want %.1f%% ± 5 (nominal 75%%)", 100*got, 100*want)
	}
	// Lines: the sleep, and the recv (not the sendall before it). A thread
	// preempted anywhere else in py_sleeper (e.g. at its first instruction,
	// which reads as the def line) is off-CPU there too, so the sleep's
	// line needs most, not all, of the function's time.
	var atSleep, sleeper, atRecv, reader int64
	for _, s := range p.Samples {
		for i, f := range s.Frames {
			if f.Function == "blocking.py_sleeper" {
				if i == 0 {
					t.Errorf("py_sleeper as the leaf frame: want it under native frames")
				}
				sleeper += s.Value
				if f.Line == 25 {
					atSleep += s.Value
				}
			}
			if f.Function == "blocking.py_reader" {
				reader += s.Value
				if f.Line == 30 {
					atRecv += s.Value
				}
			}
		}
	}
	if float64(atSleep) < 0.95*float64(sleeper) {
		t.Errorf("py_sleeper at line 25 (sleep) for %v of %v, want ≥ 95%%", time.Duration(atSleep), time.Duration(sleeper))
	}
	if float64(atRecv) < 0.8*float64(reader) {
		t.Errorf("py_reader at line 30 (recv) for %v of %v, want ≥ 80%%", time.Duration(atRecv), time.Duration(reader))
	}
}

// Each thread's own stack: thread "two" sleeps in py_two_sleep while
// thread "one" holds the GIL in py_one_work; the sleeper's blocked time is
// under py_two_sleep (the GIL holder's stack would say py_one_work).
func TestPythonThreadsOffCPU(t *testing.T) {
	requireEBPF(t)
	workload.RequirePython(t)
	p := profilePython(t, "threads.py", 5*time.Second)
	two, main := timeUnder(p, "threads.py_two_sleep"), timeUnder(p, "threads.py_main_wait")
	t.Logf("py_two_sleep %v, py_main_wait %v, total %v", time.Duration(two), time.Duration(main), time.Duration(p.Total()))
	if two < int64(2*time.Second) || main < int64(2*time.Second) {
		t.Errorf("want ≥ 2s blocked under each of py_two_sleep and py_main_wait")
	}
	for _, s := range p.Samples {
		n := 0
		for _, fn := range []string{"threads.py_one_work", "threads.py_two_sleep", "threads.py_main_wait"} {
			for _, f := range s.Frames {
				if f.Function == fn {
					n++
					break
				}
			}
		}
		if n > 1 {
			t.Errorf("a sample mixes threads: %v", s.Frames)
		}
	}
}
