package symbolize

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/contprof/contprof/internal/testhelper/workload"
)

// nmAddr is the address of function fn in bin, read with nm.
func nmAddr(t *testing.T, bin, fn string) uint64 {
	t.Helper()
	out, err := exec.Command("nm", bin).Output()
	if err != nil {
		t.Fatalf("nm %s: %v", bin, err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 3 && f[2] == fn {
			a, err := strconv.ParseUint(f[0], 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			return a
		}
	}
	t.Fatalf("nm: no %s in %s", fn, bin)
	return 0
}

func sh(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func nameInFile(t *testing.T, bin string, addr uint64) string {
	t.Helper()
	f, err := OpenFile(bin)
	if err != nil && f == nil {
		t.Fatalf("open %s: %v", bin, err)
	}
	fr, ok := f.Lookup(addr)
	if !ok {
		return ""
	}
	return fr.Function
}

// TestStrippedSymbols: a stripped executable's functions are named from its
// MiniDebugInfo (.gnu_debugdata, as Fedora ships) or from a separate debug
// file found by build id (as Debian's -dbgsym packages install).
func TestStrippedSymbols(t *testing.T) {
	for _, tool := range []string{"nm", "objcopy", "strip", "xz"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	bin := workload.BuildCDefault(t, "callers.c")
	dir := filepath.Dir(bin)
	addr := nmAddr(t, bin, "caller_b")
	if got := nameInFile(t, bin, addr+1); got != "caller_b" {
		t.Fatalf("unstripped: %#x is %q, want caller_b", addr+1, got)
	}

	// Separate debug file under a private debug root.
	root := t.TempDir()
	id := gnuBuildID(t, bin)
	debug := filepath.Join(root, ".build-id", id[:2], id[2:]+".debug")
	if err := os.MkdirAll(filepath.Dir(debug), 0o755); err != nil {
		t.Fatal(err)
	}
	sh(t, dir, "objcopy", "--only-keep-debug", bin, debug)
	stripped := bin + ".stripped"
	sh(t, dir, "strip", "--strip-all", "-o", stripped, bin)
	defer func(old string) { DebugRoot = old }(DebugRoot)
	DebugRoot = t.TempDir() // empty
	if got := nameInFile(t, stripped, addr+1); got == "caller_b" {
		t.Fatal("stripped binary still names caller_b without debug info: the test proves nothing")
	}
	DebugRoot = root
	if got := nameInFile(t, stripped, addr+1); got != "caller_b" {
		t.Errorf("stripped with debug file: %#x is %q, want caller_b", addr+1, got)
	}

	// MiniDebugInfo: the functions' symbols, xz-compressed, in the binary.
	DebugRoot = t.TempDir()
	mini := filepath.Join(dir, "mini")
	sh(t, dir, "objcopy", "--only-keep-debug", bin, mini)
	sh(t, dir, "objcopy", "--strip-debug", "--remove-section", ".comment", mini, mini+".syms")
	sh(t, dir, "xz", "-k", mini+".syms")
	withMini := bin + ".mini"
	sh(t, dir, "objcopy", "--add-section", ".gnu_debugdata="+mini+".syms.xz", stripped, withMini)
	if got := nameInFile(t, withMini, addr+1); got != "caller_b" {
		t.Errorf("stripped with .gnu_debugdata: %#x is %q, want caller_b", addr+1, got)
	}
}
