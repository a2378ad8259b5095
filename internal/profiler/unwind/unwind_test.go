// The test reads x86-64 registers through ptrace (syscall.PtraceRegs).
//go:build linux && amd64

package unwind

import (
	"encoding/binary"
	"fmt"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/contprof/contprof/internal/profiler/symbolize"
	"github.com/contprof/contprof/internal/testhelper/workload"
)

func TestBuildLibc(t *testing.T) {
	path := libcPath(t)
	tab, err := BuildFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if tab.GoFramePointers || tab.Rows() < 1000 {
		t.Fatalf("libc table: %d rows, go=%v", tab.Rows(), tab.GoFramePointers)
	}
	t.Logf("%s: %d rows, %d bytes", path, tab.Rows(), tab.Bytes())
}

func TestBuildGo(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	tab, err := BuildFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	if !tab.GoFramePointers {
		t.Fatal("test binary not recognized as Go")
	}
}

func TestBuildErrors(t *testing.T) {
	if _, err := BuildFile("/nonexistent"); err == nil {
		t.Fatal("no error for a missing file")
	}
	f := t.TempDir() + "/garbage"
	os.WriteFile(f, []byte("not an elf"), 0o644)
	if _, err := BuildFile(f); err == nil {
		t.Fatal("no error for a non-ELF file")
	}
}

func libcPath(t *testing.T) string {
	for _, p := range []string{"/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/x86_64-linux-gnu/libc.so.6", "/lib64/libc.so.6", "/usr/lib64/libc.so.6"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Skip("no libc.so.6 found")
	return ""
}

// snapshotOf stops pid with ptrace and copies its registers and up to max
// bytes of its stack, as the BPF programs do at sample time.
func snapshotOf(t testing.TB, pid, max int) *Snapshot {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := syscall.PtraceAttach(pid); err != nil {
		if os.Getenv("CONTPROF_REQUIRE_EBPF") != "1" && (err == syscall.EPERM) {
			t.Skip("ptrace not permitted")
		}
		t.Fatal(err)
	}
	defer syscall.PtraceDetach(pid)
	var ws syscall.WaitStatus
	if _, err := syscall.Wait4(pid, &ws, syscall.WALL, nil); err != nil {
		t.Fatal(err)
	}
	var regs syscall.PtraceRegs
	if err := syscall.PtraceGetRegs(pid, &regs); err != nil {
		t.Fatal(err)
	}
	s := &Snapshot{IP: regs.Rip, SP: regs.Rsp, BP: regs.Rbp}
	mem, err := os.Open(fmt.Sprintf("/proc/%d/mem", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	buf := make([]byte, max)
	// Page by page up to the end of the stack mapping, like the BPF copy.
	n := 0
	for n < max {
		chunk := 4096 - int((s.SP+uint64(n))%4096)
		chunk = min(chunk, max-n)
		if _, err := mem.ReadAt(buf[n:n+chunk], int64(s.SP)+int64(n)); err != nil {
			break
		}
		n += chunk
	}
	s.Stack, s.StackCut = buf[:n], n == max
	return s
}

func names(t *testing.T, pid int, st Stack) []string {
	sym := symbolize.New(symbolize.Options{})
	frames := sym.Stack(pid, st.PCs, nil)
	var out []string
	for _, f := range frames {
		out = append(out, f.Function)
	}
	return out
}

func unwindWorkload(t *testing.T, opts Options, args ...string) (Stack, []string) {
	bin := workload.BuildCDefault(t, "callers.c")
	p := workload.Start(t, bin, args...)
	time.Sleep(100 * time.Millisecond)
	u := New(opts)
	defer u.Close()
	if err := u.Add(p.PID()); err != nil {
		t.Fatal(err)
	}
	if !u.Wait(p.PID(), 10*time.Second) {
		t.Fatal("tables not built within 10s")
	}
	if st := u.Stats(); st.TableErrors > 0 {
		t.Logf("table errors: %d, last: %s", st.TableErrors, st.LastBuildErr)
	}
	s := snapshotOf(t, p.PID(), 32<<10)
	st := u.Unwind(p.PID(), s)
	return st, names(t, p.PID(), st)
}

func TestUnwindWithoutFramePointers(t *testing.T) {
	for try := 0; ; try++ {
		st, fn := unwindWorkload(t, Options{}, "cpu")
		got := strings.Join(fn, " <- ")
		t.Logf("stack: %s (fp steps %d)", got, st.FramePointerSteps)
		if len(fn) < 3 || fn[0] != "leaf" {
			if try < 5 {
				continue // stopped in a caller's few own instructions
			}
			t.Fatalf("no leaf on top: %s", got)
		}
		if !strings.HasPrefix(fn[1], "caller_") || fn[2] != "main" {
			t.Fatalf("callers lost: %s", got)
		}
		if !strings.Contains(got, "__libc_start_main") || st.Truncated {
			t.Fatalf("stack does not reach libc's start: %s (truncated %v)", got, st.Truncated)
		}
		return
	}
}

func TestUnwindDeep(t *testing.T) {
	st, fn := unwindWorkload(t, Options{}, "deep", "100")
	rec := 0
	for _, f := range fn {
		if f == "recurse" {
			rec++
		}
	}
	if rec < 100 || st.Truncated || fn[len(fn)-1] == "recurse" {
		t.Fatalf("deep stack: %d recurse frames of %d, truncated %v: %v", rec, len(fn), st.Truncated, fn)
	}
	st, fn = unwindWorkload(t, Options{MaxFrames: 50}, "deep", "100")
	if !st.Truncated || len(fn) != 50 {
		t.Fatalf("limited to 50 frames: %d frames, truncated %v", len(fn), st.Truncated)
	}
}

func TestSnapshotRead(t *testing.T) {
	s := &Snapshot{SP: 0x1000, Stack: make([]byte, 24)}
	binary.LittleEndian.PutUint64(s.Stack[16:], 42)
	if v, ok := s.read(0x1010); !ok || v != 42 {
		t.Fatal(v, ok)
	}
	for _, a := range []uint64{0xfff, 0x1011, 0x1018, 0} {
		if _, ok := s.read(a); ok {
			t.Fatalf("read %#x outside the copy", a)
		}
	}
}

// BenchmarkUnwind is the user-space cost of unwinding one sample: a
// snapshot of a default-built workload (leaf <- caller <- main <- libc
// start), taken once with ptrace, unwound again and again. Run with:
//
//	go test -run '^$' -bench Unwind -benchmem ./internal/profiler/unwind/
func BenchmarkUnwind(b *testing.B) {
	bin := workload.BuildCDefault(b, "callers.c")
	p := workload.Start(b, bin, "deep", "20")
	time.Sleep(100 * time.Millisecond)
	u := New(Options{})
	defer u.Close()
	if err := u.Add(p.PID()); err != nil {
		b.Fatal(err)
	}
	u.Wait(p.PID(), 10*time.Second)
	s := snapshotOf(b, p.PID(), 32<<10)
	var st Stack
	for b.Loop() {
		st = u.Unwind(p.PID(), s)
	}
	b.ReportMetric(float64(len(st.PCs)), "frames")
}
