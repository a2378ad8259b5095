package symbolize

import (
	"bytes"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/contprof/contprof/internal/output/profiles"
	"github.com/contprof/contprof/internal/testhelper/workload"
)

// gnuBuildID reads the build id with readelf, independently of our parser.
func gnuBuildID(t *testing.T, bin string) string {
	t.Helper()
	out, err := exec.Command("readelf", "-n", bin).CombinedOutput()
	if err != nil {
		t.Fatalf("readelf -n %s: %v\n%s", bin, err, out)
	}
	m := regexp.MustCompile(`Build ID: ([0-9a-f]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("readelf shows no build id for %s", bin)
	}
	return string(m[1])
}

func leaf(t *testing.T, s *Symbolizer, pid int, addr uint64) profiles.Frame {
	t.Helper()
	frames := s.Stack(pid, []uint64{addr}, nil)
	if len(frames) != 1 {
		t.Fatalf("Stack returned %d frames, want 1", len(frames))
	}
	return frames[0]
}

func TestCExecutables(t *testing.T) {
	for _, tc := range []struct {
		name  string
		flags []string
		pie   bool
	}{
		{"pie", []string{"-fPIE", "-pie"}, true},
		{"no-pie", []string{"-fno-PIE", "-no-pie"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bin := workload.BuildC(t, "hotcpu.c", tc.flags...)
			ef, err := elf.Open(bin)
			if err != nil {
				t.Fatal(err)
			}
			isPIE := ef.Type == elf.ET_DYN
			ef.Close()
			if isPIE != tc.pie {
				t.Fatalf("built ELF type %v, want PIE=%v", ef.Type, tc.pie)
			}
			proc := workload.Start(t, bin)
			s := New(Options{})
			want := gnuBuildID(t, bin)
			for _, fn := range []string{"hot_a", "hot_b"} {
				addr := proc.Addrs[fn]
				for _, a := range []uint64{addr, addr + 9} { // entry and inside
					fr := leaf(t, s, proc.PID(), a)
					if fr.Function != fn || fr.Type != profiles.FrameNative || fr.Address != a {
						t.Errorf("%#x: got %q (%s) at %#x, want %s", a, fr.Function, fr.Type, fr.Address, fn)
					}
					if fr.Mapping == nil || fr.Mapping.BuildID != want || fr.Mapping.File != bin ||
						a < fr.Mapping.Start || a >= fr.Mapping.Limit {
						t.Errorf("%#x: mapping %+v, want %s with build id %s covering the address", a, fr.Mapping, bin, want)
					}
				}
			}
			if tc.pie && proc.Addrs["hot_a"] < 0x10000000 {
				t.Errorf("PIE hot_a at %#x: not relocated, the test would not exercise the load bias", proc.Addrs["hot_a"])
			}
			// A return address right after a call is credited to the caller,
			// not to whatever follows: hot_b's entry minus one as a caller
			// frame belongs to hot_a (the function laid out before it).
			frames := s.Stack(proc.PID(), []uint64{proc.Addrs["hot_a"], proc.Addrs["hot_b"]}, nil)
			if frames[1].Function != "hot_a" {
				t.Errorf("return address at hot_b's entry resolved to %q, want hot_a (address - 1)", frames[1].Function)
			}
		})
	}
}

func TestStrippedGo(t *testing.T) {
	bin := workload.BuildGo(t, "hotgo", "-ldflags=-s -w")
	ef, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	if ef.Section(".symtab") != nil {
		t.Fatal("binary is not stripped")
	}
	ef.Close()

	proc := workload.Start(t, bin)
	s := New(Options{})
	goID, err := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "tool", "buildid", bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	for fn, name := range map[string]string{"hotA": "main.hotA", "hotB": "main.hotB"} {
		fr := leaf(t, s, proc.PID(), proc.Addrs[fn]+4)
		if fr.Function != name || fr.Type != profiles.FrameGo || !strings.HasSuffix(fr.File, "hotgo/main.go") || fr.Line < 20 {
			t.Errorf("%s: got %+v, want %s in hotgo/main.go", fn, fr, name)
		}
		if fr.Mapping == nil || fr.Mapping.GoBuildID != strings.TrimSpace(string(goID)) {
			t.Errorf("%s: mapping %+v, want Go build id %s", fn, fr.Mapping, goID)
		}
	}

	// Without section headers naming it, the line table is found by its magic.
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Count(data, []byte(".gopclntab\x00")) != 1 {
		t.Fatal("cannot find the .gopclntab section name to hide")
	}
	hidden := filepath.Join(t.TempDir(), "hidden")
	data = bytes.Replace(data, []byte(".gopclntab\x00"), []byte(".xxxxxxxxx\x00"), 1)
	if err := os.WriteFile(hidden, data, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := OpenFile(hidden)
	if err != nil {
		t.Fatalf("open with hidden .gopclntab: %v", err)
	}
	if !f.IsGo() {
		t.Fatal("Go line table not found by magic")
	}
	// Non-PIE Go: runtime addresses are ELF addresses.
	if fr, ok := f.Lookup(proc.Addrs["hotA"] + 4); !ok || fr.Function != "main.hotA" {
		t.Errorf("lookup with hidden .gopclntab: %+v %v, want main.hotA", fr, ok)
	}
}

func TestDemangle(t *testing.T) {
	bin := workload.BuildC(t, "widget.cc", "-no-pie")
	out, err := exec.Command("nm", bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^([0-9a-f]+) \w (_ZN4demo6WidgetIlE4spinEl)$`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("nm shows no demo::Widget<long>::spin:\n%s", out)
	}
	addr, _ := strconv.ParseUint(string(m[1]), 16, 64)
	f, err := OpenFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	fr, ok := f.Lookup(addr + 2)
	if !ok || fr.Function != "demo::Widget<long>::spin" || fr.SystemName != string(m[2]) {
		t.Errorf("got %+v, want demo::Widget<long>::spin (system name %s)", fr, m[2])
	}
}

