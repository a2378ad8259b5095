//go:build linux

package oncpu

import (
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/contprof/contprof/internal/profiler/symbolize"
	"github.com/contprof/contprof/internal/testhelper/workload"
)

// BenchmarkPythonOverhead runs a fixed amount of Python work under
// Debian's python3.11 without profiling, with the on-CPU sampler at 99 Hz
// walking its Python stacks (drained and symbolized every second), and
// with the sampler but no Python walk (the same binary with Py_Version
// patched to an unknown version: native stacks only), in rotation. It
// reports the Python process's CPU time with profiling over without (the
// target is ≤ 1.01), the Python walk's share of it (python over native
// profiling), and the collector's own CPU per CPU second profiled.
func BenchmarkPythonOverhead(b *testing.B) {
	requireEBPF(b)
	if _, err := exec.LookPath(workload.DebianPython); err != nil {
		b.Fatalf("%s is needed", workload.DebianPython)
	}
	rounds := envInt(b, "CONTPROF_OVERHEAD_ROUNDS", 7)
	work := strconv.Itoa(envInt(b, "CONTPROF_PY_WORK", 6000))
	script := filepath.Join(workload.Dir(b), "python", "fixed_work.py")
	sym := symbolize.New(symbolize.Options{})
	nativeOnly := patchedPython(b, 0x030e0000)
	run := func(python string, profile bool) (time.Duration, time.Duration, error) {
		var s *Sampler
		if profile {
			var err error
			if s, err = Open(Options{Frequency: 99}); err != nil {
				return 0, 0, err
			}
			defer s.Close()
		}
		cmd := exec.Command(python, script, work)
		self := selfCPU()
		if err := cmd.Start(); err != nil {
			return 0, 0, err
		}
		done := make(chan struct{})
		if profile {
			sub, err := s.Add(cmd.Process.Pid)
			if err != nil {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
				return 0, 0, err
			}
			defer sub.Close()
			go func() { // the task's report loop
				tick := time.NewTicker(time.Second)
				defer tick.Stop()
				for {
					select {
					case <-tick.C:
						if bt, err := sub.Drain(); err == nil {
							bt.Profile(sym, nil, nil).Pprof()
						}
					case <-done:
						return
					}
				}
			}()
		}
		err := cmd.Wait()
		close(done)
		return childCPU(cmd), selfCPU() - self, err
	}
	var plain, profiled, native, own []time.Duration
	type mode struct {
		python  string
		profile bool
		out     *[]time.Duration
	}
	modes := []mode{{workload.DebianPython, false, &plain}, {workload.DebianPython, true, &profiled}, {nativeOnly, true, &native}}
	for b.Loop() {
		for r := 0; r < rounds; r++ {
			for i := range modes {
				md := modes[(i+r)%len(modes)] // no mode always runs first
				cpu, self, err := run(md.python, md.profile)
				if err != nil {
					b.Fatal(err)
				}
				*md.out = append(*md.out, cpu)
				if md.out == &profiled {
					own = append(own, self)
				}
			}
		}
	}
	p, q := median(plain), median(profiled)
	b.Logf("python3.11 CPU: none %v | 99 Hz with Python stacks %v (%+.2f%%); collector's own CPU %v per run",
		p.Round(time.Millisecond), q.Round(time.Millisecond), 100*(float64(q)/float64(p)-1), median(own).Round(time.Millisecond))
	n := median(native)
	b.Logf("native-only profiling %v (%+.2f%%): the Python walk itself %+.2f%%", n.Round(time.Millisecond),
		100*(float64(n)/float64(p)-1), 100*(float64(q)/float64(n)-1))
	b.Logf("none %v | profiled %v | native only %v", roundAll(plain), roundAll(profiled), roundAll(native))
	b.ReportMetric(float64(q)/float64(p), "python-profiled/none-cpu")
	b.ReportMetric(float64(q)/float64(n), "python-profiled/native-profiled-cpu")
	b.ReportMetric(float64(median(own))/float64(q), "collector/python-cpu")
}

// BenchmarkPythonProgramCost measures, with the kernel's BPF run-time
// statistics, the sampler program's time per sample of a Python process
// whose stacks are walked (Debian's python3.11) and of the same binary
// with an unknown version (not walked): the difference is the walk's cost
// per sample, which at 99 Hz is the walk's share of the process's CPU.
func BenchmarkPythonProgramCost(b *testing.B) {
	requireEBPF(b)
	stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		b.Fatalf("enable BPF run-time statistics: %v", err)
	}
	defer stats.Close()
	script := filepath.Join(workload.Dir(b), "python", "cpu_shares.py")
	perSample := func(python string) float64 {
		proc := workload.Start(b, python, script)
		defer proc.Stop()
		s, err := Open(Options{Frequency: 99})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		sub, err := s.Add(proc.PID())
		if err != nil {
			b.Fatal(err)
		}
		time.Sleep(5 * time.Second)
		bt, err := sub.Drain()
		if err != nil {
			b.Fatal(err)
		}
		ps, err := s.k.objs.Program().Stats()
		if err != nil {
			b.Fatal(err)
		}
		if bt.Total() == 0 {
			b.Fatal("no samples")
		}
		// Every run is charged to the target's samples (other
		// processes' runs end at the filter).
		return float64(ps.Runtime.Nanoseconds()) / float64(bt.Total())
	}
	var walked, native float64
	for b.Loop() {
		walked, native = perSample(workload.DebianPython), perSample(patchedPython(b, 0x030e0000))
	}
	walk := walked - native
	b.Logf("program time per sample: %.0f ns with the Python walk, %.0f ns without: the walk costs %.0f ns a sample, %.4f%% of a CPU at 99 Hz",
		walked, native, walk, 100*walk*99/1e9)
	b.ReportMetric(walked, "ns/sample-walked")
	b.ReportMetric(native, "ns/sample-native")
	b.ReportMetric(100*walk*99/1e9, "%cpu-walk")
}
