package procfs

import (
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/shirou/gopsutil/v4/load"
	"github.com/shirou/gopsutil/v4/process"
	"golang.org/x/sys/unix"
)

// benchChildren is the number of idle processes the benchmarks add to the
// host's own, so per-process figures are dominated by a known population.
const benchChildren = 500

var (
	benchOnce sync.Once
	benchCmds []*exec.Cmd
	benchErr  error
)

func startBenchChildren(b *testing.B) {
	benchOnce.Do(func() {
		for range benchChildren {
			cmd := exec.Command("sleep", "1000")
			if benchErr = cmd.Start(); benchErr != nil {
				return
			}
			benchCmds = append(benchCmds, cmd)
		}
	})
	if benchErr != nil {
		b.Fatalf("starting %d sleep children: %v", benchChildren, benchErr)
	}
}

// stopBenchChildren runs from TestMain once all tests and benchmarks are done.
func stopBenchChildren() {
	for _, c := range benchCmds {
		c.Process.Kill()
	}
	for _, c := range benchCmds {
		c.Wait()
	}
	benchCmds = nil
}

// cpuTime is the CPU time (user+system) this whole process has used, so
// the figures include the garbage collector's work caused by allocations.
func cpuTime() time.Duration {
	var ru unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// report adds per-process figures: ns/proc is wall time per process per
// scrape, cpu-ns/proc the CPU time, procs the processes listed per scrape.
func report(b *testing.B, wall time.Time, cpu0 time.Duration, procs int) {
	elapsed, used := time.Since(wall), cpuTime()-cpu0
	if procs == 0 || b.N == 0 {
		return
	}
	n := float64(b.N) * float64(procs)
	b.ReportMetric(float64(elapsed.Nanoseconds())/n, "ns/proc")
	b.ReportMetric(float64(used.Nanoseconds())/n, "cpu-ns/proc")
	b.ReportMetric(float64(procs), "procs")
}

// BenchmarkScan is one steady-state scrape of every process on the host:
// identities are known, so each process costs one read of /proc/PID/stat
// (proc), or its share of one task iterator read (bpf). Per-process figures
// divide by every PID /proc lists, kernel threads included, for both.
func BenchmarkScan(b *testing.B) {
	for _, src := range []Source{SourceProc, SourceBPF} {
		b.Run(src.String(), func(b *testing.B) { benchmarkScan(b, src) })
	}
}

func benchmarkScan(b *testing.B, src Source) {
	startBenchChildren(b)
	if src == SourceBPF && os.Geteuid() != 0 {
		b.Skip("not root: the BPF task iterator needs root (or CAP_BPF+CAP_PERFMON)")
	}
	s, err := New(Config{Source: src})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Scan(time.Now()); err != nil {
		b.Fatal(err)
	}
	pids, _, err := s.dir.listPIDs(nil, nil, s.dbuf)
	if err != nil {
		b.Fatal(err)
	}
	procs := len(pids)
	b.ReportAllocs()
	b.ResetTimer()
	wall, cpu0 := time.Now(), cpuTime()
	for b.Loop() {
		snap, err := s.Scan(time.Now())
		if err != nil {
			b.Fatal(err)
		}
		if len(snap.Samples) < benchChildren {
			b.Fatalf("%d samples, want at least %d", len(snap.Samples), benchChildren)
		}
	}
	report(b, wall, cpu0, procs)
}

// gopsutilProc mirrors what the scanner keeps per identity.
type gopsutilProc struct {
	p          *process.Process
	createTime int64
	name, exe  string
	cmdline    string
	user       string
	env        []string
}

// BenchmarkGopsutil reads the same per-scrape fields with gopsutil v4,
// used as well as it allows: Process objects and per-identity attributes
// are kept across scrapes, as the scanner does, and the boot time cache is
// on (otherwise every stat read also re-reads /proc/stat). Per scrape and
// process it reads CPU times, thread count, memory, parent, status and
// start time.
func BenchmarkGopsutil(b *testing.B) {
	startBenchChildren(b)
	process.EnableBootTimeCache(true)
	defer process.EnableBootTimeCache(false)
	known := map[int32]*gopsutilProc{}
	scrape := func() int {
		pids, err := process.Pids()
		if err != nil {
			b.Fatal(err)
		}
		seen := make(map[int32]bool, len(pids))
		samples := 0
		for _, pid := range pids {
			gp := known[pid]
			if gp == nil {
				p, err := process.NewProcess(pid)
				if err != nil {
					continue
				}
				gp = &gopsutilProc{p: p}
				gp.createTime, _ = p.CreateTime()
				gp.name, _ = p.Name()
				gp.exe, _ = p.Exe()
				gp.cmdline, _ = p.Cmdline()
				gp.user, _ = p.Username()
				gp.env, _ = p.Environ()
				known[pid] = gp
			}
			seen[pid] = true
			if _, err := gp.p.Times(); err != nil {
				continue
			}
			gp.p.NumThreads()
			gp.p.MemoryInfo()
			gp.p.Ppid()
			gp.p.Status()
			gp.p.CreateTime() // identity check; gopsutil caches it
			samples++
		}
		for pid := range known {
			if !seen[pid] {
				delete(known, pid)
			}
		}
		load.Avg()
		if samples < benchChildren {
			b.Fatalf("%d samples, want at least %d", samples, benchChildren)
		}
		return len(pids)
	}
	scrape()
	b.ReportAllocs()
	procs := 0
	b.ResetTimer()
	wall, cpu0 := time.Now(), cpuTime()
	for b.Loop() {
		procs = scrape()
	}
	report(b, wall, cpu0, procs)
}

// BenchmarkGopsutilStateless is the common stateless pattern (as in the
// contrib hostmetrics process scraper): every scrape builds new Process
// objects and reads every attribute again.
func BenchmarkGopsutilStateless(b *testing.B) {
	startBenchChildren(b)
	b.ReportAllocs()
	procs := 0
	wall, cpu0 := time.Now(), cpuTime()
	for b.Loop() {
		ps, err := process.Processes()
		if err != nil {
			b.Fatal(err)
		}
		for _, p := range ps {
			p.Name()
			p.Exe()
			p.Cmdline()
			p.Username()
			p.Environ()
			p.CreateTime()
			p.Times()
			p.NumThreads()
			p.MemoryInfo()
			p.Ppid()
			p.Status()
		}
		load.Avg()
		procs = len(ps)
	}
	report(b, wall, cpu0, procs)
}
