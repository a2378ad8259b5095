package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/pprof/profile"
	"go.opentelemetry.io/collector/pdata/pprofile"

	"github.com/contprof/contprof/internal/testhelper/proftest"
	"github.com/contprof/contprof/internal/testhelper/workload"
)

// requireRoot skips (or, in CI, fails) tests that need eBPF: the
// project's convention, proftest.RequireEBPF.
func requireRoot(t testing.TB) {
	t.Helper()
	proftest.RequireEBPF(t, "the collector's eBPF")
}

// copyAs copies the program bin to a file called name in a temporary
// directory: policies select workloads by executable name.
func copyAs(t testing.TB, bin, name string) string {
	t.Helper()
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// startBusy runs bin as name at a raised priority, so it keeps its CPU
// share on a busy machine.
func startBusy(t testing.TB, bin, name string) *workload.Process {
	t.Helper()
	w := workload.Start(t, copyAs(t, bin, name))
	_ = syscall.Setpriority(syscall.PRIO_PROCESS, w.PID(), -10)
	return w
}

// The first closed loop: a policy fires on a burning process, exactly that
// process is profiled, the profile reaches an OTLP gRPC backend with the
// trigger context and downloads as pprof from the API.
func TestOnCPUClosedLoop(t *testing.T) {
	requireRoot(t)
	sink := startOTLPSink(t)
	bin := workload.BuildC(t, "hotcpu.c")
	// Two busy processes on a 2-CPU machine read ~41-50 % each (process_cpu
	// is a share of all CPUs) with the collector and the test beside them,
	// so the policy asks for 25 %: this test is about the closed loop, not
	// about how close to a full CPU a hog gets.
	hot := startBusy(t, bin, "contprof-hot")
	other := startBusy(t, bin, "contprof-other")
	port := freePort(t)
	api := apiURL(port)

	cfg := testConfig{
		Policies: `
- name: hot-cpu
  selector: { process.executable.name: contprof-hot }
  target: on_cpu
  duration: 10s
  items:
    - { monitor: process_cpu, threshold: 25, period: 5, count: 3 }`,
		APIPort:  port,
		Receiver: "include: { executables: [contprof-hot, contprof-other] }\nprofiling: { report_interval: 3s }",
		OTLP:     sink.addr,
		Signals:  []string{"profiles"},
	}.yaml()
	c := startCollector(t, writeConfig(t, cfg))
	c.waitFor("Everything is ready", time.Minute)

	task := waitTask(t, api, 60*time.Second, func(task apiTask) bool {
		return len(task.Processes) == 1 && task.Processes[0].PID == hot.PID() && !task.Started.IsZero()
	})
	if task.Policy != "hot-cpu" || task.Target != "on_cpu" {
		t.Fatalf("task %+v: want policy hot-cpu, target on_cpu", task)
	}
	if len(task.Causes) == 0 || len(task.Causes[0].Values) < 3 {
		t.Fatalf("task causes %+v: want the crossing values of process_cpu", task.Causes)
	}
	for _, v := range task.Causes[0].Values {
		if v < 25 {
			t.Fatalf("cause value %v is below the threshold 25: %+v", v, task.Causes[0])
		}
	}
	t.Logf("trigger latency (end of the count-th crossing second -> task started): %v",
		task.Started.Sub(task.Causes[0].At))

	// Profiles of the hot process reach the backend, stamped with why.
	sink.waitProfiles(t, 30*time.Second, func(all []pprofile.Profiles) bool {
		return countProfilesFor(all, int64(hot.PID()), task.ID) > 0
	})

	// Wait for the task's end, then the merged profile downloads as pprof
	// and attributes the CPU to hot_a/hot_b.
	waitTask(t, api, 40*time.Second, func(x apiTask) bool { return x.ID == task.ID && x.State == "finished" })
	raw := downloadProfile(t, api, task.ID)
	prof, err := profile.Parse(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("downloaded profile does not parse: %v", err)
	}
	if !strings.Contains(pprofTop(t, raw), "hot_a") {
		t.Fatalf("go tool pprof -top does not show hot_a")
	}
	if len(prof.Sample) == 0 {
		t.Fatal("downloaded profile has no samples")
	}

	// Nothing for the process the selector does not match.
	for _, x := range getTasks(t, api) {
		for _, p := range x.Processes {
			if p.PID == other.PID() {
				t.Fatalf("task %s profiles the unselected process %d", x.ID, other.PID())
			}
		}
	}
	sink.mu.Lock()
	n := countProfilesFor(sink.profiles, int64(other.PID()), "")
	sink.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d profiles of the unselected process reached the backend", n)
	}
}

// countProfilesFor counts profiles whose resource is pid and, when taskID is
// set, whose attributes carry that task's trigger context.
func countProfilesFor(all []pprofile.Profiles, pid int64, taskID string) int {
	n := 0
	for _, pd := range all {
		dict := pd.Dictionary()
		for i := 0; i < pd.ResourceProfiles().Len(); i++ {
			rp := pd.ResourceProfiles().At(i)
			v, ok := rp.Resource().Attributes().Get("process.pid")
			if !ok || v.Int() != pid {
				continue
			}
			for j := 0; j < rp.ScopeProfiles().Len(); j++ {
				ps := rp.ScopeProfiles().At(j).Profiles()
				for k := 0; k < ps.Len(); k++ {
					if taskID == "" {
						n++
						continue
					}
					attrs, err := pprofile.FromAttributeIndices(dict.AttributeTable(), ps.At(k), dict)
					if err != nil {
						continue
					}
					id, _ := attrs.Get("contprof.task.id")
					pol, _ := attrs.Get("contprof.policy.name")
					mon, _ := attrs.Get("contprof.trigger.monitor")
					if id.Str() == taskID && pol.Str() == "hot-cpu" && mon.Str() == "process_cpu" {
						n++
					}
				}
			}
		}
	}
	return n
}

// pprofTop runs `go tool pprof -top` on a downloaded profile.
func pprofTop(t *testing.T, raw []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "task.pb.gz")
	if err := os.WriteFile(p, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("go", "tool", "pprof", "-top", p).CombinedOutput()
	if err != nil {
		t.Fatalf("go tool pprof -top: %v\n%s", err, out)
	}
	t.Logf("go tool pprof -top:\n%s", out)
	return string(out)
}
