//go:build linux

package oncpu

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/contprof/contprof/internal/profiler/symbolize"
	"github.com/contprof/contprof/internal/testhelper/workload"
)

// BenchmarkOverhead runs a CPU-bound workload built with gcc's defaults (no
// frame pointers: callers.c, a fixed amount of work) without profiling,
// under contprof at 99 Hz (stack copies unwound with DWARF in user space,
// draining and symbolizing every second, as a task does), under `perf
// record -F 99 -g` and under `perf record -F 99 --call-graph dwarf`,
// alternating the four in each round so that machine noise hits them
// alike. It reports the median run time of each and the slowdown ratios.
// Run with:
//
//	go test -run '^$' -bench Overhead -benchtime 1x ./internal/profiler/oncpu/
//
// CONTPROF_OVERHEAD_ROUNDS (default 7) and CONTPROF_OVERHEAD_WORK (cycles
// of callers.c, default 50, about 2 s) change the size.
func BenchmarkOverhead(b *testing.B) {
	requireEBPF(b)
	perf, err := exec.LookPath("perf")
	if err != nil {
		b.Fatal("perf (linux-perf) is not installed")
	}
	bin := workload.BuildCDefault(b, "callers.c")
	rounds := envInt(b, "CONTPROF_OVERHEAD_ROUNDS", 7)
	work := strconv.Itoa(envInt(b, "CONTPROF_OVERHEAD_WORK", 50))
	perfData := filepath.Join(b.TempDir(), "perf.data")
	// One symbolizer for all runs, as in a long-running collector (its
	// kallsyms table is loaded once, not per task).
	sym := symbolize.New(symbolize.Options{})
	if err := sym.KernelError(); err != nil {
		b.Fatal(err)
	}
	var selfTotal time.Duration

	// cpu is the workload's CPU time plus the profiler's own (contprof's
	// drains, unwinding and symbolization; perf's process); target is the
	// workload's alone.
	type sample struct{ wall, cpu, target time.Duration }
	type mode struct {
		name    string
		run     func() (sample, error)
		samples []sample
	}
	plain := func() (sample, error) {
		cmd := exec.Command(bin, "cpu", work)
		start := time.Now()
		err := cmd.Run()
		return sample{time.Since(start), childCPU(cmd), childCPU(cmd)}, err
	}
	contprof := func() (sample, error) {
		// Loaded before the run, as for a task whose process is running:
		// the load time is not part of the steady-state overhead.
		s, err := Open(Options{Frequency: 99})
		if err != nil {
			return sample{}, err
		}
		defer s.Close()
		cmd := exec.Command(bin, "cpu", work)
		selfBefore := selfCPU()
		start := time.Now()
		if err := cmd.Start(); err != nil {
			return sample{}, err
		}
		sub, err := s.Add(cmd.Process.Pid)
		if err != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			return sample{}, err
		}
		done := make(chan struct{})
		drained := make(chan uint64)
		go func() { // the task's report loop
			var n uint64
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for {
				select {
				case <-tick.C:
					if bt, err := sub.Drain(); err == nil {
						bt.Profile(sym, nil, nil).Pprof()
						n += bt.Total()
					}
				case <-done:
					drained <- n
					return
				}
			}
		}()
		err = cmd.Wait()
		d := time.Since(start)
		close(done)
		n := <-drained
		if bt, err := sub.Drain(); err == nil {
			n += bt.Total()
		}
		_ = sub.Close()
		// Our own CPU (drains, symbolization) counts, as perf's does.
		self := selfCPU() - selfBefore
		selfTotal += self
		smp := sample{d, childCPU(cmd) + self, childCPU(cmd)}
		if n == 0 {
			return smp, fmt.Errorf("contprof took no samples")
		}
		return smp, err
	}
	perfRecord := func(callGraph ...string) func() (sample, error) {
		return func() (sample, error) {
			// perf's rusage includes the workload it waited for.
			args := append([]string{"record", "-q", "-F", "99"}, callGraph...)
			args = append(args, "-o", perfData, "--", bin, "cpu", work)
			cmd := exec.Command(perf, args...)
			start := time.Now()
			out, err := cmd.CombinedOutput()
			if err != nil {
				return sample{}, fmt.Errorf("perf record: %v: %s", err, out)
			}
			return sample{time.Since(start), childCPU(cmd), childCPU(cmd)}, nil
		}
	}
	modes := []*mode{{name: "none", run: plain}, {name: "contprof", run: contprof},
		{name: "perf", run: perfRecord("-g")}, {name: "perf-dwarf", run: perfRecord("--call-graph", "dwarf")}}

	for b.Loop() {
		for _, md := range modes {
			md.samples = nil
		}
		for r := 0; r < rounds; r++ {
			for i := range modes {
				// Rotate the order so that no mode always runs first.
				md := modes[(i+r)%len(modes)]
				smp, err := md.run()
				if err != nil {
					b.Fatalf("%s: %v", md.name, err)
				}
				md.samples = append(md.samples, smp)
			}
		}
	}
	wall, cpu, target := map[string]time.Duration{}, map[string]time.Duration{}, map[string]time.Duration{}
	for _, md := range modes {
		var ws, cs, ts []time.Duration
		for _, s := range md.samples {
			ws, cs, ts = append(ws, s.wall), append(cs, s.cpu), append(ts, s.target)
		}
		wall[md.name], cpu[md.name], target[md.name] = median(ws), median(cs), median(ts)
		b.Logf("%-8s median wall %v cpu %v | wall %v | cpu %v", md.name, wall[md.name].Round(time.Millisecond),
			cpu[md.name].Round(time.Millisecond), roundAll(ws), roundAll(cs))
	}
	b.Logf("contprof's own CPU (drain, symbolize, pprof every second): %v per run on average", (selfTotal / time.Duration(rounds*b.N)).Round(time.Millisecond))
	ratio := func(m map[string]time.Duration, name string) float64 { return float64(m[name]) / float64(m["none"]) }
	b.Logf("slowdown (CPU time): contprof %+.2f%%, perf record -g %+.2f%%, perf record --call-graph dwarf %+.2f%%",
		100*(ratio(cpu, "contprof")-1), 100*(ratio(cpu, "perf")-1), 100*(ratio(cpu, "perf-dwarf")-1))
	b.Logf("slowdown (wall time): contprof %+.2f%%, perf record -g %+.2f%%, perf record --call-graph dwarf %+.2f%%",
		100*(ratio(wall, "contprof")-1), 100*(ratio(wall, "perf")-1), 100*(ratio(wall, "perf-dwarf")-1))
	b.Logf("slowdown of the target (its own CPU time; perf's run includes its children's): contprof %+.2f%%", 100*(ratio(target, "contprof")-1))
	b.ReportMetric(ratio(target, "contprof"), "contprof/none-target-cpu")
	b.ReportMetric(ratio(cpu, "contprof"), "contprof/none-cpu")
	b.ReportMetric(ratio(cpu, "perf"), "perf/none-cpu")
	b.ReportMetric(ratio(wall, "contprof"), "contprof/none-wall")
	b.ReportMetric(ratio(wall, "perf"), "perf/none-wall")
	b.ReportMetric(ratio(cpu, "perf-dwarf"), "perf-dwarf/none-cpu")
	b.ReportMetric(ratio(wall, "perf-dwarf"), "perf-dwarf/none-wall")
}

