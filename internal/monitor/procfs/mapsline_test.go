package procfs

import (
	"os"
	"strings"
	"testing"
)

func TestParseMapsLine(t *testing.T) {
	ml, ok := ParseMapsLine("55d4c7a00000-55d4c7a01000 r-xp 00001000 fe:01 1234   /usr/lib/my  app.so (deleted)")
	want := MapsLine{Start: 0x55d4c7a00000, End: 0x55d4c7a01000, Offset: 0x1000, Perms: "r-xp", Inode: 1234, Path: "/usr/lib/my app.so (deleted)"}
	if !ok || ml != want {
		t.Errorf("ParseMapsLine = %+v, %v; want %+v", ml, ok, want)
	}
	if ml, ok := ParseMapsLine("7ffd1000-7ffd2000 rw-p 00000000 00:00 0"); !ok || ml.Path != "" || ml.Inode != 0 {
		t.Errorf("anonymous line = %+v, %v", ml, ok)
	}
	for _, bad := range []string{"", "xyz r-xp 0 00:00 0", "1000-2000 r-xp 0 00:00", "1000-2000 r-xp zz 00:00 0"} {
		if _, ok := ParseMapsLine(bad); ok {
			t.Errorf("ParseMapsLine(%q) accepted", bad)
		}
	}
}

// ReadMaps of this process finds the test binary's code, and its map_files
// entry is the binary itself.
func TestReadMapsSelf(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	lines, err := ReadMaps("/proc", os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	for _, ml := range lines {
		if path, deleted := ml.File(); path != exe || deleted || !ml.Executable() || !ml.FileBacked() {
			continue
		}
		a, errA := os.Stat(ml.MapFile("/proc", os.Getpid()))
		b, errB := os.Stat(exe)
		if errA != nil || errB != nil || !os.SameFile(a, b) {
			t.Fatalf("map_files entry %s: %v %v, not the binary", ml.MapFile("/proc", os.Getpid()), errA, errB)
		}
		return
	}
	t.Fatalf("no executable mapping of %s among %d", exe, len(lines))
}

func TestParseMapsBadLine(t *testing.T) {
	if _, err := ParseMaps(strings.NewReader("zz-yy r-xp 0 0:0 0 /x\n")); err == nil {
		t.Fatal("a line of five fields that does not parse was accepted")
	}
	lines, err := ParseMaps(strings.NewReader("short line\n7ffd1000-7ffd2000 rw-p 00000000 00:00 0\n"))
	if err != nil || len(lines) != 1 || lines[0].FileBacked() {
		t.Fatalf("ParseMaps = %+v, %v", lines, err)
	}
}
