package symbolize

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func TestOverlay(t *testing.T) {
	sym := func(addr, size uint64, name string) symbol { return symbol{addr: addr, size: size, name: name} }
	for _, c := range []struct {
		name  string
		base  symtab
		added []symbol
		want  symtab
	}{
		{"disjoint", nil, []symbol{sym(0x200, 0x10, "b"), sym(0x100, 0x10, "a")},
			symtab{sym(0x100, 0x10, "a"), sym(0x200, 0x10, "b")}},
		{"same address: later wins (code moved here)", symtab{sym(0x100, 0x40, "old")}, []symbol{sym(0x100, 0x40, "new")},
			symtab{sym(0x100, 0x40, "new")}},
		{"later entry inside an earlier one splits it", symtab{sym(0x100, 0x100, "big")}, []symbol{sym(0x140, 0x20, "small")},
			symtab{sym(0x100, 0x40, "big"), sym(0x140, 0x20, "small"), sym(0x160, 0xa0, "big")}},
		{"earlier entry inside a later one disappears", nil, []symbol{sym(0x140, 0x20, "small"), sym(0x100, 0x100, "big")},
			symtab{sym(0x100, 0x100, "big")}},
		{"partial overlap", symtab{sym(0x100, 0x40, "a")}, []symbol{sym(0x120, 0x40, "b")},
			symtab{sym(0x100, 0x20, "a"), sym(0x120, 0x40, "b")}},
		{"three layers", nil, []symbol{sym(0x0, 0x30, "x"), sym(0x10, 0x30, "y"), sym(0x20, 0x5, "z")},
			symtab{sym(0x0, 0x10, "x"), sym(0x10, 0x10, "y"), sym(0x20, 0x5, "z"), sym(0x25, 0x1b, "y")}},
	} {
		got := overlay(c.base, c.added)
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, got, c.want)
		}
	}
}

// lookupName is the name the perf map gives addr after a refresh.
func lookupName(pm *perfMap, addr uint64) string {
	pm.refresh(time.Now())
	s, _ := pm.syms.lookup(addr)
	return s.name
}

func TestPerfMapGrowsAndIsRewritten(t *testing.T) {
	path := filepath.Join(t.TempDir(), "perf-1.map")
	pm := &perfMap{path: path}
	if got := lookupName(pm, 0x1000); got != "" {
		t.Fatalf("missing file resolved %q", got)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	write := func(s string) {
		if _, err := f.WriteString(s); err != nil {
			t.Fatal(err)
		}
	}
	write("1000 100 JS:~js_alpha /app/a.js:6:18\n")
	// A line the runtime is still writing is not read yet.
	write("2000 100 JS:*sp")
	if got := lookupName(pm, 0x1010); got != "JS:~js_alpha /app/a.js:6:18" {
		t.Errorf("first entry: %q", got)
	}
	if got := lookupName(pm, 0x2010); got != "" {
		t.Errorf("partial line resolved to %q", got)
	}
	offset := pm.offset
	write("in /app/a.js:1:14\n")
	if got := lookupName(pm, 0x2010); got != "JS:*spin /app/a.js:1:14" {
		t.Errorf("completed line: %q", got)
	}
	if pm.offset <= offset {
		t.Errorf("offset did not advance: %d -> %d", offset, pm.offset)
	}
	// V8 moves code, or reuses freed code memory: the later line wins.
	write(fmt.Sprintf("%x %x %s\n", 0x1000, 0x80, "JS:*js_alpha /app/a.js:6:18"))
	if got := lookupName(pm, 0x1010); got != "JS:*js_alpha /app/a.js:6:18" {
		t.Errorf("moved code: %q", got)
	}
	if got := lookupName(pm, 0x1090); got != "JS:~js_alpha /app/a.js:6:18" {
		t.Errorf("rest of the old entry: %q", got)
	}
	// HotSpot rewrites the whole file: old entries are gone, even when the
	// new file is longer than what we had read.
	rewritten := "3000 100 void JSplit.javaAlpha(long)\n4000 100 Interpreter\n5000 100 long JSplit.spin(long)\n6000 10 StubRoutines (1)\n"
	if err := os.WriteFile(path, []byte(rewritten), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := lookupName(pm, 0x4010); got != "Interpreter" {
		t.Errorf("after rewrite: %q", got)
	}
	if got := lookupName(pm, 0x1010); got != "" {
		t.Errorf("entry of the old file survived the rewrite: %q", got)
	}
	// A new file (new inode) is read from the start.
	os.Remove(path)
	if err := os.WriteFile(path, []byte("7000 10 fresh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := lookupName(pm, 0x3010); got != "" {
		t.Errorf("entry of the replaced file survived: %q", got)
	}
	if got := lookupName(pm, 0x7001); got != "fresh" {
		t.Errorf("replaced file: %q", got)
	}
}

func TestParsePerfMapLines(t *testing.T) {
	got := parsePerfMap([]byte("0x10 0x20 a b c\n\nbad\n30 0 zero\nzz 10 nothex\n40 10 last"))
	want := []symbol{{addr: 0x10, size: 0x20, name: "a b c"}, {addr: 0x40, size: 0x10, name: "last"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func BenchmarkPerfMapLoad(b *testing.B) {
	path := filepath.Join(b.TempDir(), "perf-1.map")
	var buf []byte
	for i := 0; i < 100000; i++ {
		buf = fmt.Appendf(buf, "%x %x JS:*fn%d /app/f.js:%d:1\n", 0x7f0000000000+uint64(i)*0x400, 0x300, i, i)
	}
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		pm := &perfMap{path: path}
		pm.refresh(time.Now())
		if len(pm.syms) != 100000 {
			b.Fatalf("%d symbols", len(pm.syms))
		}
	}
}
