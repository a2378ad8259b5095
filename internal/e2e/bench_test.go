package e2e

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/contprof/contprof/internal/testhelper/benchenv"
	"github.com/contprof/contprof/internal/testhelper/workload"
)

// Whole-collector benchmarks: the real distribution, measured from outside
// as a user would. On a shared machine one figure means little, so each
// benchmark runs CONTPROF_BENCH_ROUNDS rounds (default 3) and, when
// CONTPROF_BENCH_BASELINE names other otelcol-contprof binaries, alternates
// them with this build round by round: all see the same load.

func benchRounds(b *testing.B) int { return benchenv.Int(b, "CONTPROF_BENCH_ROUNDS", 3) }

// benchSeconds is CONTPROF_BENCH_SECONDS (default 30), how long a figure
// is measured.
func benchSeconds(b *testing.B) int { return benchenv.Int(b, "CONTPROF_BENCH_SECONDS", 30) }

// benchBinaries lists the builds to compare: this one ("new") and the
// baselines of CONTPROF_BENCH_BASELINE, a comma-separated list of paths,
// each optionally named (name=path; an unnamed one is "base"). A baseline
// may be a script that execs a binary with other settings (e.g. GOGC),
// since the figures are taken from the process it starts as.
func benchBinaries(b *testing.B) []struct{ name, path string } {
	bins := []struct{ name, path string }{{"new", collectorBinary(b)}}
	list := os.Getenv("CONTPROF_BENCH_BASELINE")
	if list == "" {
		return bins
	}
	for _, entry := range strings.Split(list, ",") {
		name, path, named := strings.Cut(entry, "=")
		if !named {
			name, path = "base", entry
		}
		if _, err := os.Stat(path); err != nil {
			b.Fatalf("CONTPROF_BENCH_BASELINE %q: %v", entry, err)
		}
		if slices.ContainsFunc(bins, func(x struct{ name, path string }) bool { return x.name == name }) {
			b.Fatalf("CONTPROF_BENCH_BASELINE %q: name %q used twice", entry, name)
		}
		bins = append(bins, struct{ name, path string }{name, path})
	}
	return bins
}

// rounds lists every round's figure, sorted: the spread to report.
func rounds(xs []float64) string {
	s := slices.Clone(xs)
	slices.Sort(s)
	parts := make([]string, len(s))
	for i, x := range s {
		parts[i] = strconv.FormatFloat(x, 'f', 2, 64)
	}
	return strings.Join(parts, " ")
}

// eachRound calls run for each of n builds (or arms) once per round, for
// CONTPROF_BENCH_ROUNDS rounds b.N times, alternating which goes first.
func eachRound(b *testing.B, n int, run func(i int)) {
	for range b.N {
		for r := range benchRounds(b) {
			for i := range n {
				if r%2 == 1 {
					i = n - 1 - i
				}
				run(i)
			}
		}
	}
}

// benchSuffix is the metric suffix of a build or arm: none for "new",
// "-base" for the baseline, "-bpf" for "new-bpf".
func benchSuffix(name string) string {
	if name == "new" {
		return ""
	}
	suffix := strings.TrimPrefix(name, "new")
	if !strings.HasPrefix(suffix, "-") {
		suffix = "-" + suffix
	}
	return suffix
}

// benchFigures holds every round's figures: figures[build][name].
type benchFigures map[string]map[string][]float64

func (f benchFigures) add(build, name string, v float64) {
	if f[build] == nil {
		f[build] = map[string][]float64{}
	}
	f[build][name] = append(f[build][name], v)
}

// report gives each build's median of each figure as a metric (name, unit
// and the build's suffix) and logs every round, one line per build (a
// benchmark's log is cut after ten lines).
func (f benchFigures) report(b *testing.B, bins []struct{ name, path string }, names []string, unit string) {
	for _, bin := range bins {
		var all []string
		for _, name := range names {
			b.ReportMetric(benchenv.Median(f[bin.name][name]), name+"-"+unit+benchSuffix(bin.name))
			all = append(all, name+" "+rounds(f[bin.name][name]))
		}
		b.Logf("%s (%s, every round): %s", bin.name, unit, strings.Join(all, "; "))
	}
}

// neverPolicy selects no process: the collector scrapes and judges, and
// no task starts.
const neverPolicy = `
- name: never
  selector: { process.executable.name: contprof-none }
  target: on_cpu
  items:
    - { monitor: process_cpu, threshold: 100, period: 10, count: 10 }`

// procCPU is the user+system CPU time of a process.
func procCPU(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond, nil // USER_HZ 100
}

// procRSS is VmRSS of a process in bytes.
func procRSS(pid int) int64 { return readProcMem(pid).rss }

// countProcs is how many processes the host has (what the receiver scrapes).
func countProcs() int {
	ents, _ := os.ReadDir("/proc")
	n := 0
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err == nil {
			n++
		}
	}
	return n
}

