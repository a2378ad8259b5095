// Package proftest holds the test helpers the kernel profilers share: the
// eBPF privilege convention (CONTPROF_REQUIRE_EBPF), leak checks, and the
// life-cycle checks of a stackprof event source (its Manager and tasks).
package proftest

import (
	"os"
	"testing"
)

// RequireEBPF skips the test unless it runs as root; with
// CONTPROF_REQUIRE_EBPF=1 (CI) it fails instead. what names what needs
// the privileges ("the off-CPU profiler").
func RequireEBPF(t testing.TB, what string) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CONTPROF_REQUIRE_EBPF") == "1" {
		t.Fatalf("CONTPROF_REQUIRE_EBPF=1 but not running as root: %s needs root (or CAP_BPF+CAP_PERFMON)", what)
	}
	t.Skipf("not root: %s needs root (or CAP_BPF+CAP_PERFMON); set CONTPROF_REQUIRE_EBPF=1 to make this fatal", what)
}

// OpenFDs counts the file descriptors this process has open.
func OpenFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}
