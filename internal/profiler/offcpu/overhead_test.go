//go:build linux

package offcpu

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/contprof/contprof/internal/profiler/stackprof"
	"github.com/contprof/contprof/internal/profiler/symbolize"
	"github.com/contprof/contprof/internal/testhelper/benchenv"
)

var usecsPerOp = regexp.MustCompile(`([\d.]+)\s+usecs/op`)

// schedPipe runs `perf bench sched pipe -T -l loops` (two threads of one
// process ping-ponging over pipes: every operation is two context switches
// of the process). With p set, the process is profiled from its start, a
// task's drain and symbolization running every second. It returns perf's
// microseconds per operation.
func schedPipe(perf string, loops int, p *Profiler, sym *symbolize.Symbolizer) (float64, Stats, error) {
	args := []string{perf, "bench", "sched", "pipe", "-T", "-l", strconv.Itoa(loops)}
	if cpu := os.Getenv("CONTPROF_SCHEDPIPE_CPU"); cpu != "none" {
		// Both threads on one CPU: switches without cross-CPU wake-ups,
		// the cheapest switch and so the largest relative overhead, and
		// far steadier than letting the threads float (7.5 vs 8-25 us/op
		// on the 2-CPU VM).
		if cpu == "" {
			cpu = strconv.Itoa(runtime.NumCPU() - 1)
		}
		args = append([]string{"taskset", "-c", cpu}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return 0, Stats{}, err
	}
	var st Stats
	if p != nil {
		sub, err := p.Add(cmd.Process.Pid)
		if err != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			return 0, st, err
		}
		defer sub.Close()
		before, _ := p.Stats()
		done := make(chan struct{})
		drained := make(chan uint64)
		go func() { // the task's report loop
			var n uint64
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for {
				select {
				case <-tick.C:
					if b, err := sub.Drain(); err == nil {
						b.Profile(sym, nil, nil).Pprof()
						n += b.Total()
					}
				case <-done:
					drained <- n
					return
				}
			}
		}()
		err = cmd.Wait()
		close(done)
		n := <-drained
		if b, err := sub.Drain(); err == nil {
			n += b.Total()
		}
		after, _ := p.Stats()
		st = Stats{SwitchOuts: after.SwitchOuts - before.SwitchOuts, Blocks: after.Blocks - before.Blocks, Unsampled: after.Unsampled - before.Unsampled}
		if err != nil {
			return 0, st, fmt.Errorf("perf bench: %v: %s", err, out.String())
		}
		if n == 0 {
			return 0, st, fmt.Errorf("the profiler recorded no off-CPU time")
		}
	} else if err := cmd.Wait(); err != nil {
		return 0, st, fmt.Errorf("perf bench: %v: %s", err, out.String())
	}
	m := usecsPerOp.FindStringSubmatch(out.String())
	if m == nil {
		return 0, st, fmt.Errorf("no usecs/op in perf bench output: %s", out.String())
	}
	v, err := strconv.ParseFloat(m[1], 64)
	return v, st, err
}

