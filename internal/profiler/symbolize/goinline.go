//go:build linux

package symbolize

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"io"
)

// goInline reads the inline trees of a go1.20+ line table, as the runtime
// does for its own tracebacks (runtime/symtabinl.go): per function, the
// PCDATA table _PCDATA_InlTreeIndex gives at each pc the index of the
// innermost inlined call in the FUNCDATA _FUNCDATA_InlTree, whose entries
// name the inlined function and the pc (parentPc) of the call site in the
// caller. debug/gosym knows none of it: its PCToLine gives the innermost
// inlined function's file:line with the outer function's name.
type goInline struct {
	bo        binary.ByteOrder
	quantum   uint64 // pc quantum (minLC)
	textStart uint64
	nfunc     int
	funcnames []byte
	pctab     []byte
	// ftab is the function table, nfunc+1 (entryOff, funcOff) uint32
	// pairs, followed by the _func structs; funcOff is relative to it.
	ftab []byte
	// gofunc is the funcdata area (moduledata.gofunc, the symbol
	// go:func.*) on: the funcdata offsets of _func are relative to it.
	gofunc []byte
}

// go1.20+ layout (runtime/runtime2.go _func, runtime/symtabinl.go
// inlinedCall, internal/abi/symtab.go).
const (
	go120Magic           = 0xfffffff1
	funcHeaderSize       = 44 // _func up to its pcdata array
	funcNpcdataOff       = 28
	funcNfuncdataOff     = 43
	pcdataInlTreeIndex   = 2
	funcdataInlTree      = 3
	inlinedCallSize      = 16
	inlinedCallNameOff   = 4
	inlinedCallParentOff = 8
	// maxInlineDepth bounds the walk up a (malformed, cyclic) tree.
	maxInlineDepth = 256
	// moduledata words (runtime/symtab.go): pcHeader, funcnametab
	// (ptr, len, cap), ..., text at 22, gofunc at 40 since go1.20.
	mdFuncnametab = 1
	mdText        = 22
	mdGofunc      = 40
)

// newGoInline reads the header of the line table pcln, loaded at pclnAddr
// (its function entries are offsets from textStart: since go1.26 the
// header's own field is 0), and locates its funcdata area: at the symbol go:func.* when the binary
// has it (gofuncSym), else through runtime.firstmoduledata, found by
// scanning the writable data for the pointer to the line table. nil when
// the table is not go1.20+ or the area cannot be found.
func newGoInline(f *elf.File, pcln []byte, pclnAddr, textStart, gofuncSym uint64) (*goInline, int64) {
	if len(pcln) < 8 || f.ByteOrder.Uint32(pcln) != go120Magic {
		return nil, 0
	}
	ptrSize := int(pcln[7])
	if ptrSize != 4 && ptrSize != 8 || pcln[6] == 0 {
		return nil, 0
	}
	bo := f.ByteOrder
	word := func(b []byte, i int) (uint64, bool) {
		off := i * ptrSize
		if off < 0 || off+ptrSize > len(b) {
			return 0, false
		}
		if ptrSize == 4 {
			return uint64(bo.Uint32(b[off:])), true
		}
		return bo.Uint64(b[off:]), true
	}
	// Header: magic, pads, minLC, ptrSize, then words nfunc, nfiles,
	// textStart, funcnameOffset, cuOffset, filetabOffset, pctabOffset,
	// pclnOffset.
	hdr := pcln[8:]
	var h [8]uint64
	for i := range h {
		v, ok := word(hdr, i)
		if !ok {
			return nil, 0
		}
		h[i] = v
	}
	nfunc, funcnameOff, pctabOff, ftabOff := h[0], h[3], h[6], h[7]
	n := uint64(len(pcln))
	if textStart == 0 || funcnameOff >= n || pctabOff >= n || ftabOff >= n || nfunc == 0 || nfunc > (n-ftabOff)/8 {
		return nil, 0
	}
	g := &goInline{
		bo:        bo,
		quantum:   uint64(pcln[6]),
		textStart: textStart,
		nfunc:     int(nfunc),
		funcnames: pcln[funcnameOff:],
		pctab:     pcln[pctabOff:],
		ftab:      pcln[ftabOff:],
	}

	gofunc := gofuncSym
	if gofunc == 0 {
		gofunc = findGofunc(f, pclnAddr, funcnameOff, textStart, ptrSize, word)
	}
	if gofunc == 0 {
		return nil, 0
	}
	// Since go1.22 the funcdata are part of the line table's section;
	// before, they are in .rodata and are copied (and counted).
	if gofunc >= pclnAddr && gofunc-pclnAddr < n {
		g.gofunc = pcln[gofunc-pclnAddr:]
		return g, 0
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD && gofunc >= p.Vaddr && gofunc-p.Vaddr < p.Filesz {
			data := make([]byte, p.Filesz-(gofunc-p.Vaddr))
			if _, err := p.ReadAt(data, int64(gofunc-p.Vaddr)); err != nil && err != io.EOF {
				return nil, 0
			}
			g.gofunc = data
			return g, int64(len(data))
		}
	}
	return nil, 0
}

