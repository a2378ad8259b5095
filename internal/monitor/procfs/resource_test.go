package procfs

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestLookupAndResource(t *testing.T) {
	c := startChild(t, sleepCmd("OTEL_SERVICE_NAME=lookup-svc", "OTEL_RESOURCE_ATTRIBUTES=service.instance.id=i-7"), false)
	in, err := Lookup(Config{}, int(c.pid))
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	if in.PID != c.pid || in.PPID != int32(os.Getpid()) || in.ExeName != "sleep" || in.HostName != host {
		t.Fatalf("info %+v", in)
	}
	if d := time.Since(in.StartTime); d < 0 || d > time.Minute {
		t.Fatalf("start time %v", in.StartTime)
	}
	r := in.Resource()
	want := map[string]any{
		"host.name": host, "process.pid": int64(c.pid), "process.parent_pid": int64(os.Getpid()),
		"process.executable.name": "sleep", "process.command_line": "sleep 1000",
		"process.creation.time": in.StartTime.UTC().Format(time.RFC3339Nano),
		"service.name":          "lookup-svc", "service.instance.id": "i-7",
	}
	for k, v := range want {
		if r[k] != v {
			t.Errorf("%s = %#v, want %#v", k, r[k], v)
		}
	}
	if p, _ := r["process.executable.path"].(string); !strings.HasSuffix(p, "/sleep") {
		t.Errorf("process.executable.path = %#v", r["process.executable.path"])
	}
	if _, ok := r["container.id"]; ok && in.ContainerID == "" {
		t.Error("empty container.id reported")
	}
	// Every attribute is one a selector can match through Attr.
	for k, v := range r {
		got, ok := in.Attr(k)
		if !ok || (got != v && k != "process.pid" && k != "process.parent_pid") {
			t.Errorf("Attr(%q) = %q, %v; Resource has %#v", k, got, ok, v)
		}
	}

	c.stop()
	if _, err := Lookup(Config{}, int(c.pid)); err == nil || !strings.Contains(err.Error(), "no process with pid") {
		t.Fatalf("gone process: %v", err)
	}
	if _, err := Lookup(Config{}, -3); err == nil || !strings.Contains(err.Error(), "pid: -3") {
		t.Fatalf("bad pid: %v", err)
	}
}
