package buildid

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The GNU build id is what readelf shows for the same file.
func TestGNUAsReadelf(t *testing.T) {
	readelf, err := exec.LookPath("readelf")
	if err != nil {
		t.Skip("readelf (binutils) not installed")
	}
	bin, err := exec.LookPath("true")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(readelf, "-n", bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`Build ID: ([0-9a-f]+)`).FindSubmatch(out)
	if m == nil {
		t.Skipf("%s has no GNU build id", bin)
	}
	got, err := GNU(bin)
	if err != nil || got != string(m[1]) {
		t.Errorf("GNU(%s) = %q, %v; readelf says %s", bin, got, err, m[1])
	}
}

// A Go binary carries its Go build id as `go tool buildid` prints it.
func TestGoBuildID(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("go", "tool", "buildid", exe).Output()
	if err != nil {
		t.Skipf("go tool buildid: %v", err)
	}
	f, err := elf.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, goID := Read(f); goID != strings.TrimSpace(string(out)) {
		t.Errorf("Go build id %q, go tool buildid says %q", goID, out)
	}
}

func TestNotELF(t *testing.T) {
	p := filepath.Join(t.TempDir(), "text")
	if err := os.WriteFile(p, []byte("not an ELF file"), 0o644); err != nil {
		t.Fatal(err)
	}
	if id, err := GNU(p); err == nil {
		t.Errorf("GNU of a text file = %q, want an error", id)
	}
}
