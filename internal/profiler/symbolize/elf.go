//go:build linux

package symbolize

import (
	"bytes"
	"debug/elf"
	"debug/gosym"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"unsafe"

	"github.com/ianlancetaylor/demangle"

	"github.com/contprof/contprof/internal/output/profiles"
	"github.com/contprof/contprof/internal/profiler/buildid"
)

// symbol is a function symbol; size 0 means "up to the next symbol".
type symbol struct {
	addr, size uint64
	name       string
}

// symtab is a sorted function symbol table.
type symtab []symbol

func (t symtab) lookup(addr uint64) (symbol, bool) {
	i := sort.Search(len(t), func(i int) bool { return t[i].addr > addr }) - 1
	if i < 0 {
		return symbol{}, false
	}
	s := t[i]
	if s.size > 0 && addr >= s.addr+s.size {
		return symbol{}, false
	}
	return s, true
}

// sortDedup sorts by address and keeps one symbol per address: aliases
// abound (getpid, __getpid, __GI___getpid), so prefer one with a size, then
// the public-looking name (fewest leading underscores).
func (t symtab) sortDedup() symtab {
	sort.SliceStable(t, func(i, j int) bool { return t[i].addr < t[j].addr })
	better := func(a, b symbol) bool {
		if (a.size > 0) != (b.size > 0) {
			return a.size > 0
		}
		return underscores(a.name) < underscores(b.name)
	}
	out := t[:0]
	for _, s := range t {
		if n := len(out); n > 0 && out[n-1].addr == s.addr {
			if better(s, out[n-1]) {
				out[n-1] = s
			}
			continue
		}
		out = append(out, s)
	}
	return out
}

func underscores(name string) int {
	n := 0
	for n < len(name) && name[n] == '_' {
		n++
	}
	return n
}

type loadSegment struct {
	off, vaddr, filesz uint64
}

// File is the symbol information of one ELF file, loaded once and cached.
type File struct {
	BuildID   string // hex GNU build id
	GoBuildID string
	HTLHash   string // the eBPF profiler's file id (profiles.HTLHash)
	loads     []loadSegment
	syms      symtab
	gotab     *gosym.Table
	// goinl expands Go inlining (nil: line table older than go1.20, or
	// its funcdata not found).
	goinl *goInline
	// bytes estimates the memory the symbol tables take (the cache's
	// byte budget counts it).
	bytes int64
}

// Costs of the estimate: a symbol's struct (its name is counted by
// length); a Go function as gosym keeps it (Func, Sym, entry, name).
const (
	symbolCost = int64(unsafe.Sizeof(symbol{}))
	goFuncCost = 160
)

// OpenFile reads the symbols of the ELF file at path: .symtab and .dynsym,
// and for Go binaries the .gopclntab (found by its magic when the section
// headers are gone).
func OpenFile(path string) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	ef, err := openELF(fh)
	if ef != nil {
		ef.HTLHash, _ = profiles.HTLHashOf(fh)
	}
	return ef, err
}

// openELF reads an ELF file from r. The files are the profiled processes'
// (any content at all); debug/elf has panicked on malformed input before,
// and a malformed binary must cost its symbols, never the collector.
func openELF(r io.ReaderAt) (ef *File, err error) {
	defer func() {
		if p := recover(); p != nil {
			ef, err = nil, fmt.Errorf("malformed ELF file: %v", p)
		}
	}()
	f, err := elf.NewFile(r)
	if err != nil {
		return nil, err
	}
	return newFile(f)
}

