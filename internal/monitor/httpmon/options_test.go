//go:build linux

package httpmon

import (
	"strings"
	"testing"
	"unsafe"

	bpfhttpmon "github.com/contprof/contprof/bpf/httpmon"
)

func TestOptionsErrorsNameFieldAndValue(t *testing.T) {
	for _, c := range []struct {
		opts Options
		want string
	}{
		{Options{MaxPathsPerProcess: -2}, "max_paths_per_process: -2"},
		{Options{MaxPIDs: -1}, "max_pids: -1"},
		{Options{RingBufferBytes: 100000}, "ring_buffer_bytes: 100000"},
		{Options{PollInterval: -1}, "poll_interval: -1ns"},
		{Options{Attach: "kprobe"}, `attach: "kprobe"`},
	} {
		_, err := Open(c.opts)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Open(%+v) = %v, want an error containing %q", c.opts, err, c.want)
		}
	}
}

// aggregate.go reads records by offset; they must match the C layout.
func TestRecordOffsets(t *testing.T) {
	var e bpfhttpmon.Event
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"duration_ns", offDuration, unsafe.Offsetof(e.DurationNs)},
		{"pid", 16, unsafe.Offsetof(e.Pid)},
		{"status", offStatus, unsafe.Offsetof(e.Status)},
		{"role", offRole, unsafe.Offsetof(e.Role)},
		{"method", offMethod, unsafe.Offsetof(e.Method)},
		{"path_len", offPathLen, unsafe.Offsetof(e.PathLen)},
		{"path", offPath, unsafe.Offsetof(e.Path)},
		{"size", offPath + pathLen, unsafe.Sizeof(e)},
	} {
		if c.got != c.want {
			t.Errorf("%s: aggregate.go uses %d, the C layout has %d", c.name, c.got, c.want)
		}
	}
	if bpfhttpmon.RoleServer != roleServer || bpfhttpmon.RoleClient != roleClient {
		t.Error("role codes differ")
	}
	for i, n := range bpfhttpmon.MethodNames[1:] {
		if methodNames[i+1] != n {
			t.Errorf("method %d: %q vs %q", i+1, methodNames[i+1], n)
		}
	}
}
