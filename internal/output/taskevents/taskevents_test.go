package taskevents

import (
	"errors"
	"testing"
	"time"

	"github.com/contprof/contprof/internal/control"
	"github.com/contprof/contprof/internal/control/policy"
)

func TestLogs(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	task := control.Task{
		ID: "t-7", Policy: "hot", Target: policy.TargetOnCPU, Duration: 10 * time.Second,
		Process: []control.Process{{Host: "node-a", PID: 42, Attributes: map[string]any{"service.name": "checkout", "process.executable.name": "app"}}},
		Causes:  []control.Cause{{Monitor: policy.MonitorProcessCPU, Threshold: 80, Period: 10, Count: 3, Values: []float64{81.5, 90, 99}}},
	}
	refused := control.Task{Target: policy.TargetOffCPU, Process: []control.Process{{Host: "node-b", PID: 9}, {Host: "node-b", PID: 10}}}
	ld := Logs("scope", "collector-host", Event{Name: Started, At: at, Task: task},
		Event{Name: Failed, At: at, Task: task, Err: errors.New("boom")},
		Event{Name: Refused, At: at, Task: refused, Err: errors.New("CAP_BPF is missing")},
		Event{Name: Refused, At: at, Task: control.Task{Target: policy.TargetOnCPU}, Err: errors.New("no process")})
	if n := ld.ResourceLogs().Len(); n != 3 {
		t.Fatalf("%d resources, want one per host", n)
	}
	a := ld.ResourceLogs().At(0)
	if h, _ := a.Resource().Attributes().Get("host.name"); h.Str() != "node-a" {
		t.Errorf("host.name %q", h.Str())
	}
	recs := a.ScopeLogs().At(0).LogRecords()
	if recs.Len() != 2 || a.ScopeLogs().At(0).Scope().Name() != "scope" {
		t.Fatalf("%d records", recs.Len())
	}
	st := recs.At(0)
	attrs := st.Attributes().AsRaw()
	want := map[string]any{
		"event.name": Started, "contprof.task.id": "t-7", "contprof.policy.name": "hot", "contprof.target": "on_cpu",
		"process.pid": int64(42), "service.name": "checkout", "contprof.task.duration": "10s",
		"contprof.trigger.monitor": "process_cpu",
	}
	for k, v := range want {
		if attrs[k] != v {
			t.Errorf("%s = %v (%T), want %v", k, attrs[k], attrs[k], v)
		}
	}
	if causes, _ := attrs["contprof.task.causes"].([]any); len(causes) != 1 || causes[0] != "process_cpu > 80 in 3 of 10 s (values 81.5, 90, 99)" {
		t.Errorf("causes %v", attrs["contprof.task.causes"])
	}
	if st.EventName() != Started || st.Timestamp().AsTime() != at || st.SeverityText() != "Info" {
		t.Errorf("record: event %q at %v severity %q", st.EventName(), st.Timestamp().AsTime(), st.SeverityText())
	}
	if got := st.Body().Str(); got != "profiling task t-7 (on_cpu, policy hot) started for pid 42" {
		t.Errorf("body %q", got)
	}
	if f := recs.At(1).Attributes().AsRaw(); f["error.message"] != "boom" || recs.At(1).SeverityText() != "Warn" {
		t.Errorf("failed: %v %s", f, recs.At(1).SeverityText())
	}
	// An event without a process carries the collector's host name.
	if h, _ := ld.ResourceLogs().At(2).Resource().Attributes().Get("host.name"); h.Str() != "collector-host" {
		t.Errorf("host.name of an event without processes %q, want the collector's", h.Str())
	}
	r := ld.ResourceLogs().At(1).ScopeLogs().At(0).LogRecords().At(0)
	ra := r.Attributes().AsRaw()
	if _, ok := ra["contprof.task.id"]; ok {
		t.Errorf("refused event has a task id: %v", ra)
	}
	if ra["contprof.task.reason"] != "CAP_BPF is missing" || ra["contprof.target"] != "off_cpu" {
		t.Errorf("refused attributes %v", ra)
	}
	if pids, _ := ra["contprof.task.processes"].([]any); len(pids) != 2 || pids[0] != int64(9) {
		t.Errorf("processes %v", ra["contprof.task.processes"])
	}
	if got := r.Body().Str(); got != "profiling task (off_cpu) refused for pid 9, 10: CAP_BPF is missing" {
		t.Errorf("body %q", got)
	}
}
