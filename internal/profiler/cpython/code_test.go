//go:build linux

package cpython

import (
	"bufio"
	"errors"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// startPython runs testdata/codeids.py and returns its pid and the
// addresses it printed.
func startPython(t *testing.T, py string) (int, map[string]uint64) {
	t.Helper()
	cmd := exec.Command(py, "testdata/codeids.py")
	stdin, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); _ = cmd.Process.Kill(); _ = cmd.Wait() })
	sc := bufio.NewScanner(out)
	if !sc.Scan() {
		t.Fatalf("%s printed nothing", py)
	}
	addrs := map[string]uint64{}
	for _, f := range strings.Fields(sc.Text()) {
		k, v, _ := strings.Cut(f, "=")
		a, err := strconv.ParseUint(strings.TrimPrefix(v, "0x"), 16, 64)
		if err != nil {
			t.Fatal(err)
		}
		addrs[k] = a
	}
	return cmd.Process.Pid, addrs
}

// Code objects read from a live interpreter's memory give the names,
// file and first line Python itself has; other objects are refused.
func TestReaderLiveProcess(t *testing.T) {
	for minor, py := range pythons(t) {
		pid, addrs := startPython(t, py)
		target, err := Detect("", pid)
		if err != nil {
			t.Fatalf("3.%d: detect: %v", minor, err)
		}
		if target.Version.Minor != minor {
			t.Errorf("%s: detected %s", py, target.Version)
		}
		r, err := NewReader("", target)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		r.Begin()
		want := map[string]struct {
			fn   string
			line int64
		}{
			"method": {"codeids.Widget.py_method", 8},
			"func":   {"codeids.py_func", 12},
			"uni":    {"codeids.py_ünicode", 16},
		}
		if minor < 11 { // no co_qualname
			want["method"] = struct {
				fn   string
				line int64
			}{"codeids.py_method", 8}
		}
		for k, w := range want {
			f, ok := r.Frame(addrs[k], -1)
			if !ok || f.Function != w.fn || f.Line != w.line || filepath.Base(f.File) != "codeids.py" {
				t.Errorf("3.%d %s: %+v (ok %v), want %s at codeids.py:%d", minor, k, f, ok, w.fn, w.line)
			}
		}
		if f, ok := r.Frame(addrs["notcode"], -1); ok {
			t.Errorf("3.%d: a list read as code: %+v", minor, f)
		}
		t.Logf("3.%d: %s, _PyRuntime %#x", minor, target.Path, target.Runtime)
	}
}

func TestDetectNotPython(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	if _, err := Detect("", cmd.Process.Pid); !errors.Is(err, ErrNotPython) {
		t.Errorf("sleep: %v, want ErrNotPython", err)
	}
}
