package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/contprof/contprof/internal/testhelper/workload"
)

// Many processes trip one on_cpu policy in the same second. Task requests
// are admitted inside the metrics pipeline and started on the receiver's
// own goroutines, so the pipeline never waits on BPF loading,
// perf_event_open or symbol preloading: no process's per-second metrics
// miss a second while the tasks start, and every task runs within 3 s of
// its request.
func TestTaskBurstKeepsMetricsFlowing(t *testing.T) {
	requireRoot(t)
	bin := workload.BuildC(t, "idlethreads.c", "-pthread")
	burst := copyAs(t, bin, "contprof-burst")
	var pids []int
	for range 24 {
		pids = append(pids, workload.Start(t, burst).PID())
	}
	calm := workload.Start(t, copyAs(t, bin, "contprof-calm"))
	runBurst(t, burstScenario{
		selector: "{ process.executable.name: contprof-burst }",
		include:  "include: { executables: [contprof-burst, contprof-calm] }",
		// idlethreads has 4 threads.
		threshold: 4,
		targets:   pids,
		others:    []int{calm.PID()},
	})
}

// The same with 4 JVMs: a task on a JVM also attaches to HotSpot for its
// perf map, the slowest start there is.
func TestTaskBurstOfJVMsKeepsMetricsFlowing(t *testing.T) {
	requireRoot(t)
	for _, tool := range []string{"java", "javac"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (make test installs it as root)", tool)
		}
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "Idle.java")
	// A JVM doing a little work every 100 ms: its ~20 threads trip the
	// thread-count item; its CPU use is negligible.
	if err := os.WriteFile(src, []byte(`public class Idle {
	public static void main(String[] args) throws Exception {
		System.out.println("ready=0x1");
		System.out.flush();
		long x = 0;
		for (;;) {
			for (int i = 0; i < 100000; i++) x += i;
			Thread.sleep(100);
		}
	}
}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("javac", "-d", dir, src).CombinedOutput(); err != nil {
		t.Fatalf("javac: %v\n%s", err, out)
	}
	// The marker selects these JVMs and no other on the machine.
	marker := fmt.Sprintf("contprof-burst-%d", os.Getpid())
	var pids []int
	for range 4 {
		pids = append(pids, workload.StartCmd(t, exec.Command("java", "-Xmx64m", "-D"+marker+"=1", "-cp", dir, "Idle")).PID())
	}
	calm := workload.Start(t, copyAs(t, workload.BuildC(t, "idlethreads.c", "-pthread"), "contprof-calm"))
	runBurst(t, burstScenario{
		selector:  fmt.Sprintf("{ process.command_line: { regex: %q } }", marker),
		include:   fmt.Sprintf("include: { executables: [contprof-calm], command_line_regex: %q }", marker),
		threshold: 10,
		targets:   pids,
		others:    []int{calm.PID()},
	})
}

type burstScenario struct {
	selector, include string
	threshold         int
	// targets trip the policy; others are only monitored.
	targets, others []int
}

// maxStartDelay is how long after its request a task must run.
const maxStartDelay = 3 * time.Second

func runBurst(t *testing.T, sc burstScenario) {
	sink := startOTLPSink(t)
	port := freePort(t)
	api := apiURL(port)
	cfg := testConfig{
		Policies: fmt.Sprintf(`
- name: burst
  selector: %s
  target: on_cpu
  duration: 15s
  items:
    - { monitor: process_thread_count, threshold: %d, period: 2, count: 2 }`, sc.selector, sc.threshold),
		Policy:   fmt.Sprintf("limits: { max_concurrent_tasks: %d }", len(sc.targets)+4),
		APIPort:  port,
		Receiver: sc.include + "\nprofiling: { report_interval: 5s }",
		OTLP:     sink.addr,
		Signals:  []string{"profiles"},
	}.yaml()
	// Every process exists before the collector starts: the first scrape
	// sees them all and the policy fires for all in the same second.
	c := startCollector(t, writeConfig(t, cfg))
	c.waitFor("Everything is ready", time.Minute)

	var tasks []apiTask
	waitUntil(t, 60*time.Second, "every target's task running", func() bool {
		tasks = tasks[:0]
		for _, x := range getTasks(t, api) {
			if x.Policy == "burst" && !x.Started.IsZero() {
				tasks = append(tasks, x)
			}
		}
		return len(tasks) >= len(sc.targets)
	})
	var first, last time.Time
	var worst time.Duration
	for _, x := range tasks {
		if x.State != "running" && x.State != "finished" {
			t.Errorf("task %s for pid %d: state %s (%s)", x.ID, x.Processes[0].PID, x.State, x.Error)
		}
		if !slices.Contains(sc.targets, x.Processes[0].PID) {
			t.Errorf("task %s profiles pid %d, not a target", x.ID, x.Processes[0].PID)
		}
		d := x.Started.Sub(x.Created)
		worst = max(worst, d)
		if d > maxStartDelay {
			t.Errorf("task %s for pid %d ran %v after its request, want within %v", x.ID, x.Processes[0].PID, d, maxStartDelay)
		}
		if first.IsZero() || x.Created.Before(first) {
			first = x.Created
		}
		if x.Started.After(last) {
			last = x.Started
		}
	}
	t.Logf("%d tasks requested within %v; the slowest ran %v after its request; all running %v after the first request",
		len(tasks), spread(tasks), worst, last.Sub(first))
	if s := spread(tasks); s > time.Second {
		t.Errorf("requests spread over %v: the policy did not fire for all in the same second", s)
	}

	// Per-second metrics of every process, from its first point (before
	// the first request: the trigger read them) until after the last
	// start, with no second missing.
	to := last.Add(3 * time.Second)
	all := append(slices.Clone(sc.targets), sc.others...)
	sink.waitMetrics(t, 30*time.Second, func(ms []pmetric.Metrics) bool {
		for _, pid := range all {
			ts := threadCountTimes(ms, pid)
			if len(ts) == 0 || ts[len(ts)-1].Before(to) {
				return false
			}
		}
		return true
	})
	sink.mu.Lock()
	defer sink.mu.Unlock()
	for _, pid := range all {
		ts := threadCountTimes(sink.metrics, pid)
		if ts[0].After(first) {
			t.Errorf("pid %d: first point at %v, after the first request %v", pid, ts[0], first)
		}
		for i := 1; i < len(ts) && !ts[i-1].After(to); i++ {
			if gap := ts[i].Sub(ts[i-1]); gap > 1500*time.Millisecond {
				t.Errorf("pid %d: no metrics between %v and %v (%v) while tasks started", pid,
					ts[i-1].Format("15:04:05.000"), ts[i].Format("15:04:05.000"), gap)
			}
		}
	}
}

// spread is the time between the first and the last request.
func spread(tasks []apiTask) time.Duration {
	var lo, hi time.Time
	for _, x := range tasks {
		if lo.IsZero() || x.Created.Before(lo) {
			lo = x.Created
		}
		if x.Created.After(hi) {
			hi = x.Created
		}
	}
	return hi.Sub(lo)
}

// threadCountTimes are the sorted timestamps of pid's process.thread.count
// points.
func threadCountTimes(all []pmetric.Metrics, pid int) []time.Time {
	return pointTimes(all, pid, "process.thread.count")
}

// pointTimes are the sorted timestamps of pid's points of the gauge or sum
// metric name.
func pointTimes(all []pmetric.Metrics, pid int, name string) []time.Time {
	var out []time.Time
	for _, md := range all {
		for i := 0; i < md.ResourceMetrics().Len(); i++ {
			rm := md.ResourceMetrics().At(i)
			if v, ok := rm.Resource().Attributes().Get("process.pid"); !ok || v.Int() != int64(pid) {
				continue
			}
			for j := 0; j < rm.ScopeMetrics().Len(); j++ {
				ms := rm.ScopeMetrics().At(j).Metrics()
				for k := 0; k < ms.Len(); k++ {
					m := ms.At(k)
					if m.Name() != name {
						continue
					}
					var dps pmetric.NumberDataPointSlice
					switch m.Type() {
					case pmetric.MetricTypeGauge:
						dps = m.Gauge().DataPoints()
					case pmetric.MetricTypeSum:
						dps = m.Sum().DataPoints()
					default:
						continue
					}
					for l := 0; l < dps.Len(); l++ {
						out = append(out, dps.At(l).Timestamp().AsTime())
					}
				}
			}
		}
	}
	slices.SortFunc(out, func(a, b time.Time) int { return a.Compare(b) })
	return slices.Compact(out)
}
