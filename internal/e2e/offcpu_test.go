package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/pprof/profile"
	"go.opentelemetry.io/collector/pdata/pprofile"

	"github.com/contprof/contprof/internal/testhelper/workload"
)

// An off_cpu policy in the ocb-built collector: the triggered process's
// blocked time reaches the backend as an off_cpu/nanoseconds profile and the
// download shows where it waits.
func TestOffCPUTaskThroughCollector(t *testing.T) {
	requireRoot(t)
	sink := startOTLPSink(t)
	bin := workload.BuildC(t, "offcpu.c")
	exe := copyAs(t, bin, "contprof-waiter")
	fifo := filepath.Join(t.TempDir(), "feed")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	w := workload.Start(t, exe, fifo)
	feed, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	go func() {
		defer feed.Close()
		tick := time.NewTicker(80 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if _, err := feed.Write([]byte{1}); err != nil {
					return
				}
			}
		}
	}()
	defer close(stop)

	port := freePort(t)
	api := apiURL(port)
	cfg := testConfig{
		Policies: `
- name: waiter
  selector: { process.executable.name: { regex: "^contprof-wait" } }
  target: off_cpu
  duration: 8s
  items:
    - { monitor: process_thread_count, threshold: 1, period: 3, count: 2 }`,
		APIPort:  port,
		Receiver: "include: { executables: [contprof-waiter] }\nprofiling: { report_interval: 3s }",
		OTLP:     sink.addr,
		Signals:  []string{"profiles"},
	}.yaml()
	c := startCollector(t, writeConfig(t, cfg))
	c.waitFor("Everything is ready", time.Minute)

	task := waitTask(t, api, 60*time.Second, func(x apiTask) bool {
		return x.Policy == "waiter" && len(x.Processes) == 1 && x.Processes[0].PID == w.PID()
	})
	if task.Target != "off_cpu" {
		t.Fatalf("task target %q, want off_cpu", task.Target)
	}
	sink.waitProfiles(t, 30*time.Second, func(all []pprofile.Profiles) bool {
		for _, pd := range all {
			if offCPUProfileFor(pd, int64(w.PID())) {
				return true
			}
		}
		return false
	})
	done := waitTask(t, api, 40*time.Second, func(x apiTask) bool { return x.ID == task.ID && x.State != "running" && x.State != "pending" })
	if done.State != "finished" {
		t.Fatalf("task ended %s: %s", done.State, done.Error)
	}
	raw := downloadProfile(t, api, task.ID)
	if _, err := profile.Parse(bytes.NewReader(raw)); err != nil {
		t.Fatalf("downloaded profile does not parse: %v", err)
	}
	top := pprofTop(t, raw)
	if !strings.Contains(top, "wait_long") || !strings.Contains(top, "wait_short") {
		t.Fatalf("go tool pprof -top does not show wait_long and wait_short")
	}
}

// offCPUProfileFor reports whether pd holds an off-CPU (nanoseconds of
// blocking) profile of pid with the off_cpu trigger context.
func offCPUProfileFor(pd pprofile.Profiles, pid int64) bool {
	dict := pd.Dictionary()
	strs := dict.StringTable()
	for i := 0; i < pd.ResourceProfiles().Len(); i++ {
		rp := pd.ResourceProfiles().At(i)
		v, ok := rp.Resource().Attributes().Get("process.pid")
		if !ok || v.Int() != pid {
			continue
		}
		for j := 0; j < rp.ScopeProfiles().Len(); j++ {
			ps := rp.ScopeProfiles().At(j).Profiles()
			for k := 0; k < ps.Len(); k++ {
				p := ps.At(k)
				attrs, err := pprofile.FromAttributeIndices(dict.AttributeTable(), p, dict)
				if err != nil {
					continue
				}
				target, _ := attrs.Get("contprof.target")
				typ, unit := strs.At(int(p.SampleType().TypeStrindex())), strs.At(int(p.SampleType().UnitStrindex()))
				if target.Str() == "off_cpu" && typ == "off_cpu" && unit == "nanoseconds" && p.Samples().Len() > 0 {
					return true
				}
			}
		}
	}
	return false
}
