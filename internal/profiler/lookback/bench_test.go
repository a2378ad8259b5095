//go:build linux

package lookback

import (
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/contprof/contprof/internal/testhelper/workload"
)

// BenchmarkLookback100 is the cost of the lookback record with 100
// selected busy processes: each round runs 100 hotcpu processes with a
// fixed amount of work twice, alternately unrecorded and recorded (all 100
// selected, 19 Hz, 10 s lookback), and compares the CPU time the children
// used (CPU time, not wall clock: the machine may be loaded by others). It
// reports the median slowdown, the recorder's own CPU per second of
// recording (this process: unwinding, rings) and the memory the rings and
// the Go heap hold. Run with:
//
//	go test -run '^$' -bench Lookback100 -benchtime 1x ./internal/profiler/lookback/
//
// CONTPROF_LOOKBACK_ROUNDS (default 3), CONTPROF_LOOKBACK_PROCS (100) and
// CONTPROF_LOOKBACK_WORK (hotcpu rounds per process, default 20) change
// the size.
func BenchmarkLookback100(b *testing.B) {
	requireEBPF(b)
	bin := workload.BuildC(b, "hotcpu.c")
	rounds := envInt(b, "CONTPROF_LOOKBACK_ROUNDS", 3)
	procs := envInt(b, "CONTPROF_LOOKBACK_PROCS", 100)
	work := strconv.Itoa(envInt(b, "CONTPROF_LOOKBACK_WORK", 20))
	r, err := New(Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()

	// run starts procs workers, records them if asked, and returns the
	// CPU they used and the recorder's CPU and wall time meanwhile.
	run := func(record bool) (children, self, wall time.Duration, bytes int64) {
		cmds := make([]*exec.Cmd, procs)
		sel := Selection{}
		for i := range cmds {
			cmds[i] = exec.Command(bin, work)
			cmds[i].Stdout = nil
			if err := cmds[i].Start(); err != nil {
				b.Fatal(err)
			}
			sel[cmds[i].Process.Pid] = Selected{Lookback: 10 * time.Second}
		}
		self0, start := selfCPU(), time.Now()
		if record {
			if err := r.Sync(sel); err != nil {
				b.Logf("sync: %v", err)
			}
		}
		for _, c := range cmds {
			if err := c.Wait(); err != nil {
				b.Fatal(err)
			}
			children += c.ProcessState.UserTime() + c.ProcessState.SystemTime()
		}
		bytes = r.Stats().Bytes
		self, wall = selfCPU()-self0, time.Since(start)
		if err := r.Sync(Selection{}); err != nil {
			b.Fatal(err)
		}
		return children, self, wall, bytes
	}

	var plain, recorded, slow []float64
	var selfPerSec []float64
	var maxBytes int64
	for range b.N {
		for i := 0; i < rounds; i++ {
			p, _, _, _ := run(false)
			c, self, wall, bytes := run(true)
			plain, recorded = append(plain, p.Seconds()), append(recorded, c.Seconds())
			slow = append(slow, 100*(c.Seconds()/p.Seconds()-1))
			selfPerSec = append(selfPerSec, self.Seconds()/wall.Seconds())
			maxBytes = max(maxBytes, bytes)
			b.Logf("round %d: children CPU %.2fs unrecorded, %.2fs recorded (%+.2f %%); recorder CPU %.1f %% of a core over %v; rings %d KiB",
				i, p.Seconds(), c.Seconds(), slow[len(slow)-1], 100*self.Seconds()/wall.Seconds(), wall.Round(time.Millisecond), bytes>>10)
		}
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(medianF(plain), "plain-cpu-s")
	b.ReportMetric(medianF(recorded), "recorded-cpu-s")
	b.ReportMetric(medianF(slow), "slowdown-%")
	b.ReportMetric(100*medianF(selfPerSec), "recorder-cpu-%core")
	b.ReportMetric(float64(maxBytes)/(1<<10), "rings-KiB")
	b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-MiB")
}

func medianF(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func envInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		b.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}