// BenchmarkSchedPipe measures the overhead of off-CPU profiling on the
// worst case, a process that does nothing but switch: `perf bench sched
// pipe -T` without profiling; with the profiler attached but profiling
// another process (the cost every context switch of the machine pays while
// an off-CPU task runs); with that process profiled at the default stack
// budget (a drain every second, as a task does); and with its every
// switch-out recorded (no budget); and, for comparison with the state
// before user-space unwinding, profiled at the default budget with frame
// pointers only (the kernel's walk, no stack copies). The modes alternate in each round, in
// rotating order, so that machine noise hits them alike. Run with:
//
//	go test -run '^$' -bench SchedPipe -benchtime 1x ./internal/profiler/offcpu/
//
// CONTPROF_OVERHEAD_ROUNDS (default 15) and CONTPROF_SCHEDPIPE_LOOPS
// (default 50000, under a second a run) change the size. perf runs pinned
// to the last CPU (taskset); CONTPROF_SCHEDPIPE_CPU picks another CPU, or
// "none" to let its threads float. CONTPROF_OFFCPU_BUDGET sets
// MaxStacksPerSecond of the "profiled" mode.
func BenchmarkSchedPipe(b *testing.B) {
	requireEBPF(b)
	perf, err := exec.LookPath("perf")
	if err != nil {
		b.Fatal("perf (linux-perf) is not installed")
	}
	rounds := benchenv.Int(b, "CONTPROF_OVERHEAD_ROUNDS", 15)
	loops := benchenv.Int(b, "CONTPROF_SCHEDPIPE_LOOPS", 50000)
	budget := benchenv.Int(b, "CONTPROF_OFFCPU_BUDGET", DefaultMaxStacksPerSecond)
	sym := symbolize.New(symbolize.Options{})
	if err := sym.KernelError(); err != nil {
		b.Fatal(err)
	}
	// Profiled in the "loaded" mode: an idle process that never switches.
	idle := exec.Command("sleep", "3600")
	if err := idle.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = idle.Process.Kill(); _ = idle.Wait() }()

	type mode struct {
		name string
		run  func() (float64, Stats, error)
		us   []float64
	}
	withProfiler := func(target bool, opts Options) func() (float64, Stats, error) {
		return func() (float64, Stats, error) {
			// Loaded before the run, as for a task whose process runs: the
			// load time is not part of the steady-state overhead.
			p, err := Open(opts)
			if err != nil {
				return 0, Stats{}, err
			}
			defer p.Close()
			if !target {
				sub, err := p.Add(idle.Process.Pid)
				if err != nil {
					return 0, Stats{}, err
				}
				defer sub.Close()
				return schedPipe(perf, loops, nil, sym)
			}
			return schedPipe(perf, loops, p, sym)
		}
	}
	modes := []*mode{
		{name: "none", run: func() (float64, Stats, error) { return schedPipe(perf, loops, nil, sym) }},
		{name: "loaded", run: withProfiler(false, Options{})},
		{name: "profiled", run: withProfiler(true, Options{MaxStacksPerSecond: budget})},
		// As before unwinding: the kernel's frame-pointer walk, no copies.
		{name: "profiled-fp", run: withProfiler(true, Options{MaxStacksPerSecond: budget, UnwindOptions: stackprof.UnwindOptions{FramePointersOnly: true}})},
		{name: "every", run: withProfiler(true, Options{MaxStacksPerSecond: 1 << 20})},
	}
	last := map[string]Stats{}
	for b.Loop() {
		for _, md := range modes {
			md.us = nil
		}
		for r := 0; r < rounds; r++ {
			for i := range modes {
				md := modes[(i+r)%len(modes)]
				us, st, err := md.run()
				if err != nil {
					b.Fatalf("%s: %v", md.name, err)
				}
				last[md.name] = st
				md.us = append(md.us, us)
			}
		}
	}
	med := map[string]float64{}
	for _, md := range modes {
		med[md.name] = benchenv.Median(md.us)
		b.Logf("%-8s median %.3f usecs/op | %s", md.name, med[md.name], fmtAll(md.us))
	}
	for _, name := range []string{"profiled", "every"} {
		st := last[name]
		b.Logf("%s (last run): %d switch-outs recorded (stacks taken), %d skipped by the stack budget", name, st.SwitchOuts, st.Unsampled)
	}
	// The machine is shared and noisy: the ratio of each round's run to
	// the unprofiled run of the same round, then the median of those.
	ratio := func(name string) float64 {
		var rs []float64
		for _, md := range modes {
			if md.name == name {
				for i, us := range md.us {
					rs = append(rs, us/modes[0].us[i])
				}
			}
		}
		return benchenv.Median(rs)
	}
	b.Logf("slowdown (median of per-round ratios): profiler loaded, another process profiled %+.2f%%; this process profiled %+.2f%% (budget of %d stacks/s/CPU), %+.2f%% (every switch-out recorded)",
		100*(ratio("loaded")-1), 100*(ratio("profiled")-1), budget, 100*(ratio("every")-1))
	b.ReportMetric(ratio("loaded"), "loaded/none")
	b.ReportMetric(ratio("profiled"), "profiled/none")
	b.ReportMetric(ratio("every"), "every/none")
	b.ReportMetric(ratio("profiled-fp"), "profiled-fp/none")
	b.Logf("slowdown with frame pointers only (before unwinding), same budget: %+.2f%%", 100*(ratio("profiled-fp")-1))
	b.ReportMetric(med["none"], "us/op-none")
	b.ReportMetric(med["profiled"], "us/op-profiled")
}

// BenchmarkProgramCost measures the in-kernel cost of the sched_switch
// program with the kernel's BPF run-time statistics, while `perf bench
// sched pipe -T` runs: first with the profiler profiling another (idle)
// process, so that every run is a non-target switch (what the machine pays
// while any off-CPU task runs); then with perf's process profiled at the
// default stack budget, with stack snapshots for unwinding and with frame
// pointers only. Run with:
//
//	go test -run '^$' -bench ProgramCost -benchtime 1x ./internal/profiler/offcpu/
func BenchmarkProgramCost(b *testing.B) {
	requireEBPF(b)
	perf, err := exec.LookPath("perf")
	if err != nil {
		b.Fatal("perf (linux-perf) is not installed")
	}
	stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		b.Fatalf("enable BPF run-time statistics: %v", err)
	}
	defer stats.Close()
	idle := exec.Command("sleep", "3600")
	if err := idle.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = idle.Process.Kill(); _ = idle.Wait() }()
	sym := symbolize.New(symbolize.Options{})

	measure := func(target, fpOnly bool) (perRun float64, runs uint64, st Stats) {
		p, err := Open(Options{UnwindOptions: stackprof.UnwindOptions{FramePointersOnly: fpOnly}})
		if err != nil {
			b.Fatal(err)
		}
		defer p.Close()
		sub, err := p.Add(idle.Process.Pid)
		if err != nil {
			b.Fatal(err)
		}
		defer sub.Close()
		var prof *Profiler
		if target {
			prof = p
		}
		if _, st, err = schedPipe(perf, 100000, prof, sym); err != nil {
			b.Fatal(err)
		}
		ps, err := p.k.objs.SwitchProgram().Stats()
		if err != nil || ps.RunCount == 0 {
			b.Fatalf("no run-time statistics: %v", err)
		}
		return float64(ps.Runtime.Nanoseconds()) / float64(ps.RunCount), ps.RunCount, st
	}
	var other, profiled, profiledFP float64
	var st Stats
	var runs uint64
	for b.Loop() {
		other, _, _ = measure(false, false)
		profiled, runs, st = measure(true, false)
		profiledFP, _, _ = measure(true, true)
	}
	b.Logf("non-target switches: %.0f ns per run", other)
	b.Logf("perf profiled: %.0f ns per run over %d runs; %d target switch-outs recorded with stacks, %d skipped by the budget",
		profiled, runs, st.SwitchOuts, st.Unsampled)
	b.Logf("perf profiled with frame pointers only (the kernel's walk, as before unwinding): %.0f ns per run", profiledFP)
	b.ReportMetric(profiledFP, "ns/run-profiled-fp")
	b.ReportMetric(other, "ns/run-other")
	b.ReportMetric(profiled, "ns/run-profiled")
}

func fmtAll(v []float64) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = strconv.FormatFloat(x, 'f', 2, 64)
	}
	return strings.Join(parts, " ")
}
