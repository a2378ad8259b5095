package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/contprof/contprof/internal/testhelper/workload"
)

// netScenario is the Go test server, run under an executable name a
// network policy selects, and a collector with that policy.
type netScenario struct {
	sink    *otlpSink
	web     *exec.Cmd
	webPort int
	api     string
	c       *collector
}

// startNetScenario starts the server as exe and a collector whose policy
// name (target network, 6 s) fires on item.
func startNetScenario(t *testing.T, exe, name, item string) *netScenario {
	t.Helper()
	requireRoot(t)
	s := &netScenario{sink: startOTLPSink(t), webPort: freePort(t)}
	s.web = startGoServer(t, workload.BuildGo(t, "../httpservers/goserver"), exe, s.webPort)
	apiPort := freePort(t)
	s.api = apiURL(apiPort)
	cfg := testConfig{
		Policies: fmt.Sprintf(`
- name: %s
  selector: { process.executable.name: %s }
  target: network
  duration: 6s
  items:
    - %s`, name, exe, item),
		APIPort:  apiPort,
		Receiver: fmt.Sprintf("include: { executables: [%s] }\nprofiling: { report_interval: 2s }", exe),
		OTLP:     s.sink.addr,
		Signals:  []string{"logs"},
	}.yaml()
	s.c = startCollector(t, writeConfig(t, cfg))
	s.c.waitFor("Everything is ready", time.Minute)
	return s
}

// drive sends requests to the given paths of the server until the test
// ends.
func (s *netScenario) drive(t *testing.T, paths ...string) {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var urls []string
	for _, p := range paths {
		urls = append(urls, fmt.Sprintf("http://127.0.0.1:%d%s", s.webPort, p))
	}
	drive(stop, &wg, urls...)
	t.Cleanup(func() { close(stop); wg.Wait() })
}

// waitTask waits for the policy's network task on the server.
func (s *netScenario) waitTask(t *testing.T, policy string) apiTask {
	t.Helper()
	task := waitTask(t, s.api, 60*time.Second, func(x apiTask) bool {
		return x.Policy == policy && len(x.Processes) >= 1 && x.Processes[0].PID == s.web.Process.Pid
	})
	if task.Target != "network" {
		t.Fatalf("task target %q, want network", task.Target)
	}
	return task
}

// waitExchangeLogsAndEnd waits for sampled logs of the server's failed
// exchanges, stamped with the task, and for the task's clean end.
func (s *netScenario) waitExchangeLogsAndEnd(t *testing.T, task apiTask) {
	t.Helper()
	waitUntil(t, 30*time.Second, "sampled 5xx exchange logs", func() bool {
		s.sink.mu.Lock()
		defer s.sink.mu.Unlock()
		return failedExchangeLogFor(s.sink.logs, int64(s.web.Process.Pid), task.ID)
	})
	done := waitTask(t, s.api, 30*time.Second, func(x apiTask) bool { return x.ID == task.ID && x.State != "running" && x.State != "pending" })
	if done.State != "finished" {
		t.Fatalf("task ended %s: %s", done.State, done.Error)
	}
}

// A network task fired by http_error_rate: the service instance's
// connections appear as per-flow metrics with peers, and its failed HTTP
// exchanges as sampled logs, all stamped with the trigger.
func TestNetworkTaskThroughCollector(t *testing.T) {
	s := startNetScenario(t, "contprof-netweb", "web-net", "{ monitor: http_error_rate, threshold: 10, period: 5, count: 3 }")
	s.c.waitFor("HTTP monitor loaded", 30*time.Second)
	s.drive(t, "/work", "/work")

	task := s.waitTask(t, "web-net")
	pid := int64(s.web.Process.Pid)
	s.sink.waitMetrics(t, 30*time.Second, func(all []pmetric.Metrics) bool {
		return networkFlowFor(all, pid, task.ID, int64(os.Getpid()))
	})
	s.waitExchangeLogsAndEnd(t, task)
	// The extension kept the flows for the web UI's table and topology.
	if !hasFlowTo(t, s.api, task.ID, s.web.Process.Pid, os.Getpid()) {
		t.Fatalf("GET /api/v1/tasks/%s/flows lacks the server's flow with this test's client", task.ID)
	}
}

// A network task fired by process_cpu, with no HTTP policy at all: the HTTP
// monitor is loaded for the task's lifetime, so its exchange logs still
// arrive.
func TestNetworkTaskTriggeredByCPU(t *testing.T) {
	s := startNetScenario(t, "contprof-netcpu", "busy-net", "{ monitor: process_cpu, threshold: 3, period: 3, count: 2 }")
	// Fast requests for CPU, /work for the failed exchanges the logs sample.
	s.drive(t, "/", "/", "/", "/", "/work", "/work")

	task := s.waitTask(t, "busy-net")
	if len(task.Causes) == 0 || task.Causes[0].Monitor != "process_cpu" {
		t.Fatalf("task causes %+v: want process_cpu", task.Causes)
	}
	s.c.waitFor("HTTP monitor loaded", 30*time.Second)
	s.waitExchangeLogsAndEnd(t, task)
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