// BenchmarkProcMetrics is the /proc metrics cost of the whole collector:
// 500 idle processes besides the host's own, ebpfprocess every second into
// continuousprofiling and the debug exporter (verbosity basic), no policy
// firing. cpu-us/proc/scrape is the collector process's CPU time (utime +
// stime from /proc) per process per scrape over CONTPROF_BENCH_SECONDS
// (default 30) after a warm-up; rss-MB its resident memory at the end.
// CONTPROF_BENCH_PROCESS_SOURCES (e.g. "bpf,proc") runs every build with
// each receiver process_source in turn (default: auto only).
func BenchmarkProcMetrics(b *testing.B) {
	requireRoot(b)
	secs := benchSeconds(b)
	startIdleProcesses(b, 500)
	sources := []string{"auto"}
	if v := os.Getenv("CONTPROF_BENCH_PROCESS_SOURCES"); v != "" {
		sources = strings.Split(v, ",")
	}
	type arm struct{ name, path, cfg string }
	var arms []arm
	for _, bin := range benchBinaries(b) {
		for _, src := range sources {
			a := arm{name: bin.name, path: bin.path}
			if len(sources) > 1 {
				a.name += "-" + src
			}
			receiver := "process_source: " + src
			if src == "auto" {
				receiver = "" // the default, also for a baseline build that predates the setting
			}
			a.cfg = writeConfig(b, testConfig{
				Policies: neverPolicy,
				Receiver: receiver,
				APIPort:  freePort(b),
			}.yaml())
			arms = append(arms, a)
		}
	}
	cpu := map[string][]float64{}
	rss := map[string][]float64{}
	eachRound(b, len(arms), func(i int) {
		bin := arms[i]
		c := startCollectorBinary(b, bin.path, nil, bin.cfg)
		c.waitFor("Everything is ready", time.Minute)
		time.Sleep(5 * time.Second) // identities known, heap settled
		pid := c.cmd.Process.Pid
		c0, _ := procCPU(pid)
		t0 := time.Now()
		procs := 0
		for range secs {
			time.Sleep(time.Second)
			procs += countProcs()
		}
		c1, err := procCPU(pid)
		if err != nil {
			b.Fatalf("%s collector: %v", bin.name, err)
		}
		elapsed := time.Since(t0)
		perScrape := float64(procs) / float64(secs) * elapsed.Seconds() // process-scrapes
		cpu[bin.name] = append(cpu[bin.name], float64((c1-c0).Microseconds())/perScrape)
		rss[bin.name] = append(rss[bin.name], float64(procRSS(pid))/(1<<20))
		c.stop(10 * time.Second)
	})
	for _, bin := range arms {
		suffix := benchSuffix(bin.name)
		b.ReportMetric(benchenv.Median(cpu[bin.name]), "cpu-us/proc/scrape"+suffix)
		b.ReportMetric(benchenv.Median(rss[bin.name]), "rss-MB"+suffix)
		b.Logf("%s: cpu-us/proc/scrape %s; rss-MB %s", bin.name, rounds(cpu[bin.name]), rounds(rss[bin.name]))
	}
}

// BenchmarkTriggerLatency is how long after the metric point that
// completes the policy (the scrape carrying the count-th crossing second,
// its timestamp read from the exported metrics) the task exists (point-ms
// to created) and profiles (started); also both from the end of that
// crossing second (the reference; negative when the task comes
// before the second ends). A burning process, process_cpu over 3 % (the
// machine is loaded) for 2 of 3 seconds.
func BenchmarkTriggerLatency(b *testing.B) {
	requireRoot(b)
	bin := workload.BuildC(b, "hotcpu.c")
	bins := benchBinaries(b)
	sink := startOTLPSink(b)
	b.Cleanup(func() {
		// Runs before the sink's own check: a baseline build may predate
		// the profile conventions; only latencies are measured here.
		sink.mu.Lock()
		sink.nonconforming = nil
		sink.mu.Unlock()
	})
	figs := benchFigures{}
	add := func(bin, fig string, d time.Duration) { figs.add(bin, fig, d.Seconds()*1000) }
	eachRound(b, len(bins), func(i int) {
		cb := bins[i]
		port := freePort(b)
		cfg := writeConfig(b, testConfig{
			Policies: `
- name: lat
  selector: { process.executable.name: contprof-lat }
  target: on_cpu
  duration: 3s
  items:
    - { monitor: process_cpu, threshold: 3, period: 3, count: 2 }`,
			APIPort:  port,
			Receiver: "include: { executables: [contprof-lat] }",
			OTLP:     sink.addr,
			Signals:  []string{"profiles"},
		}.yaml())
		c := startCollectorBinary(b, cb.path, nil, cfg)
		c.waitFor("Everything is ready", time.Minute)
		w := startBusy(b, bin, "contprof-lat")
		task := waitTask(b, apiURL(port), time.Minute, func(x apiTask) bool {
			return len(x.Processes) == 1 && x.Processes[0].PID == w.PID() && !x.Started.IsZero()
		})
		at := task.Causes[0].At
		point := pointTime(b, sink, w.PID(), at)
		add(cb.name, "point-to-created", task.Created.Sub(point))
		add(cb.name, "point-to-started", task.Started.Sub(point))
		add(cb.name, "second-end-to-created", task.Created.Sub(at))
		add(cb.name, "second-end-to-started", task.Started.Sub(at))
		w.Stop()
		c.stop(10 * time.Second)
	})
	figs.report(b, bins, []string{"point-to-created", "point-to-started", "second-end-to-created", "second-end-to-started"}, "ms")
}

// pointTime is the timestamp of pid's process.cpu.utilization point in the
// second ending at secondEnd, as exported.
func pointTime(b *testing.B, sink *otlpSink, pid int, secondEnd time.Time) time.Time {
	b.Helper()
	var found time.Time
	sink.waitMetrics(b, 10*time.Second, func(all []pmetric.Metrics) bool {
		for _, ts := range pointTimes(all, pid, "process.cpu.utilization") {
			if !ts.Before(secondEnd.Add(-time.Second)) && ts.Before(secondEnd) {
				found = ts
				return true
			}
		}
		return false
	})
	return found
}
