package e2e

import (
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/contprof/contprof/internal/testhelper/workload"
)

// A network task fired by http_error_rate: the service instance's
// connections appear as per-flow metrics with peers, and its failed HTTP
// exchanges as sampled logs, all stamped with the trigger.
func TestNetworkTaskThroughCollector(t *testing.T) {
	requireRoot(t)
	sink := startOTLPSink(t)
	bin := workload.BuildGo(t, "../httpservers/goserver")
	webPort, apiPort := freePort(t), freePort(t)
	web := startGoServer(t, bin, "contprof-netweb", webPort)
	api := apiURL(apiPort)

	cfg := testConfig{
		Policies: `
- name: web-net
  selector: { process.executable.name: contprof-netweb }
  target: network
  duration: 6s
  items:
    - { monitor: http_error_rate, threshold: 10, period: 5, count: 3 }`,
		APIPort:  apiPort,
		Receiver: "include: { executables: [contprof-netweb] }\nprofiling: { report_interval: 2s }",
		OTLP:     sink.addr,
		Signals:  []string{"logs"},
	}.yaml()
	c := startCollector(t, writeConfig(t, cfg))
	c.waitFor("Everything is ready", time.Minute)
	c.waitFor("HTTP monitor loaded", 30*time.Second)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	drive(stop, &wg, fmt.Sprintf("http://127.0.0.1:%d/work", webPort), fmt.Sprintf("http://127.0.0.1:%d/work", webPort))
	defer func() { close(stop); wg.Wait() }()

	task := waitTask(t, api, 60*time.Second, func(x apiTask) bool {
		return x.Policy == "web-net" && len(x.Processes) >= 1 && x.Processes[0].PID == web.Process.Pid
	})
	if task.Target != "network" {
		t.Fatalf("task target %q, want network", task.Target)
	}
	pid := int64(web.Process.Pid)
	sink.waitMetrics(t, 30*time.Second, func(all []pmetric.Metrics) bool {
		return networkFlowFor(all, pid, task.ID, int64(os.Getpid()))
	})
	waitUntil(t, 30*time.Second, "sampled 5xx exchange logs", func() bool {
		sink.mu.Lock()
		defer sink.mu.Unlock()
		return failedExchangeLogFor(sink.logs, pid, task.ID)
	})
	done := waitTask(t, api, 30*time.Second, func(x apiTask) bool { return x.ID == task.ID && x.State != "running" && x.State != "pending" })
	if done.State != "finished" {
		t.Fatalf("task ended %s: %s", done.State, done.Error)
	}
	// The extension kept the flows for the web UI's table and topology.
	if !hasFlowTo(t, api, task.ID, web.Process.Pid, os.Getpid()) {
		t.Fatalf("GET /api/v1/tasks/%s/flows lacks the server's flow with this test's client", task.ID)
	}
}

