//go:build linux

package oncpu

import (
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/contprof/contprof/internal/profiler/symbolize"
	"github.com/contprof/contprof/internal/testhelper/workload"
)

// BenchmarkPythonOverhead runs a fixed amount of Python work under
// Debian's python3.11 without profiling and with the on-CPU sampler at
// 99 Hz walking its Python stacks (drained and symbolized every second),
// alternately, and reports the Python process's CPU time with profiling
// over without (the target is ≤ 1.01), and the sampler's own CPU per
// second of profiled CPU.
func BenchmarkPythonOverhead(b *testing.B) {
	requireEBPF(b)
	if _, err := exec.LookPath(debianPython); err != nil {
		b.Fatalf("%s is needed", debianPython)
	}
	rounds := envInt(b, "CONTPROF_OVERHEAD_ROUNDS", 7)
	work := strconv.Itoa(envInt(b, "CONTPROF_PY_WORK", 6000))
	script := filepath.Join(workload.Dir(b), "python", "fixed_work.py")
	sym := symbolize.New(symbolize.Options{})
	run := func(profile bool) (time.Duration, time.Duration, error) {
		var s *Sampler
		if profile {
			var err error
			if s, err = Open(Options{Frequency: 99}); err != nil {
				return 0, 0, err
			}
			defer s.Close()
		}
		cmd := exec.Command(debianPython, script, work)
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
	var plain, profiled, own []time.Duration
	for b.Loop() {
		for r := 0; r < rounds; r++ {
			for _, profile := range []bool{r%2 == 0, r%2 != 0} {
				cpu, self, err := run(profile)
				if err != nil {
					b.Fatal(err)
				}
				if profile {
					profiled, own = append(profiled, cpu), append(own, self)
				} else {
					plain = append(plain, cpu)
				}
			}
		}
	}
	p, q := median(plain), median(profiled)
	b.Logf("python3.11 CPU: none %v | 99 Hz with Python stacks %v (%+.2f%%); collector's own CPU %v per run",
		p.Round(time.Millisecond), q.Round(time.Millisecond), 100*(float64(q)/float64(p)-1), median(own).Round(time.Millisecond))
	b.Logf("none %v | profiled %v", roundAll(plain), roundAll(profiled))
	b.ReportMetric(float64(q)/float64(p), "python-profiled/none-cpu")
	b.ReportMetric(float64(median(own))/float64(q), "collector/python-cpu")
}
