//go:build linux

package oncpu

import (
	"debug/elf"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/contprof/contprof/internal/output/profiles"
	"github.com/contprof/contprof/internal/profiler/symbolize"
	"github.com/contprof/contprof/internal/testhelper/workload"
)

// profilePython samples python running script until it has 99×d samples
// (up to 5×d) and returns the profile and the note of the last batch.
func profilePython(t *testing.T, python, script string, d time.Duration) (*profiles.Profile, string) {
	t.Helper()
	proc := workload.Start(t, python, filepath.Join(workload.Dir(t), "python", script))
	s, err := Open(Options{Frequency: DefaultFrequency})
	if err != nil {
		t.Fatalf("open sampler: %v", err)
	}
	defer s.Close()
	sub, err := s.Add(proc.PID())
	if err != nil {
		t.Fatalf("add pid: %v", err)
	}
	defer sub.Close()
	sym := symbolize.New(symbolize.Options{})
	want := uint64(DefaultFrequency * d.Seconds())
	var (
		p     *profiles.Profile
		total uint64
		note  string
	)
	for deadline := time.Now().Add(5 * d); total < want && time.Now().Before(deadline); {
		time.Sleep(time.Second)
		b, err := sub.Drain()
		if err != nil {
			t.Fatalf("drain: %v", err)
		}
		bp := b.Profile(sym, nil, nil)
		if p == nil {
			p = bp
		} else {
			p.Samples = append(p.Samples, bp.Samples...)
		}
		total += b.Total()
		note = b.PythonNote
	}
	if total < want/3 {
		t.Fatalf("got %d samples, want at least %d", total, want/3)
	}
	t.Logf("%s: %d samples, %d stacks; note %q", script, total, len(p.Samples), note)
	return p, note
}

// index of the first frame named fn in frames, -1 if none.
func frameIndex(frames []profiles.Frame, fn string) int {
	for i, f := range frames {
		if f.Function == fn {
			return i
		}
	}
	return -1
}

func logTop(t *testing.T, p *profiles.Profile, n int) {
	t.Helper()
	for _, s := range p.Samples[:min(n, len(p.Samples))] {
		var b strings.Builder
		for _, f := range s.Frames {
			b.WriteString("\n    " + f.Function + " [" + string(f.Type) + "]")
		}
		t.Logf("%d:%s", s.Value, b.String())
	}
}

// Three Python functions spending CPU 6:3:1 through a shared helper: the
// shares of the Python callers are within ±5 points.
func TestPythonCPUShares(t *testing.T) {
	requireEBPF(t)
	workload.RequirePython(t)
	p, note := profilePython(t, workload.DebianPython, "cpu_shares.py", 10*time.Second)
	if !strings.HasPrefix(note, "Python 3.11") {
		t.Errorf("note %q, want the interpreter walked", note)
	}
	fns := []string{"cpu_shares.py_alpha", "cpu_shares.py_beta", "cpu_shares.py_gamma"}
	want := []float64{0.6, 0.3, 0.1}
	var per [3]int64
	var all int64
	for _, s := range p.Samples {
		for i, fn := range fns {
			j := frameIndex(s.Frames, fn)
			if j < 0 {
				continue
			}
			per[i] += s.Value
			all += s.Value
			f := s.Frames[j]
			if f.Type != profiles.FrameCPython || !strings.HasSuffix(f.File, "/cpu_shares.py") || f.Line < 14 || f.Line > 23 {
				t.Errorf("frame %+v: want type cpython, file cpu_shares.py, a line of the function", f)
			}
			if h := frameIndex(s.Frames, "cpu_shares.helper"); h >= 0 && h > j {
				t.Errorf("helper is above its caller %s in %v", fn, s.Frames)
			}
		}
	}
	if float64(all) < 0.8*float64(p.Total()) {
		logTop(t, p, 10)
		t.Fatalf("only %d of %d samples have one of the three Python functions", all, p.Total())
	}
	for i, fn := range fns {
		got := float64(per[i]) / float64(all)
		t.Logf("%s: %.1f%% (want %.0f%% ± 5)", fn, 100*got, 100*want[i])
		if math.Abs(got-want[i]) > 0.05 {
			t.Errorf("%s: %.1f%% of the samples, want %.0f%% ± 5 points", fn, 100*got, 100*want[i])
		}
	}
}

// zlib.compress in a loop: the native frames of libz are on the leaf
// side of the Python caller, in the same sample.
func TestPythonNativeUnderCaller(t *testing.T) {
	requireEBPF(t)
	workload.RequirePython(t)
	p, _ := profilePython(t, workload.DebianPython, "native_ext.py", 5*time.Second)
	var caller, native int64
	for _, s := range p.Samples {
		j := frameIndex(s.Frames, "native_ext.py_compress")
		if j < 0 {
			continue
		}
		caller += s.Value
		for _, f := range s.Frames[:j] {
			if f.Mapping != nil && strings.Contains(filepath.Base(f.Mapping.File), "libz.so") {
				native += s.Value
				break
			}
		}
	}
	t.Logf("py_compress in %d of %d samples, with libz frames under it in %d", caller, p.Total(), native)
	if float64(caller) < 0.8*float64(p.Total()) || float64(native) < 0.6*float64(caller) {
		logTop(t, p, 8)
		t.Errorf("want py_compress in ≥ 80%% of the samples and libz frames under it in ≥ 60%% of those")
	}
}

