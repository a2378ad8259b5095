package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/contprof/contprof/internal/testhelper/workload"
)

// TestUnprivilegedCollector runs the built collector as nobody without
// capabilities (setpriv). Its first lines name the missing capabilities
// and the targets they disable; /api/v1/status shows them; a busy process
// matching an on_cpu policy is refused at admission with that reason, at
// most once per refused_retry_interval, and leaves no failed tasks.
func TestUnprivilegedCollector(t *testing.T) {
	requireRoot(t)
	const retry = 5 * time.Second
	bin := workload.BuildC(t, "hotcpu.c")
	hot := startBusy(t, bin, "contprof-unpriv")
	port := freePort(t)
	api := apiURL(port)
	cfg := testConfig{
		Policies: `
- name: busy-unpriv
  selector: { process.executable.name: contprof-unpriv }
  target: on_cpu
  duration: 10s
  items:
    - { monitor: process_cpu, threshold: 2, period: 3, count: 2 }`,
		APIPort:   port,
		Receiver:  "include: { executables: [contprof-unpriv] }",
		Processor: "refused_retry_interval: " + retry.String(),
		Signals:   []string{"profiles"},
	}.yaml()
	cfgPath := readableConfig(t, writeConfig(t, cfg))

	c := startCollectorVia(t, []string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"}, cfgPath)
	c.waitFor("Everything is ready", time.Minute)
	startup := c.output.String()
	const want = "eBPF profiling is limited: missing CAP_BPF, CAP_PERFMON, CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH"
	if !strings.Contains(startup, want) || !strings.Contains(startup, "disabled task targets: on_cpu, off_cpu, network") {
		t.Fatalf("the start-up lines do not say %q and which targets that disables:\n%s", want, startup)
	}
	if n := strings.Count(startup, "eBPF profiling is limited"); n != 1 {
		t.Fatalf("%d privilege lines at start, want one", n)
	}

	resp, err := http.Get(api + "/api/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Executors []struct {
			Missing  []string          `json:"missing"`
			Disabled map[string]string `json:"disabled_targets"`
			UID      int               `json:"uid"`
		} `json:"executors"`
	}
	err = json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if err != nil || len(st.Executors) != 1 || st.Executors[0].UID != 65534 ||
		!strings.Contains(st.Executors[0].Disabled["on_cpu"], "CAP_BPF, CAP_PERFMON are missing") {
		t.Fatalf("GET /api/v1/status: %v %+v", err, st)
	}

	// The busy process keeps the policy firing; every trigger is refused
	// at admission, at most once per refused_retry_interval.
	const watch = 22 * time.Second
	time.Sleep(watch)
	var times []time.Time
	for _, l := range strings.Split(c.output.String(), "\n") {
		if !strings.Contains(l, "profiling task refused") || !strings.Contains(l, `"policy": "busy-unpriv"`) {
			continue
		}
		if !strings.Contains(l, "on_cpu profiling cannot run: CAP_BPF, CAP_PERFMON are missing") {
			t.Fatalf("refusal does not name the missing capabilities: %s", l)
		}
		ts, err := time.Parse(time.RFC3339Nano, strings.Fields(l)[0])
		if err != nil {
			t.Fatalf("log line time: %v: %s", err, l)
		}
		times = append(times, ts)
	}
	if len(times) == 0 {
		t.Fatalf("the policy never fired on pid %d:\n%s", hot.PID(), c.output.String())
	}
	for i := 1; i < len(times); i++ {
		if d := times[i].Sub(times[i-1]); d < retry-100*time.Millisecond {
			t.Fatalf("two attempts %v apart, want at most one per %v", d, retry)
		}
	}
	t.Logf("%d refused attempts in %v (refused_retry_interval %v)", len(times), watch, retry)
	for _, task := range getTasks(t, api) {
		t.Errorf("task %s (%s) was created: %s", task.ID, task.State, task.Error)
	}
	if strings.Contains(c.output.String(), "MEMLOCK") {
		t.Fatalf("a misleading MEMLOCK hint was logged:\n%s", c.output.String())
	}
}
