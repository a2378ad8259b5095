//go:build linux

package httpmon

import (
	"testing"
	"unsafe"
)

// The decoder's offsets must follow the C layout that bpf2go mirrors.
func TestEventLayout(t *testing.T) {
	var e Event
	if got := unsafe.Sizeof(e); got != EventSize {
		t.Fatalf("sizeof(http_event) = %d, want %d", got, EventSize)
	}
	offs := map[string]uintptr{
		"DurationNs": unsafe.Offsetof(e.DurationNs), "Pid": unsafe.Offsetof(e.Pid),
		"Fd": unsafe.Offsetof(e.Fd), "Status": unsafe.Offsetof(e.Status), "Role": unsafe.Offsetof(e.Role),
		"Method": unsafe.Offsetof(e.Method), "PathLen": unsafe.Offsetof(e.PathLen), "Path": unsafe.Offsetof(e.Path),
	}
	want := map[string]uintptr{"DurationNs": 8, "Pid": 16, "Fd": 20, "Status": 24, "Role": 26, "Method": 27, "PathLen": 28, "Path": 32}
	for k, w := range want {
		if offs[k] != w {
			t.Errorf("offset of %s = %d, want %d", k, offs[k], w)
		}
	}
	if unsafe.Offsetof(e.Path) != EventHeadSize {
		t.Errorf("path at %d, EventHeadSize is %d", unsafe.Offsetof(e.Path), EventHeadSize)
	}
	if len(e.Path) != PathLen {
		t.Errorf("path is %d bytes, want %d", len(e.Path), PathLen)
	}
}