// Two busy-or-blocked threads and the main thread: on the CPU it is
// thread "one" (py_one_work); no sample mixes two threads' functions.
func TestPythonThreads(t *testing.T) {
	requireEBPF(t)
	workload.RequirePython(t)
	p, _ := profilePython(t, workload.DebianPython, "threads.py", 5*time.Second)
	var one int64
	for _, s := range p.Samples {
		n := 0
		for _, fn := range []string{"threads.py_one_work", "threads.py_two_sleep", "threads.py_main_wait"} {
			if frameIndex(s.Frames, fn) >= 0 {
				n++
			}
		}
		if n > 1 {
			t.Errorf("a sample mixes threads: %v", s.Frames)
		}
		if j := frameIndex(s.Frames, "threads.py_one_work"); j >= 0 {
			one += s.Value
			if frameIndex(s.Frames, "threading.Thread.run") < j {
				t.Errorf("py_one_work without its thread's run() below it: %v", s.Frames)
			}
		}
	}
	if float64(one) < 0.8*float64(p.Total()) {
		logTop(t, p, 8)
		t.Errorf("py_one_work in %d of %d samples, want ≥ 80%%", one, p.Total())
	}
}

// A Python whose version has no offsets (Debian's binary with Py_Version
// patched to 3.14): native frames only and a note naming the version,
// never wrong names.
func TestPythonUnknownVersion(t *testing.T) {
	requireEBPF(t)
	workload.RequirePython(t)
	bin := patchedPython(t, 0x030e0000)
	p, note := profilePython(t, bin, "cpu_shares.py", 3*time.Second)
	if !strings.Contains(note, "Python 3.14") || !strings.Contains(note, "native frames only") {
		t.Errorf("note %q, want one naming Python 3.14 and native frames only", note)
	}
	for _, s := range p.Samples {
		for _, f := range s.Frames {
			if f.Type == profiles.FrameCPython {
				t.Fatalf("Python frame %+v for an unknown version", f)
			}
		}
	}
	if frameIndex(flatten(p), "_PyEval_EvalFrameDefault") < 0 {
		t.Errorf("no native interpreter frames")
	}
}

// patchedPython copies Debian's python3.11 with Py_Version set to hex.
func patchedPython(t testing.TB, hex uint32) string {
	t.Helper()
	f, err := elf.Open(workload.DebianPython)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms, err := f.DynamicSymbols()
	if err != nil {
		t.Fatal(err)
	}
	var off int64 = -1
	for _, s := range syms {
		if s.Name != "Py_Version" {
			continue
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_LOAD && s.Value >= p.Vaddr && s.Value < p.Vaddr+p.Filesz {
				off = int64(s.Value - p.Vaddr + p.Off)
			}
		}
	}
	if off < 0 {
		t.Fatal("Py_Version not found in " + workload.DebianPython)
	}
	b, err := os.ReadFile(workload.DebianPython)
	if err != nil {
		t.Fatal(err)
	}
	binary.LittleEndian.PutUint32(b[off:], hex)
	out := filepath.Join(t.TempDir(), "python3")
	if err := os.WriteFile(out, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return out
}

func flatten(p *profiles.Profile) []profiles.Frame {
	var out []profiles.Frame
	for _, s := range p.Samples {
		out = append(out, s.Frames...)
	}
	return out
}

// The walker on every CPython 3.8-3.13 build on the machine (pyenv's
// shared-library builds, where present; Debian's 3.11 is covered above):
// the Python callers are found with the right names and shares.
func TestPythonVersions(t *testing.T) {
	requireEBPF(t)
	found := 0
	for minor := 8; minor <= 13; minor++ {
		m, _ := filepath.Glob(fmt.Sprintf("/root/.pyenv/versions/3.%d.*/bin/python3.%d", minor, minor))
		if len(m) == 0 {
			continue
		}
		found++
		t.Run(fmt.Sprintf("3.%d", minor), func(t *testing.T) {
			p, note := profilePython(t, m[0], "cpu_shares.py", 4*time.Second)
			if !strings.HasPrefix(note, fmt.Sprintf("Python 3.%d", minor)) {
				t.Errorf("note %q", note)
			}
			var alpha, any int64
			for _, s := range p.Samples {
				if frameIndex(s.Frames, "cpu_shares.helper") >= 0 {
					any += s.Value
				}
				if j := frameIndex(s.Frames, "cpu_shares.py_alpha"); j >= 0 {
					alpha += s.Value
					if s.Frames[j].Type != profiles.FrameCPython || s.Frames[j].Line != 15 && s.Frames[j].Line != 14 {
						t.Errorf("py_alpha frame %+v", s.Frames[j])
					}
				}
			}
			t.Logf("helper in %d, py_alpha in %d of %d samples", any, alpha, p.Total())
			if float64(any) < 0.8*float64(p.Total()) || math.Abs(float64(alpha)/float64(any)-0.6) > 0.1 {
				logTop(t, p, 5)
				t.Errorf("want helper in ≥ 80%% of the samples and py_alpha in 60%% ± 10 of those")
			}
		})
	}
	if found == 0 {
		t.Skip("no pyenv CPython builds on this machine")
	}
}