// childCPU is the user+system time of a waited-for command (and of the
// children it waited for).
func childCPU(cmd *exec.Cmd) time.Duration {
	if cmd.ProcessState == nil {
		return 0
	}
	return cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func roundAll(ds []time.Duration) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = d.Round(time.Millisecond).String()
	}
	return strings.Join(parts, " ")
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

// BenchmarkProgramCost measures the in-kernel cost of the BPF program with
// the kernel's own BPF run-time statistics: average time per run (every
// CPU-clock tick of every process runs it; most are filtered out at once)
// and per sample of the target, while a CPU-bound workload is profiled at
// 99 Hz. Run with:
//
//	go test -run '^$' -bench ProgramCost -benchtime 1x ./internal/profiler/oncpu/
func BenchmarkProgramCost(b *testing.B) {
	requireEBPF(b)
	stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		b.Fatalf("enable BPF run-time statistics: %v", err)
	}
	defer stats.Close()
	proc := workload.Start(b, workload.BuildC(b, "hotcpu.c"))
	s, err := Open(Options{Frequency: 99})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	sub, err := s.Add(proc.PID())
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		time.Sleep(3 * time.Second)
	}
	bt, err := sub.Drain()
	if err != nil {
		b.Fatal(err)
	}
	ps, err := s.k.objs.Program().Stats()
	if err != nil {
		b.Fatal(err)
	}
	if ps.RunCount == 0 || bt.Total() == 0 {
		b.Fatalf("no runs (%d) or samples (%d)", ps.RunCount, bt.Total())
	}
	perRun := float64(ps.Runtime.Nanoseconds()) / float64(ps.RunCount)
	perSample := float64(ps.Runtime.Nanoseconds()) / float64(bt.Total()) // all runs charged to the target's samples
	// Share of one CPU spent in the program at 99 Hz per CPU.
	frac := float64(ps.Runtime.Nanoseconds()) / float64(time.Duration(b.N)*3*time.Second) / float64(runtime.NumCPU())
	b.Logf("program runs %d (%d target samples), %.0f ns per run, %.0f ns per target sample, %.4f%% of the CPUs",
		ps.RunCount, bt.Total(), perRun, perSample, 100*frac)
	b.ReportMetric(perRun, "ns/run")
	b.ReportMetric(perSample, "ns/sample")
	b.ReportMetric(100*frac, "%cpu")
}