func TestSharedLibrary(t *testing.T) {
	// `sleep` spends its life in libc's nanosleep-family wrapper; resolve a
	// libc export through the process, with the library's load bias.
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	pid := cmd.Process.Pid
	s := New(Options{})
	var libc *mapping
	for i := 0; i < 100 && libc == nil; i++ {
		p := s.processLocked(pid)
		for _, m := range p.maps {
			if strings.Contains(m.path, "libc.so") {
				libc = m
			}
		}
		if libc == nil {
			s.Forget(pid)
			time.Sleep(10 * time.Millisecond)
		}
	}
	if libc == nil {
		t.Fatal("libc is not mapped in sleep")
	}
	f, err := OpenFile(libc.path)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("readelf", "--dyn-syms", "-W", libc.path).Output()
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*\d+: ([0-9a-f]+)\s+\d+ FUNC\s+\w+\s+DEFAULT\s+\d+ getpid@`).FindSubmatch(out)
	if m == nil {
		t.Fatal("readelf shows no getpid in libc's .dynsym")
	}
	vaddr, _ := strconv.ParseUint(string(m[1]), 16, 64)
	sym := symbol{addr: vaddr}
	// Runtime address = mapping start + (vaddr - segment vaddr + segment offset - mapping offset).
	var runtimeAddr uint64
	for _, l := range f.loads {
		if sym.addr >= l.vaddr && sym.addr < l.vaddr+l.filesz {
			off := sym.addr - l.vaddr + l.off
			runtimeAddr = libc.start + off - libc.offset
		}
	}
	fr := leaf(t, s, pid, runtimeAddr+1)
	if fr.Function != "getpid" || fr.Mapping == nil || !strings.Contains(fr.Mapping.File, "libc.so") {
		t.Errorf("libc getpid at %#x: got %+v", runtimeAddr, fr)
	}
}

func TestPerfMap(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	pid := cmd.Process.Pid
	path := fmt.Sprintf("/tmp/perf-%d.map", pid)
	t.Cleanup(func() { os.Remove(path) })
	write := func(content string) {
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("100000000 40 LazyCompile:*handleRequest /app/server.js:10\n" +
		"100000040 20 _ZN2v88internal7Isolate4InitEv\n" +
		"garbage line\n")
	s := New(Options{})
	fr := leaf(t, s, pid, 0x100000010)
	if fr.Function != "LazyCompile:*handleRequest /app/server.js:10" || fr.Address != 0x100000010 {
		t.Errorf("perf map frame: %+v", fr)
	}
	if fr := leaf(t, s, pid, 0x100000044); fr.Function != "v8::internal::Isolate::Init" {
		t.Errorf("demangled perf map frame: %+v", fr)
	}
	if fr := leaf(t, s, pid, 0x100000070); fr.Function != "" {
		t.Errorf("address past the last entry resolved to %+v", fr)
	}
	// The JIT appends as it compiles more: the map is re-read (at most
	// every perfMapMissAge on misses).
	time.Sleep(2 * perfMapMissAge)
	write("100000000 40 LazyCompile:*handleRequest /app/server.js:10\n100000060 20 Builtin:ArgumentsAdaptor\n")
	if fr := leaf(t, s, pid, 0x100000070); fr.Function != "Builtin:ArgumentsAdaptor" {
		t.Errorf("after the perf map grew: %+v", fr)
	}
}

func TestKallsyms(t *testing.T) {
	ks, err := loadKallsyms("/proc/kallsyms")
	if err != nil {
		if os.Geteuid() != 0 {
			t.Skipf("kernel symbols not readable as non-root: %v", err)
		}
		t.Fatal(err)
	}
	// Pick a few symbols from the file and resolve addresses inside them.
	data, err := os.ReadFile("/proc/kallsyms")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, name := range []string{"schedule", "do_syscall_64", "vfs_read"} {
		m := regexp.MustCompile(`(?m)^([0-9a-f]+) [tT] ` + name + `$`).FindSubmatch(data)
		if m == nil {
			continue
		}
		addr, _ := strconv.ParseUint(string(m[1]), 16, 64)
		fr := ks.lookup(addr + 1)
		if fr.Function != name || fr.Type != profiles.FrameKernel || fr.Mapping == nil || fr.Mapping.File != profiles.KernelMappingFile {
			t.Errorf("%s+1: got %+v", name, fr)
		}
		checked++
	}
	if checked == 0 {
		t.Fatal("none of the probe symbols is in /proc/kallsyms")
	}
	s := New(Options{})
	if err := s.KernelError(); err != nil {
		t.Fatal(err)
	}
}

func TestParseKallsyms(t *testing.T) {
	ks, err := parseKallsyms(strings.NewReader(
		"ffffffff81000000 T _stext\n" +
			"ffffffff81000100 t helper\n" +
			"ffffffff81000200 D some_data\n" +
			"ffffffff81000300 T next_fn\n" +
			"ffffffffc0001000 t mod_fn\t[e1000]\n"))
	if err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[uint64]string{
		0xffffffff81000150: "helper",
		0xffffffff81000250: "helper", // data symbols are skipped
		0xffffffff81000300: "next_fn",
		0xffffffffc0001010: "mod_fn",
	} {
		if fr := ks.lookup(addr); fr.Function != want {
			t.Errorf("%#x: %q, want %q", addr, fr.Function, want)
		}
	}
	if fr := ks.lookup(0xffffffffc0001010); fr.Mapping == nil || fr.Mapping.File != "[e1000]" {
		t.Errorf("module frame mapping: %+v", fr.Mapping)
	}
	if _, err := parseKallsyms(strings.NewReader("0000000000000000 T _stext\n0000000000000000 t x\n")); err == nil ||
		!strings.Contains(err.Error(), "hidden") {
		t.Errorf("hidden addresses: %v, want an error saying so", err)
	}
	if _, err := parseKallsyms(strings.NewReader("zzzz T _stext\n")); err == nil {
		t.Error("bad address accepted")
	}
}

func TestParseProcMaps(t *testing.T) {
	maps, err := parseProcMaps(strings.NewReader(
		"55d4c7a00000-55d4c7a01000 r--p 00000000 fe:01 1234                       /usr/bin/app\n" +
			"55d4c7a01000-55d4c7a05000 r-xp 00001000 fe:01 1234                       /usr/bin/app\n" +
			"7f0000000000-7f0000001000 r-xp 00000000 00:00 0 \n" +
			"7f0000002000-7f0000003000 r-xp 00002000 fe:01 99   /tmp/lib with space.so (deleted)\n" +
			"7ffd1c1f0000-7ffd1c1f2000 r-xp 00000000 00:00 0                          [vdso]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(maps) != 5 {
		t.Fatalf("%d mappings, want 5", len(maps))
	}
	if m := maps[1]; !m.executable() || !m.fileBacked() || m.offset != 0x1000 || m.path != "/usr/bin/app" {
		t.Errorf("app text: %+v", m)
	}
	if m := maps[2]; m.fileBacked() {
		t.Errorf("anonymous mapping is file backed: %+v", m)
	}
	if m := maps[3]; m.path != "/tmp/lib with space.so" || !m.deleted {
		t.Errorf("deleted library: %+v", m)
	}
	if m := maps[4]; m.fileBacked() || m.path != "[vdso]" {
		t.Errorf("vdso: %+v", m)
	}
	if _, err := parseProcMaps(strings.NewReader("zz-yy r-xp 0 0:0 0 /x\n")); err == nil {
		t.Error("bad line accepted")
	}
}

func TestUnknownProcess(t *testing.T) {
	s := New(Options{})
	if err := s.Preload(1 << 30); err == nil {
		t.Error("Preload of a missing process succeeded")
	}
	fr := leaf(t, s, 1<<30, 0x401000)
	if fr.Function != "" || fr.Address != 0x401000 {
		t.Errorf("frame of a missing process: %+v", fr)
	}
}

func TestFileCache(t *testing.T) {
	bin := workload.BuildC(t, "hotcpu.c")
	a := workload.Start(t, bin)
	b := workload.Start(t, bin)
	s := New(Options{MaxFiles: 2})
	fa := leaf(t, s, a.PID(), a.Addrs["hot_a"])
	fb := leaf(t, s, b.PID(), b.Addrs["hot_a"])
	if fa.Function != "hot_a" || fb.Function != "hot_a" {
		t.Fatalf("got %q and %q", fa.Function, fb.Function)
	}
	if len(s.byBuildID) == 0 || len(s.files) > 2 {
		t.Errorf("cache: %d files, %d build ids; want bounded by 2", len(s.files), len(s.byBuildID))
	}
	if s.procs[a.PID()].maps == nil {
		t.Fatal("no maps kept")
	}
	var ma, mb *File
	for _, m := range s.procs[a.PID()].maps {
		if m.path == bin {
			ma = m.file
		}
	}
	for _, m := range s.procs[b.PID()].maps {
		if m.path == bin {
			mb = m.file
		}
	}
	if ma == nil || ma != mb {
		t.Error("the same binary in two processes was loaded twice")
	}
}

// TestRelease: with no task running the symbolizer holds no table, and
// symbolizes again (reading what it needs) afterwards.
func TestRelease(t *testing.T) {
	bin := workload.BuildC(t, "hotcpu.c")
	a := workload.Start(t, bin)
	s := New(Options{})
	if fr := leaf(t, s, a.PID(), a.Addrs["hot_a"]); fr.Function != "hot_a" {
		t.Fatalf("before release: %q", fr.Function)
	}
	_ = s.KernelError() // loads the kernel table where it is readable
	s.Release()
	if len(s.files) != 0 || len(s.byBuildID) != 0 || len(s.procs) != 0 || s.fileBytes != 0 || s.kernel != nil {
		t.Fatalf("after release: %d files, %d build ids, %d processes, %d file bytes, kernel table %v",
			len(s.files), len(s.byBuildID), len(s.procs), s.fileBytes, s.kernel != nil)
	}
	if fr := leaf(t, s, a.PID(), a.Addrs["hot_a"]); fr.Function != "hot_a" {
		t.Fatalf("after release: %q", fr.Function)
	}
}

// TestFileCacheByteBudget: the cached symbol tables stay within
// MaxFileBytes, least recently used first; a file larger than the budget
// alone still symbolizes the stack that needs it.
func TestFileCacheByteBudget(t *testing.T) {
	hot := workload.BuildC(t, "hotcpu.c")
	a := workload.Start(t, hot)
	s := New(Options{MaxFileBytes: 1})
	if fr := leaf(t, s, a.PID(), a.Addrs["hot_a"]); fr.Function != "hot_a" {
		t.Fatalf("over-budget file did not symbolize: %+v", fr)
	}
	var hotBytes int64
	for _, e := range s.files {
		if e.file.bytes <= 0 {
			t.Fatalf("file without a size estimate: %+v", e.file)
		}
		hotBytes += e.file.bytes
	}
	// Room for roughly one such file: opening more evicts the older.
	s = New(Options{MaxFileBytes: hotBytes + 1})
	leaf(t, s, a.PID(), a.Addrs["hot_a"])
	// Another program and its libraries.
	other := exec.Command("sleep", "30")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { other.Process.Kill(); other.Wait() }()
	time.Sleep(100 * time.Millisecond)
	if err := s.Preload(other.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if s.fileBytes > s.maxFileBytes && len(s.files) > 1 {
		t.Fatalf("cache holds %d bytes in %d files, budget %d", s.fileBytes, len(s.files), s.maxFileBytes)
	}
	var sum int64
	seen := map[*fileEntry]bool{}
	for _, e := range s.files {
		if !seen[e] {
			seen[e] = true
			sum += e.file.bytes
		}
	}
	if sum != s.fileBytes {
		t.Fatalf("accounted %d bytes, cache holds %d", s.fileBytes, sum)
	}
}

// The kernel table stays small while tasks run: the names in one array
// and 16 bytes per symbol (a string and a line per symbol took about 100).
func TestKallsymsTableBytes(t *testing.T) {
	if _, err := loadKallsyms("/proc/kallsyms"); err != nil {
		t.Skipf("kernel symbols not readable: %v", err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	ks, err := loadKallsyms("/proc/kallsyms")
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	held := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	perSym := float64(held) / float64(len(ks.syms))
	t.Logf("%d symbols, %d name bytes: %d bytes held, %.1f per symbol", len(ks.syms), len(ks.names), held, perSym)
	if limit := 16 + 2*float64(len(ks.names))/float64(len(ks.syms)) + 8; perSym > limit {
		t.Errorf("%.1f bytes per kernel symbol, want at most %.1f", perSym, limit)
	}
	runtime.KeepAlive(ks)
}