func newFile(f *elf.File) (*File, error) {
	ef := &File{}
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD {
			ef.loads = append(ef.loads, loadSegment{off: p.Off, vaddr: p.Vaddr, filesz: p.Filesz})
		}
	}
	ef.BuildID, ef.GoBuildID = buildid.Read(f)

	var syms symtab
	var runtimeText, gofuncSym uint64
	extra, _ := extraSymbols(f, ef.BuildID, DebugRoot)
	for _, load := range []func() ([]elf.Symbol, error){f.Symbols, f.DynamicSymbols, func() ([]elf.Symbol, error) { return extra, nil }} {
		list, err := load()
		if err != nil && !errors.Is(err, elf.ErrNoSymbols) {
			continue
		}
		for _, s := range list {
			t := elf.ST_TYPE(s.Info)
			switch s.Name {
			case "runtime.text":
				runtimeText = s.Value
			case "go:func.*", "go.func.*":
				gofuncSym = s.Value
			}
			if (t != elf.STT_FUNC && t != elf.STT_GNU_IFUNC) || s.Value == 0 || s.Section == elf.SHN_UNDEF {
				continue
			}
			name := s.Name
			if i := strings.IndexByte(name, '@'); i > 0 { // versioned dynsym: memcpy@@GLIBC_2.14
				name = name[:i]
			}
			syms = append(syms, symbol{addr: s.Value, size: s.Size, name: name})
		}
	}
	ef.syms = syms.sortDedup()

	if tab, pcln, pclnAddr, textStart, err := goTable(f, runtimeText); err == nil {
		ef.gotab = tab
		for i := range tab.Funcs {
			ef.bytes += goFuncCost + int64(len(tab.Funcs[i].Name))
		}
		var extraBytes int64
		ef.goinl, extraBytes = newGoInline(f, pcln, pclnAddr, textStart, gofuncSym)
		ef.bytes += extraBytes
	}
	for _, sym := range ef.syms {
		ef.bytes += symbolCost + int64(len(sym.name))
	}
	if len(ef.syms) == 0 && ef.gotab == nil {
		return ef, errors.New("no symbols (.symtab, .dynsym or .gopclntab)")
	}
	return ef, nil
}

// IsGo reports whether the file has a Go line table.
func (f *File) IsGo() bool { return f.gotab != nil }

// vaddr translates a file offset into the ELF virtual address space, which
// is how the load bias of PIE executables and shared libraries is removed.
func (f *File) vaddr(fileOff uint64) uint64 {
	for _, l := range f.loads {
		if fileOff >= l.off && fileOff < l.off+l.filesz {
			return fileOff - l.off + l.vaddr
		}
	}
	return fileOff
}

// Lookup symbolizes an ELF virtual address into the function that holds
// the code there, the physical one: for Go code inlined there, the
// function it was inlined into, at the line of the (outermost) call. ok is
// false when no symbol covers it.
func (f *File) Lookup(vaddr uint64) (fr profiles.Frame, ok bool) {
	frames := f.AppendFrames(nil, vaddr)
	if len(frames) == 0 {
		return profiles.Frame{}, false
	}
	return frames[len(frames)-1], true
}

// AppendFrames appends the frames at an ELF virtual address to dst,
// innermost first, as the Go runtime's tracebacks and pprof show them:
// each Go function inlined there with its own file:line, then the function
// they were inlined into at the line of the call. One frame for code
// without inlining; none when no symbol covers vaddr.
func (f *File) AppendFrames(dst []profiles.Frame, vaddr uint64) []profiles.Frame {
	if f.gotab != nil {
		if fn := f.gotab.PCToFunc(vaddr); fn != nil {
			return f.appendGoFrames(dst, fn, vaddr)
		}
	}
	s, ok := f.syms.lookup(vaddr)
	if !ok {
		return dst
	}
	fr := profiles.Frame{Function: s.name, Type: profiles.FrameNative}
	if d := demangled(s.name); d != s.name {
		fr.Function, fr.SystemName = d, s.name
	}
	return append(dst, fr)
}

