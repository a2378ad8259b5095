package symbolize

import (
	"bytes"
	"os"
	"testing"
	"time"
)

// Malformed ELF files, perf maps, kallsyms and /proc/PID/maps come from
// processes the collector does not control; none may panic it.

func FuzzELF(f *testing.F) {
	for _, p := range []string{"/bin/true", "/usr/bin/true"} {
		if data, err := os.ReadFile(p); err == nil && len(data) < 1<<20 {
			f.Add(data)
			// Truncated and with a corrupted section header table.
			f.Add(data[:len(data)/2])
			bad := bytes.Clone(data)
			if len(bad) > 0x40 {
				copy(bad[0x28:0x30], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f})
			}
			f.Add(bad)
			break
		}
	}
	f.Add([]byte("\x7fELF\x02\x01\x01"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		done := make(chan struct{})
		go func() {
			defer close(done)
			ef, err := openELF(bytes.NewReader(data))
			if err != nil || ef == nil {
				return
			}
			for _, addr := range []uint64{0, 1, 0x1000, 0x401000, ^uint64(0)} {
				ef.Lookup(ef.vaddr(addr))
				ef.Lookup(addr)
			}
			_ = ef.String()
		}()
		select {
		case <-done:
		case <-time.After(3 * time.Second):
			panic("symbolizing a malformed ELF file hangs")
		}
	})
}

func FuzzPerfMap(f *testing.F) {
	f.Add([]byte("7f0000001000 40 LazyCompile:~main /app.js:1\n7f0000001020 10 Interpreter\n"))
	f.Add([]byte("0x10 0x10 a\n0x18 0x4 b\n0x0 0x100 c\nffffffffffffffff 2 wrap\n"))
	f.Add([]byte("1 0 zero\nzz 1 bad\n1 1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		syms := parsePerfMap(data)
		tab := overlay(nil, syms)
		tab = overlay(tab, parsePerfMap(data))
		for i := 1; i < len(tab); i++ {
			if tab[i].addr < tab[i-1].addr {
				t.Fatalf("overlay result not sorted at %d", i)
			}
		}
		for _, s := range syms {
			tab.lookup(s.addr)
			tab.lookup(s.addr + s.size - 1)
		}
	})
}

func FuzzKallsyms(f *testing.F) {
	f.Add([]byte("ffffffff81000000 T _stext\nffffffff81000100 t helper\nffffffffc0a01000 t fn\t[mod]\n"))
	f.Add([]byte("0000000000000000 T hidden\n"))
	f.Add([]byte("zz T bad\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := parseKallsyms(bytes.NewReader(data))
		if err != nil || k == nil {
			return
		}
		for _, addr := range []uint64{0, 0xffffffff81000000, 0xffffffff81000150, 0xffffffffc0a01004, ^uint64(0)} {
			k.lookup(addr)
		}
	})
}

func FuzzProcMaps(f *testing.F) {
	f.Add([]byte("55d4c7a00000-55d4c7a01000 r-xp 00001000 fe:01 1234  /usr/bin/app\n7ffd1000-7ffd2000 rw-p 00000000 00:00 0 [stack]\n7f00-7f10 r-xp 0 08:01 99 /lib/x.so (deleted)\n"))
	f.Add([]byte("x-y r-xp 0 0 0\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ms, err := parseProcMaps(bytes.NewReader(data))
		if err != nil {
			return
		}
		for i := range ms {
			ms[i].executable()
			ms[i].fileBacked()
		}
	})
}
