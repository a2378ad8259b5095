package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/contprof/contprof/internal/testhelper/workload"
)

// taskEvent is one task lifecycle log record as the sink received it.
type taskEvent struct {
	name, host string
	attrs      map[string]any
	body       string
}

func (s *otlpSink) taskEvents() []taskEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []taskEvent
	for _, ld := range s.logs {
		for i := 0; i < ld.ResourceLogs().Len(); i++ {
			rl := ld.ResourceLogs().At(i)
			host, _ := rl.Resource().Attributes().Get("host.name")
			for j := 0; j < rl.ScopeLogs().Len(); j++ {
				recs := rl.ScopeLogs().At(j).LogRecords()
				for k := 0; k < recs.Len(); k++ {
					r := recs.At(k)
					if !strings.HasPrefix(r.EventName(), "contprof.task.") {
						continue
					}
					out = append(out, taskEvent{name: r.EventName(), host: host.Str(), attrs: r.Attributes().AsRaw(), body: r.Body().Str()})
				}
			}
		}
	}
	return out
}

func (s *otlpSink) waitTaskEvent(t *testing.T, timeout time.Duration, pred func(taskEvent) bool) taskEvent {
	t.Helper()
	var found taskEvent
	waitUntil(t, timeout, "task event", func() bool {
		for _, ev := range s.taskEvents() {
			if pred(ev) {
				found = ev
				return true
			}
		}
		return false
	})
	return found
}

// readableConfig moves the configuration file at path where nobody (uid
// 65534) can read it, for collectors started through setpriv.
func readableConfig(t *testing.T, path string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "contprof-config")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	cfgPath := filepath.Join(dir, "config.yaml")
	if err := os.Rename(path, cfgPath); err != nil {
		t.Fatal(err)
	}
	os.Chmod(cfgPath, 0o644)
	return cfgPath
}

// postTaskStatus posts a task request and returns the status code (a
// refusal is 409).
func postTaskStatus(t *testing.T, api, body string) int {
	t.Helper()
	resp, err := http.Post(api+"/api/v1/tasks", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestTaskEventsAsLogs: the receiver's logs signal carries each task's
// lifecycle — started and finished for a task that ran, with task id,
// target and process; refused (with the reason) for one a collector
// without CAP_BPF cannot run — through OTLP to the sink, with
// event.name in the record and as an attribute.
func TestTaskEventsAsLogs(t *testing.T) {
	requireRoot(t)
	sink := startOTLPSink(t)
	bin := workload.BuildC(t, "hotcpu.c")
	hot := startBusy(t, bin, "contprof-events")
	port := freePort(t)
	api := apiURL(port)
	cfg := testConfig{
		APIPort:  port,
		Receiver: "include: { executables: [contprof-events] }\nprofiling: { report_interval: 1s }",
		OTLP:     sink.addr,
		Signals:  []string{"profiles", "logs"},
	}
	c := startCollector(t, writeConfig(t, cfg.yaml()))
	c.waitFor("Everything is ready", time.Minute)
	postTask(t, api, fmt.Sprintf(`{"target":"on_cpu","pid":%d,"duration":"2s"}`, hot.PID()))
	pid := int64(hot.PID())
	hasPID := func(ev taskEvent) bool {
		pids, _ := ev.attrs["contprof.task.processes"].([]any)
		return len(pids) == 1 && pids[0] == pid && ev.attrs["process.pid"] == pid
	}
	started := sink.waitTaskEvent(t, 30*time.Second, func(ev taskEvent) bool {
		return ev.name == "contprof.task.started" && hasPID(ev)
	})
	id, _ := started.attrs["contprof.task.id"].(string)
	if id == "" || started.attrs["contprof.target"] != "on_cpu" || started.attrs["event.name"] != "contprof.task.started" || started.host == "" {
		t.Fatalf("started event %+v: want task id, target on_cpu, event.name and host.name", started)
	}
	finished := sink.waitTaskEvent(t, 30*time.Second, func(ev taskEvent) bool {
		return ev.name == "contprof.task.finished" && ev.attrs["contprof.task.id"] == id
	})
	if !hasPID(finished) || !strings.Contains(finished.body, id+" (on_cpu) finished for pid") {
		t.Fatalf("finished event %+v", finished)
	}
	t.Logf("events: %q; %q", started.body, finished.body)

	// Refused at admission: the same distribution as nobody without
	// capabilities.
	port2 := freePort(t)
	cfg.APIPort = port2
	c2 := startCollectorVia(t, []string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"}, readableConfig(t, writeConfig(t, cfg.yaml())))
	c2.waitFor("Everything is ready", time.Minute)
	postTaskStatus(t, apiURL(port2), fmt.Sprintf(`{"target":"on_cpu","pid":%d,"duration":"2s"}`, hot.PID()))
	refused := sink.waitTaskEvent(t, 30*time.Second, func(ev taskEvent) bool {
		return ev.name == "contprof.task.refused" && hasPID(ev)
	})
	if reason, _ := refused.attrs["contprof.task.reason"].(string); !strings.Contains(reason, "CAP_BPF") || refused.attrs["contprof.target"] != "on_cpu" {
		t.Fatalf("refused event %+v: want target on_cpu and a reason naming CAP_BPF", refused)
	}
	t.Logf("refused: %q", refused.body)
}
