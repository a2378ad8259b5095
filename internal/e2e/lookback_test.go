package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/pprof/profile"
	"golang.org/x/sys/unix"

	"github.com/contprof/contprof/internal/testhelper/workload"
)

// cpuLog reads a process's CPU time (user + system, /proc) every 100 ms.
type cpuLog struct {
	mu sync.Mutex
	at []time.Time
	s  []float64
}

func startCPULog(t *testing.T, pid int) *cpuLog {
	t.Helper()
	l := &cpuLog{}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			if d, err := procCPU(pid); err == nil {
				l.mu.Lock()
				l.at, l.s = append(l.at, time.Now()), append(l.s, d.Seconds())
				l.mu.Unlock()
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
	return l
}

// at is the CPU seconds of the last reading at or before when.
func (l *cpuLog) cpuAt(when time.Time) float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	v := 0.0
	for i, at := range l.at {
		if at.After(when) {
			break
		}
		v = l.s[i]
	}
	return v
}

// The scenario through the whole collector: a process idles at
// ~20 % of a CPU in idle_work, then spikes to 100 % in spike_work; the
// policy (process_cpu >= 60 in 3 of 5 s, duration 5 s, lookback 10 s) fires
// about 3 s into the spike. The task's profile (OTLP to the extension,
// downloaded as pprof) holds idle_work before the trigger, and spike_work
// for the seconds before the task as well as the 5 s it ran, in CPU time
// within 15 % of what /proc says. A process no lookback policy selects is
// not recorded (/api/v1/processes).
func TestLookbackSpike(t *testing.T) {
	requireRoot(t)
	sink := startOTLPSink(t)
	bin := copyAs(t, workload.BuildC(t, "spike.c", "-pthread"), "contprof-spike")
	cmd := exec.Command(bin)
	// Its own session (scheduler autogroup) at the highest priority, so
	// that the spike gets its CPU on a busy machine; pinned to one CPU, so
	// that one busy thread is 100 % of the CPUs it may use (process_cpu)
	// and the collector keeps the others.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	spike := workload.StartCmd(t, cmd)
	var one unix.CPUSet
	one.Set(runtime.NumCPU() - 1)
	if err := unix.SchedSetaffinity(spike.PID(), &one); err != nil {
		t.Fatal(err)
	}
	_ = syscall.Setpriority(syscall.PRIO_PROCESS, spike.PID(), -20)
	if err := os.WriteFile("/proc/"+strconv.Itoa(spike.PID())+"/autogroup", []byte("-20"), 0); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	other := startBusy(t, workload.BuildC(t, "hotcpu.c"), "contprof-other")
	cpu := startCPULog(t, spike.PID())

	port := freePort(t)
	api := apiURL(port)
	cfg := testConfig{
		Policies: `
- name: spike-cpu
  selector: { process.executable.name: contprof-spike }
  target: on_cpu
  duration: 5s
  lookback: 10s
  items:
    - { monitor: process_cpu, threshold: 60, period: 5, count: 3 }`,
		APIPort:  port,
		Receiver: "include: { executables: [contprof-spike, contprof-other] }\nprofiling: { report_interval: 30s }",
		OTLP:     sink.addr,
		Signals:  []string{"profiles"},
	}.yaml()
	c := startCollector(t, writeConfig(t, cfg))
	c.waitFor("Everything is ready", time.Minute)

	// While it idles the record fills; only the selected process has one.
	type lookbackView struct {
		Samples uint64    `json:"samples"`
		From    time.Time `json:"from"`
		To      time.Time `json:"to"`
		Bytes   int64     `json:"bytes"`
	}
	var procs struct {
		Processes []struct {
			PID      int           `json:"pid"`
			Lookback *lookbackView `json:"lookback"`
		} `json:"processes"`
	}
	var covered *lookbackView
	waitUntil(t, 60*time.Second, "10s of lookback record of the idle process", func() bool {
		getJSON(t, api+"/api/v1/processes", 200, &procs)
		for _, p := range procs.Processes {
			if p.PID == spike.PID() && p.Lookback != nil && p.Lookback.To.Sub(p.Lookback.From) >= 10*time.Second {
				covered = p.Lookback
				return true
			}
		}
		return false
	})
	for _, p := range procs.Processes {
		if p.PID == other.PID() && p.Lookback != nil {
			t.Errorf("process %d, which no lookback policy selects, has a record: %+v", p.PID, *p.Lookback)
		}
	}
	t.Logf("record of the idle process: %+v", *covered)

	if err := spike.Cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	spikeAt := time.Now()
	task := waitTask(t, api, 60*time.Second, func(x apiTask) bool { return x.Policy == "spike-cpu" })
	t.Logf("task %s %s %s", task.ID, task.State, task.Error)
	task = waitTask(t, api, 60*time.Second, func(x apiTask) bool { return x.ID == task.ID && x.State != "running" && x.State != "pending" })
	if task.State != "finished" {
		t.Fatalf("task %+v", task)
	}
	if len(task.Causes) == 0 {
		t.Fatalf("task %+v has no cause", task)
	}
	trigger := task.Causes[0].At
	prof, err := profile.Parse(bytes.NewReader(downloadProfile(t, api, task.ID)))
	if err != nil {
		t.Fatal(err)
	}
	// CPU seconds per function and phase (values are samples at 99 Hz).
	got := map[string]map[string]float64{"idle_work": {}, "spike_work": {}}
	for _, s := range prof.Sample {
		phase := ""
		if l := s.Label["contprof.phase"]; len(l) == 1 {
			phase = l[0]
		}
		for _, loc := range s.Location {
			if len(loc.Line) > 0 && got[loc.Line[0].Function.Name] != nil {
				got[loc.Line[0].Function.Name][phase] += float64(s.Value[0]) / 99
				break
			}
		}
	}
	wantIdle := cpu.cpuAt(spikeAt) - cpu.cpuAt(trigger.Add(-10*time.Second))
	wantSpike := cpu.cpuAt(task.Ended) - cpu.cpuAt(spikeAt)
	wantBefore := cpu.cpuAt(trigger) - cpu.cpuAt(spikeAt)
	gotSpike := got["spike_work"]["before_trigger"] + got["spike_work"]["during"]
	t.Logf("trigger %.1fs into the spike, task started %v after it and ran %v; idle_work %v (/proc %.2fs); spike_work %v = %.2fs (/proc %.2fs, %.2fs before the trigger)",
		trigger.Sub(spikeAt).Seconds(), task.Started.Sub(trigger), task.Ended.Sub(task.Started), got["idle_work"], wantIdle, got["spike_work"], gotSpike, wantSpike, wantBefore)

	if got["idle_work"]["before_trigger"] <= 0 || got["idle_work"][""] > 0 {
		t.Errorf("idle_work %v: want it before the trigger, every sample with a phase", got["idle_work"])
	}
	if gotSpike < 0.85*wantSpike || gotSpike > 1.15*wantSpike {
		t.Errorf("spike_work %.2fs CPU in the profile, /proc %.2fs: off by more than 15 %%", gotSpike, wantSpike)
	}
	if b := got["spike_work"]["before_trigger"]; b < 0.85*wantBefore || b > 1.15*wantBefore+0.3 {
		t.Errorf("spike_work before the trigger %.2fs, /proc %.2fs", b, wantBefore)
	}
	var triggerAttr bool
	for _, c := range prof.Comments {
		triggerAttr = triggerAttr || strings.HasPrefix(c, "contprof.trigger.time=")
	}
	if !triggerAttr {
		t.Errorf("no contprof.trigger.time on the profile: %v", prof.Comments)
	}
}