func (f *File) appendGoFrames(dst []profiles.Frame, fn *gosym.Func, pc uint64) []profiles.Frame {
	goFrame := func(name string, pc uint64) profiles.Frame {
		file, line, _ := f.gotab.PCToLine(pc)
		return profiles.Frame{Function: name, File: file, Line: int64(line), Type: profiles.FrameGo}
	}
	if f.goinl != nil {
		var buf [8]inlCall
		calls, outer, ok := f.goinl.inlined(buf[:0], pc)
		if ok {
			for _, c := range calls {
				dst = append(dst, goFrame(c.name, c.pc))
			}
			return append(dst, goFrame(fn.Name, outer))
		}
	}
	// Without the inline tree, the line table's file:line at pc may be
	// that of a function inlined there: never pair it with this
	// function's name. Keep this function's own file (that of its entry)
	// and no line when the file differs.
	fr := goFrame(fn.Name, pc)
	if file, _, _ := f.gotab.PCToLine(fn.Entry); file != fr.File {
		fr.File, fr.Line = file, 0
	}
	return append(dst, fr)
}

// demangled returns the readable form of a C++ or Rust symbol without
// parameter lists (the mangled name is kept as the system name).
func demangled(name string) string {
	if !strings.HasPrefix(name, "_Z") && !strings.HasPrefix(name, "_R") {
		return name
	}
	return demangle.Filter(name, demangle.NoParams)
}

// Go line table magics, newest first (go1.20+, 1.18, 1.16, 1.2).
var goPclntabMagics = []uint32{0xfffffff1, 0xfffffff0, 0xfffffffa, 0xfffffffb}

// goTable reads the Go line table; it returns the table's bytes, address
// and text start (the base of its function entries) too.
func goTable(f *elf.File, runtimeText uint64) (tab *gosym.Table, pclntab []byte, addr, textStart uint64, err error) {
	if s := f.Section(".gopclntab"); s != nil {
		data, err := s.Data()
		if err != nil {
			return nil, nil, 0, 0, err
		}
		pclntab, addr = data, s.Addr
	} else {
		pclntab, addr = findPclntab(f)
	}
	if pclntab == nil {
		return nil, nil, 0, 0, errors.New("no Go line table")
	}
	textStart = runtimeText
	if textStart == 0 {
		if s := f.Section(".text"); s != nil {
			textStart = s.Addr
		}
	}
	if textStart == 0 {
		textStart = headerTextStart(pclntab)
	}
	tab, err = gosym.NewTable(nil, gosym.NewLineTable(pclntab, textStart))
	return tab, pclntab, addr, textStart, err
}

// findPclntab searches the loaded segments for the line table header: the
// section headers of a stripped binary may be gone, the table never is
// (the Go runtime needs it).
func findPclntab(f *elf.File) ([]byte, uint64) {
	for _, p := range f.Progs {
		if p.Type != elf.PT_LOAD || p.Flags&elf.PF_X != 0 {
			continue
		}
		data, err := io.ReadAll(p.Open())
		if err != nil {
			continue
		}
		for _, magic := range goPclntabMagics {
			var m [4]byte
			binary.LittleEndian.PutUint32(m[:], magic)
			for off := 0; ; {
				i := bytes.Index(data[off:], m[:])
				if i < 0 {
					break
				}
				at := off + i
				if at%8 == 0 && validPclnHeader(data[at:]) {
					return data[at:], p.Vaddr + uint64(at)
				}
				off = at + 1
			}
		}
	}
	return nil, 0
}

func validPclnHeader(b []byte) bool {
	if len(b) < 16 || b[4] != 0 || b[5] != 0 {
		return false
	}
	minLC, ptrSize := b[6], b[7]
	return (minLC == 1 || minLC == 2 || minLC == 4) && (ptrSize == 4 || ptrSize == 8)
}

// headerTextStart reads runtime.text from a go1.18+ header (magic, pad,
// minLC, ptrSize, nfunc, nfiles, textStart).
func headerTextStart(b []byte) uint64 {
	if len(b) < 32 {
		return 0
	}
	magic := binary.LittleEndian.Uint32(b)
	if magic != 0xfffffff1 && magic != 0xfffffff0 || b[7] != 8 {
		return 0
	}
	return binary.LittleEndian.Uint64(b[24:])
}

func (f *File) String() string {
	return fmt.Sprintf("elf(build_id=%s, symbols=%d, go=%t)", f.BuildID, len(f.syms), f.gotab != nil)
}