// findGofunc finds moduledata.gofunc in a binary without symbols:
// runtime.firstmoduledata starts with the pointer to the line table, then
// funcnametab's data pointer, and holds runtime.text at word 22 (the same
// way the OpenTelemetry eBPF profiler locates it).
func findGofunc(f *elf.File, pclnAddr, funcnameOff, textStart uint64, ptrSize int, word func([]byte, int) (uint64, bool)) uint64 {
	var needle [8]byte
	if ptrSize == 4 {
		f.ByteOrder.PutUint32(needle[:], uint32(pclnAddr))
	} else {
		f.ByteOrder.PutUint64(needle[:], pclnAddr)
	}
	for _, p := range f.Progs {
		if p.Type != elf.PT_LOAD || p.Flags&elf.PF_W == 0 || p.Filesz == 0 {
			continue
		}
		data, err := io.ReadAll(p.Open())
		if err != nil {
			continue
		}
		for off := 0; off < len(data); {
			i := bytes.Index(data[off:], needle[:ptrSize])
			if i < 0 {
				break
			}
			at := off + i
			off = at + 1
			if at%ptrSize != 0 {
				continue
			}
			md := data[at:]
			names, ok1 := word(md, mdFuncnametab)
			text, ok2 := word(md, mdText)
			gofunc, ok3 := word(md, mdGofunc)
			if ok1 && ok2 && ok3 && names == pclnAddr+funcnameOff && text == textStart && gofunc != 0 {
				return gofunc
			}
		}
	}
	return 0
}

// inlCall is one frame of an inline expansion: the function and the pc
// whose file:line is that frame's.
type inlCall struct {
	name string
	pc   uint64
}

