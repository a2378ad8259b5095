//go:build linux

package symbolize

import (
	"bufio"
	"bytes"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/contprof/contprof/internal/output/profiles"
	"github.com/contprof/contprof/internal/testhelper/workload"
)

// goinlineRun is what testdata/workloads/goinline says about its own code
// through the Go runtime (runtime.CallersFrames).
type goinlineRun struct {
	proc    *exec.Cmd
	hot     uint64
	pcs     []uint64            // every pc of main.hot
	atPC    map[uint64][]string // the runtime's frames at each pc
	stack   []uint64            // physical return addresses, capture's caller up
	callers []string            // the runtime's frames for stack
}

func startGoinline(t testing.TB, bin string) *goinlineRun {
	t.Helper()
	cmd := exec.Command(bin)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	r := &goinlineRun{proc: cmd, atPC: map[uint64][]string{}}
	hex := func(s string) uint64 {
		v, err := strconv.ParseUint(strings.TrimPrefix(s, "0x"), 16, 64)
		if err != nil {
			t.Fatalf("goinline printed %q: %v", s, err)
		}
		return v
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			kind, rest, _ := strings.Cut(sc.Text(), " ")
			switch {
			case strings.HasPrefix(kind, "hot="):
				r.hot = hex(strings.TrimPrefix(kind, "hot="))
			case kind == "pc":
				pc, frames, _ := strings.Cut(rest, " ")
				r.pcs = append(r.pcs, hex(pc))
				r.atPC[hex(pc)] = strings.Split(frames, ";")
			case kind == "stack":
				for _, a := range strings.Fields(rest) {
					r.stack = append(r.stack, hex(a))
				}
			case kind == "callers":
				r.callers = strings.Split(rest, ";")
			case kind == "end":
				return
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("goinline did not print its table within 30s")
	}
	if r.hot == 0 || len(r.pcs) == 0 || len(r.stack) < 2 || len(r.callers) < 3 {
		t.Fatalf("goinline printed an incomplete table: hot %#x, %d pcs, stack %x, callers %q", r.hot, len(r.pcs), r.stack, r.callers)
	}
	return r
}

func frameStrings(frames []profiles.Frame) []string {
	out := make([]string, len(frames))
	for i, f := range frames {
		out[i] = fmt.Sprintf("%s@%s:%d", f.Function, f.File, f.Line)
	}
	return out
}

// TestGoInline checks the inline expansion of Go frames against the Go
// runtime's own, for every pc of a function with three levels of inlining
// (one from the standard library), and for a stack whose return address is
// in inlined code; with symbols (go:func.* found by name) and without
// (-s -w: found through runtime.firstmoduledata), also as PIE.
func TestGoInline(t *testing.T) {
	for _, tc := range []struct {
		name  string
		flags []string
	}{
		{"symbols", nil},
		{"stripped", []string{"-ldflags=-s -w"}},
		{"stripped-pie", []string{"-buildmode=pie", "-ldflags=-s -w"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bin := workload.BuildGo(t, "goinline", tc.flags...)
			run := startGoinline(t, bin)
			f, err := OpenFile(bin)
			if err != nil {
				t.Fatal(err)
			}
			if f.goinl == nil {
				t.Fatal("no inline tables read from the binary")
			}
			checkInlineStack(t, run)
			if tc.name == "stripped-pie" {
				// Runtime addresses are not ELF addresses: the
				// stack above went through the load bias.
				return
			}
			checkInlineTable(t, f, run)

			ef, err := elf.Open(bin)
			if err != nil {
				t.Fatal(err)
			}
			defer ef.Close()
			if tc.flags == nil {
				// The funcdata area found without symbols is the one
				// the symbol names.
				syms, _ := ef.Symbols()
				var want uint64
				for _, s := range syms {
					if s.Name == "go:func.*" {
						want = s.Value
					}
				}
				s := ef.Section(".gopclntab")
				data, _ := s.Data()
				g, _ := newGoInline(ef, data, s.Addr, f.goinl.textStart, 0)
				if g == nil {
					t.Fatal("funcdata area not found through runtime.firstmoduledata")
				}
				// Since go1.22 the area is inside the line table.
				if got := s.Addr + uint64(len(data)-len(g.gofunc)); want == 0 || got != want {
					t.Errorf("funcdata area via runtime.firstmoduledata at %#x, go:func.* at %#x", got, want)
				}
				return
			}
			if ef.Section(".symtab") != nil {
				t.Fatal("binary is not stripped")
			}
			// Without the section name, the line table is found by its
			// magic; the inline tables with it.
			data, err := os.ReadFile(bin)
			if err != nil {
				t.Fatal(err)
			}
			hidden := filepath.Join(t.TempDir(), "hidden")
			data = bytes.Replace(data, []byte(".gopclntab\x00"), []byte(".xxxxxxxxx\x00"), 1)
			if err := os.WriteFile(hidden, data, 0o755); err != nil {
				t.Fatal(err)
			}
			hf, err := OpenFile(hidden)
			if err != nil || hf.goinl == nil {
				t.Fatalf("hidden .gopclntab: %v, inline tables %v", err, hf != nil && hf.goinl != nil)
			}
			checkInlineTable(t, hf, run)
		})
	}
}

// checkInlineTable compares the frames at every pc of main.hot with the
// runtime's.
func checkInlineTable(t *testing.T, f *File, run *goinlineRun) {
	t.Helper()
	depth := map[int]int{}
	for _, pc := range run.pcs {
		want := run.atPC[pc]
		// Padding and pcs without a line: the runtime says "?"; the
		// last pc's lookup (pc+1, backed up) names the next function.
		if strings.Contains(want[0], "@?:") || !strings.HasPrefix(want[len(want)-1], "main.hot@") {
			continue
		}
		got := frameStrings(f.AppendFrames(nil, pc))
		if strings.Join(got, ";") != strings.Join(want, ";") {
			t.Errorf("pc %#x (hot+%#x):\n got  %q\n want %q", pc, pc-run.hot, got, want)
		}
		depth[len(want)]++
	}
	// The workload must exercise what it is for: pcs in code inlined
	// three levels deep, from another file and from the standard library.
	if depth[1] == 0 || depth[2] == 0 || depth[4] == 0 {
		t.Errorf("pcs by inline depth %v: want depths 1, 2 and 4 (is the workload still inlined?)", depth)
	}
	fr, ok := f.Lookup(run.hot)
	if !ok || fr.Function != "main.hot" {
		t.Errorf("Lookup(hot) = %+v, want main.hot", fr)
	}
}

// checkInlineStack symbolizes the workload's stack through /proc: the
// return address of capture's call lies in mark, inlined into hot, so it
// must come out as mark then hot, looked up at the call (address - 1).
func checkInlineStack(t *testing.T, run *goinlineRun) {
	t.Helper()
	s := New(Options{})
	user := append([]uint64{run.hot}, run.stack...)
	frames := s.Stack(run.proc.Process.Pid, user, nil)
	if len(frames) == 0 || frames[0].Function != "main.hot" || frames[0].Address != run.hot {
		t.Fatalf("leaf frame %+v, want main.hot at %#x", frames, run.hot)
	}
	got := frameStrings(frames[1:])
	if strings.Join(got, ";") != strings.Join(run.callers, ";") {
		t.Errorf("stack %x:\n got  %q\n want %q", run.stack, got, run.callers)
	}
	// The inlined frames share the address of their physical frame.
	if len(frames) > 2 && (frames[1].Address != run.stack[0] || frames[2].Address != run.stack[0] ||
		frames[1].Type != profiles.FrameGo || frames[1].Mapping == nil) {
		t.Errorf("inlined frames %+v %+v, want Go frames at %#x with the mapping", frames[1], frames[2], run.stack[0])
	}
}

// TestGoInlineFallback: without the inline tables (line tables older than
// go1.20, funcdata not found) a pc in inlined code gets the physical
// function with its own file, never the inlined function's file:line.
func TestGoInlineFallback(t *testing.T) {
	bin := workload.BuildGo(t, "goinline")
	run := startGoinline(t, bin)
	f, err := OpenFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	f.goinl = nil
	checked := 0
	for _, pc := range run.pcs {
		want := run.atPC[pc]
		if len(want) < 4 || !strings.HasPrefix(want[0], "syscall.NsecToTimespec@") {
			continue
		}
		frames := f.AppendFrames(nil, pc)
		if len(frames) != 1 || frames[0].Function != "main.hot" || !strings.HasSuffix(frames[0].File, "goinline/main.go") || frames[0].Line != 0 {
			t.Errorf("pc %#x: %+v, want main.hot in goinline/main.go without a line", pc, frames)
		}
		checked++
	}
	if checked == 0 {
		t.Fatal("no pc in inlined syscall code")
	}
}
