package procfs

import "testing"

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