// A network task fired by process_cpu, with no HTTP policy at all: the HTTP
// monitor is loaded for the task's lifetime, so its exchange logs still
// arrive, and it is unloaded when the task ends.
func TestNetworkTaskTriggeredByCPU(t *testing.T) {
	requireRoot(t)
	sink := startOTLPSink(t)
	bin := workload.BuildGo(t, "../httpservers/goserver")
	webPort, apiPort := freePort(t), freePort(t)
	web := startGoServer(t, bin, "contprof-netcpu", webPort)
	api := apiURL(apiPort)

	cfg := testConfig{
		Policies: `
- name: busy-net
  selector: { process.executable.name: contprof-netcpu }
  target: network
  duration: 6s
  items:
    - { monitor: process_cpu, threshold: 3, period: 3, count: 2 }`,
		APIPort:  apiPort,
		Receiver: "include: { executables: [contprof-netcpu] }\nprofiling: { report_interval: 2s }",
		OTLP:     sink.addr,
		Signals:  []string{"logs"},
	}.yaml()
	c := startCollector(t, writeConfig(t, cfg))
	c.waitFor("Everything is ready", time.Minute)

	// Fast requests for CPU, /work for the failed exchanges the logs sample.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	fast, work := fmt.Sprintf("http://127.0.0.1:%d/", webPort), fmt.Sprintf("http://127.0.0.1:%d/work", webPort)
	drive(stop, &wg, fast, fast, fast, fast, work, work)
	defer func() { close(stop); wg.Wait() }()

	task := waitTask(t, api, 60*time.Second, func(x apiTask) bool {
		return x.Policy == "busy-net" && len(x.Processes) >= 1 && x.Processes[0].PID == web.Process.Pid
	})
	if task.Target != "network" || len(task.Causes) == 0 || task.Causes[0].Monitor != "process_cpu" {
		t.Fatalf("task %+v: want a network task caused by process_cpu", task)
	}
	c.waitFor("HTTP monitor loaded", 30*time.Second)
	pid := int64(web.Process.Pid)
	waitUntil(t, 30*time.Second, "sampled 5xx exchange logs of a process_cpu network task", func() bool {
		sink.mu.Lock()
		defer sink.mu.Unlock()
		return failedExchangeLogFor(sink.logs, pid, task.ID)
	})
	done := waitTask(t, api, 30*time.Second, func(x apiTask) bool { return x.ID == task.ID && x.State != "running" && x.State != "pending" })
	if done.State != "finished" {
		t.Fatalf("task ended %s: %s", done.State, done.Error)
	}
}

// networkFlowFor reports whether a flow metric of pid, with the task's
// trigger context and its peer resolved to the local process peerPID (the
// process topology), arrived.
func networkFlowFor(all []pmetric.Metrics, pid int64, taskID string, peerPID int64) bool {
	for _, md := range all {
		for i := 0; i < md.ResourceMetrics().Len(); i++ {
			rm := md.ResourceMetrics().At(i)
			if v, ok := rm.Resource().Attributes().Get("process.pid"); !ok || v.Int() != pid {
				continue
			}
			for j := 0; j < rm.ScopeMetrics().Len(); j++ {
				ms := rm.ScopeMetrics().At(j).Metrics()
				for k := 0; k < ms.Len(); k++ {
					m := ms.At(k)
					if m.Name() != "contprof.network.io" || m.Type() != pmetric.MetricTypeSum {
						continue
					}
					dps := m.Sum().DataPoints()
					for d := 0; d < dps.Len(); d++ {
						attrs := dps.At(d).Attributes()
						id, _ := attrs.Get("contprof.task.id")
						peer, _ := attrs.Get("network.peer.address")
						peerProc, _ := attrs.Get("contprof.peer.process.pid")
						values, _ := attrs.Get("contprof.trigger.values")
						if id.Str() == taskID && peer.Str() == "127.0.0.1" && peerProc.Int() == peerPID &&
							values.Type() == pcommon.ValueTypeSlice && values.Slice().Len() >= 3 {
							return true
						}
					}
				}
			}
		}
	}
	return false
}

// failedExchangeLogFor reports whether a sampled log of a 5xx exchange of
// pid, stamped with the task, arrived.
func failedExchangeLogFor(all []plog.Logs, pid int64, taskID string) bool {
	for _, ld := range all {
		for i := 0; i < ld.ResourceLogs().Len(); i++ {
			rl := ld.ResourceLogs().At(i)
			if v, ok := rl.Resource().Attributes().Get("process.pid"); !ok || v.Int() != pid {
				continue
			}
			for j := 0; j < rl.ScopeLogs().Len(); j++ {
				lrs := rl.ScopeLogs().At(j).LogRecords()
				for k := 0; k < lrs.Len(); k++ {
					attrs := lrs.At(k).Attributes()
					id, _ := attrs.Get("contprof.task.id")
					status, _ := attrs.Get("http.response.status_code")
					if id.Str() == taskID && status.Int() >= 500 {
						return true
					}
				}
			}
		}
	}
	return false
}
