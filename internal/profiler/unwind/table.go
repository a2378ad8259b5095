//go:build linux

package unwind

import (
	"debug/elf"
	"errors"
	"fmt"
	"sort"
	"unsafe"
)

// Table is the compact unwind table of one ELF file: for every PC range of
// its code, how to find the caller's frame. Addresses are ELF virtual
// addresses (before the load bias). A Table is immutable and shared by all
// processes that map the file.
type Table struct {
	base  uint64
	pcs   []uint32 // row start, as offset from base; ascending
	rules []rule
	// GoFramePointers is set for Go executables: Go keeps frame pointers
	// on amd64, and its .debug_frame does not describe the stack switches
	// of cgo calls, so Go code is unwound by frame pointer; only the C code
	// linked in (cgo), which .eh_frame describes, is in the table.
	GoFramePointers bool
}

// Rows is the number of table rows.
func (t *Table) Rows() int { return len(t.pcs) }

// Bytes is the memory held by the table.
func (t *Table) Bytes() int {
	return int(unsafe.Sizeof(*t)) + cap(t.pcs)*4 + cap(t.rules)*int(unsafe.Sizeof(rule{}))
}

// lookup returns the rule for vaddr; ok is false outside the table.
func (t *Table) lookup(vaddr uint64) (rule, bool) {
	if t == nil || vaddr < t.base || vaddr-t.base >= 1<<32 || len(t.pcs) == 0 {
		return rule{}, false
	}
	off := uint32(vaddr - t.base)
	i := sort.Search(len(t.pcs), func(i int) bool { return t.pcs[i] > off }) - 1
	if i < 0 {
		return rule{}, false
	}
	return t.rules[i], true
}

// BuildFile builds the table of the ELF file at path.
func BuildFile(path string) (*Table, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return Build(f)
}

// Build reads .eh_frame and .debug_frame of f; of Go executables only
// .eh_frame (see GoFramePointers).
func Build(f *elf.File) (*Table, error) {
	if f.Machine != elf.EM_X86_64 {
		return nil, fmt.Errorf("unwind tables: machine %v is not supported", f.Machine)
	}
	goExe := isGo(f)
	sections := []string{".eh_frame", ".debug_frame"}
	if goExe {
		sections = sections[:1]
	}
	type fde struct {
		start, end uint64
		first, n   int // rows[first:first+n]
	}
	var (
		fdes []fde
		all  []cfiRow
		errs []error
	)
	for _, name := range sections {
		sec := f.Section(name)
		if sec == nil || sec.Type == elf.SHT_NOBITS {
			continue
		}
		data, err := sec.Data()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			continue
		}
		err = parseCFI(data, sec.Addr, name == ".eh_frame", func(start, end uint64, rows []cfiRow) {
			fdes = append(fdes, fde{start: start, end: end, first: len(all), n: len(rows)})
			all = append(all, rows...)
		})
		if err != nil {
			// Keep what was read before the error: most of a table beats
			// none, and the frame pointer covers the rest.
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	if len(fdes) == 0 {
		if goExe {
			return &Table{GoFramePointers: true}, nil
		}
		if len(errs) > 0 {
			return nil, errors.Join(errs...)
		}
		return nil, errors.New("no .eh_frame or .debug_frame")
	}
	// .eh_frame first, so on overlap (a debug file has both) it wins.
	sort.SliceStable(fdes, func(i, j int) bool { return fdes[i].start < fdes[j].start })
	t := &Table{base: fdes[0].start, GoFramePointers: goExe}
	t.pcs = make([]uint32, 0, len(all)+len(fdes)/4)
	t.rules = make([]rule, 0, cap(t.pcs))
	add := func(pc uint64, r rule) {
		off := uint32(pc - t.base)
		if n := len(t.pcs); n > 0 {
			if t.pcs[n-1] == off {
				t.rules[n-1] = r
				return
			}
			if t.rules[n-1] == r {
				return
			}
		}
		t.pcs = append(t.pcs, off)
		t.rules = append(t.rules, r)
	}
	var covered uint64 // end of the last FDE taken
	for _, d := range fdes {
		if d.start < covered {
			continue // overlaps one taken already
		}
		if d.end-t.base >= 1<<32 {
			return nil, fmt.Errorf("unwind tables: code spans more than 4 GiB (FDE at %#x)", d.start)
		}
		if covered != 0 && d.start > covered {
			add(covered, rule{kind: kindNone})
		}
		for _, row := range all[d.first : d.first+d.n] {
			if row.pc >= d.start && row.pc < d.end {
				add(row.pc, row.rule)
			}
		}
		covered = d.end
	}
	add(covered, rule{kind: kindNone})
	t.pcs = append([]uint32(nil), t.pcs...)
	t.rules = append([]rule(nil), t.rules...)
	return t, nil
}

func isGo(f *elf.File) bool {
	if f.Section(".gopclntab") != nil || f.Section(".note.go.buildid") != nil {
		return true
	}
	for _, p := range f.Progs {
		if p.Type != elf.PT_NOTE {
			continue
		}
		// Stripped section headers: look for the Go build id note.
		b := make([]byte, min(p.Filesz, 4096))
		if _, err := p.ReadAt(b, 0); err == nil && containsGoNote(b) {
			return true
		}
	}
	return false
}

func containsGoNote(b []byte) bool {
	for i := 0; i+16 <= len(b); i += 4 {
		if string(b[i+12:i+15]) == "Go\x00" && b[i] == 4 && b[i+8] == 4 {
			return true
		}
	}
	return false
}