// inlined appends to dst the calls inlined at pc, innermost first, each
// with the pc of its position: pc itself for the innermost, for the others
// the call site in their caller. outer is the pc of the physical
// function's position: the outermost call site, or pc itself when nothing
// is inlined there (then nothing is appended). ok is false when pc is in no
// function or the tables are malformed; dst is then returned as it was.
func (g *goInline) inlined(dst []inlCall, pc uint64) (_ []inlCall, outer uint64, ok bool) {
	fn, entry, ok := g.findFunc(pc)
	if !ok {
		return dst, pc, false
	}
	npcdata, ok1 := g.u32(g.ftab, fn+funcNpcdataOff)
	nfuncdata, ok2 := g.u8(g.ftab, fn+funcNfuncdataOff)
	if !ok1 || !ok2 {
		return dst, pc, false
	}
	if npcdata <= pcdataInlTreeIndex || nfuncdata <= funcdataInlTree {
		return dst, pc, true // nothing inlined in this function
	}
	table, ok1 := g.u32(g.ftab, fn+funcHeaderSize+4*pcdataInlTreeIndex)
	tree, ok2 := g.u32(g.ftab, fn+funcHeaderSize+4*uint64(npcdata)+4*funcdataInlTree)
	if !ok1 || !ok2 {
		return dst, pc, false
	}
	if table == 0 || tree == ^uint32(0) {
		return dst, pc, true
	}
	n := len(dst)
	for depth := 0; depth < maxInlineDepth; depth++ {
		idx := g.pcvalue(table, entry, pc)
		if idx < 0 { // -1: the physical function's own code
			return dst, pc, true
		}
		call := uint64(tree) + uint64(idx)*inlinedCallSize
		nameOff, ok1 := g.u32(g.gofunc, call+inlinedCallNameOff)
		parentPc, ok2 := g.u32(g.gofunc, call+inlinedCallParentOff)
		name, ok3 := g.funcName(nameOff)
		if !ok1 || !ok2 || !ok3 {
			break
		}
		dst = append(dst, inlCall{name: name, pc: pc})
		pc = entry + uint64(parentPc)
	}
	return dst[:n], 0, false
}

// findFunc returns the offset of the _func covering pc in ftab, and its
// entry.
func (g *goInline) findFunc(pc uint64) (fn, entry uint64, ok bool) {
	if pc < g.textStart || pc-g.textStart > 0xffffffff {
		return 0, 0, false
	}
	off := uint32(pc - g.textStart)
	// The last entry (nfunc) is the end of the text; search [0, nfunc).
	lo, hi := 0, g.nfunc
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		e, _ := g.u32(g.ftab, uint64(mid)*8)
		if e <= off {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	i := lo - 1
	if i < 0 {
		return 0, 0, false
	}
	end, ok1 := g.u32(g.ftab, uint64(i+1)*8)
	funcOff, ok2 := g.u32(g.ftab, uint64(i)*8+4)
	entryOff, ok3 := g.u32(g.ftab, uint64(funcOff))
	if !ok1 || !ok2 || !ok3 || off >= end {
		return 0, 0, false
	}
	return uint64(funcOff), g.textStart + uint64(entryOff), true
}

// pcvalue decodes the pc-value table at off in pctab (runtime.pcvalue):
// pairs of zig-zag value delta and pc delta (in quanta) from the entry,
// value -1 before the first. -1 when target is not covered.
func (g *goInline) pcvalue(off uint32, entry, target uint64) int32 {
	if uint64(off) >= uint64(len(g.pctab)) {
		return -1
	}
	p := g.pctab[off:]
	pc, val := entry, int32(-1)
	for first := true; ; first = false {
		uvdelta, n := binary.Uvarint(p)
		if n <= 0 || uvdelta == 0 && !first {
			return -1
		}
		p = p[n:]
		d := uint32(uvdelta)
		val += int32(-(d & 1) ^ (d >> 1))
		pcdelta, n := binary.Uvarint(p)
		if n <= 0 {
			return -1
		}
		p = p[n:]
		pc += pcdelta * g.quantum
		if target < pc {
			return val
		}
	}
}

func (g *goInline) funcName(off uint32) (string, bool) {
	if uint64(off) >= uint64(len(g.funcnames)) {
		return "", false
	}
	b := g.funcnames[off:]
	end := bytes.IndexByte(b, 0)
	if end <= 0 {
		return "", false
	}
	return string(b[:end]), true
}

func (g *goInline) u32(b []byte, off uint64) (uint32, bool) {
	if off > uint64(len(b)) || uint64(len(b))-off < 4 {
		return 0, false
	}
	return g.bo.Uint32(b[off:]), true
}

func (g *goInline) u8(b []byte, off uint64) (uint8, bool) {
	if off >= uint64(len(b)) {
		return 0, false
	}
	return b[off], true
}
