//go:build linux

package lookback

import (
	"maps"
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
// selected, 19 Hz, 10 s lookback; the sampler is loaded for both, with
// only an idle process selected in the unrecorded run), and compares the
// CPU time the children used (CPU time, not wall clock: the machine may be loaded by others). It
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
	// A sleeping process stays selected throughout, so the sampler stays
	// loaded and both runs of a round see the same kernel: the difference
	// is only whether the workers are selected.
	keeper := exec.Command("sleep", "3600")
	if err := keeper.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = keeper.Process.Kill(); _ = keeper.Wait() }()
	keep := Selection{keeper.Process.Pid: {Lookback: 10 * time.Second}}
	if err := r.Sync(keep); err != nil {
		b.Fatal(err)
	}

	// run starts procs workers, records them if asked, and returns the
	// CPU they used and the recorder's CPU and wall time meanwhile.
	run := func(record bool) (children, self, wall time.Duration, bytes int64) {
		// Workers are stopped as soon as they start, selected (or not),
		// then continued together: the recorder is in place for all of
		// their work.
		cmds := make([]*exec.Cmd, procs)
		sel := maps.Clone(keep)
		for i := range cmds {
			cmds[i] = exec.Command(bin, work)
			if err := cmds[i].Start(); err != nil {
				b.Fatal(err)
			}
			_ = cmds[i].Process.Signal(syscall.SIGSTOP)
			sel[cmds[i].Process.Pid] = Selected{Lookback: 10 * time.Second}
		}
		if record {
			if err := r.Sync(sel); err != nil {
				b.Logf("sync: %v", err)
			}
		}
		self0, start := selfCPU(), time.Now()
		for _, c := range cmds {
			_ = c.Process.Signal(syscall.SIGCONT)
		}
		// The rings' peak: processes that ended early age out of them.
		stop, peak := make(chan struct{}), make(chan int64)
		go func() {
			var p int64
			tick := time.NewTicker(250 * time.Millisecond)
			defer tick.Stop()
			for {
				p = max(p, r.Stats().Bytes)
				select {
				case <-stop:
					peak <- p
					return
				case <-tick.C:
				}
			}
		}()
		for _, c := range cmds {
			if err := c.Wait(); err != nil {
				b.Fatal(err)
			}
			children += c.ProcessState.UserTime() + c.ProcessState.SystemTime()
		}
		close(stop)
		bytes = <-peak
		self, wall = selfCPU()-self0, time.Since(start)
		if err := r.Sync(keep); err != nil {
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
			b.Logf("round %d: children CPU %.2fs unrecorded, %.2fs recorded (%+.2f %%); recorder CPU %.1f %% of a core over %v; rings peak %d KiB",
				i, p.Seconds(), c.Seconds(), slow[len(slow)-1], 100*self.Seconds()/wall.Seconds(), wall.Round(time.Millisecond), bytes>>10)
		}
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(medianF(plain), "plain-cpu-s")
	b.ReportMetric(medianF(recorded), "recorded-cpu-s")
	b.ReportMetric(medianF(slow), "slowdown-%")
	b.ReportMetric(100*medianF(selfPerSec), "recorder-cpu-%core")
	b.ReportMetric(float64(maxBytes)/(1<<10), "rings-peak-KiB")
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
