//go:build linux

package unwind

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// This file reads DWARF call frame information (.eh_frame and .debug_frame)
// and runs each FDE's CFA program to produce the rows of a Table. Only what
// x86-64 stack unwinding needs is kept: how to compute the CFA (from rsp or
// rbp, or the PLT expression), where rbp was saved, and whether the return
// address is undefined (the outermost frame). Other registers are ignored.

// DWARF register numbers on x86-64.
const (
	regRBP = 6
	regRSP = 7
	regRA  = 16
)

// Row kinds: how to find the caller's frame at a PC.
const (
	kindNone    uint8 = iota // no FDE covers the PC: use the frame pointer
	kindRSP                  // CFA = rsp + cfa
	kindRBP                  // CFA = rbp + cfa
	kindPLT                  // CFA = rsp + 8, +8 more when (pc & 15) >= cfa (PLT stubs)
	kindEnd                  // return address undefined: outermost frame
	kindUnknown              // a rule we do not evaluate: use the frame pointer
)

// rule is the unwind state of a row.
type rule struct {
	kind uint8
	cfa  int32 // offset (or PLT threshold)
	rbp  int16 // rbp saved at CFA+rbp; 0: rbp unchanged
}

type cfiRow struct {
	pc uint64
	rule
}

// cie is a parsed Common Information Entry.
type cie struct {
	codeAlign uint64
	dataAlign int64
	raReg     uint64
	ptrEnc    byte // FDE pointer encoding ('R'), eh_frame only
	initial   []byte
	zAug      bool // FDEs carry augmentation data
}

// Pointer encodings of .eh_frame (DW_EH_PE_*).
const (
	peAbsptr  = 0x00
	peULEB    = 0x01
	peUdata2  = 0x02
	peUdata4  = 0x03
	peUdata8  = 0x04
	peSLEB    = 0x09
	peSdata2  = 0x0a
	peSdata4  = 0x0b
	peSdata8  = 0x0c
	pePCRel   = 0x10
	peDataRel = 0x30
	peOmit    = 0xff
)

type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf(format, args...)
	}
	r.off = len(r.b)
}

// take returns the next n bytes, or nil (and the error set) past the end.
func (r *reader) take(n int) []byte {
	if n > len(r.b)-r.off {
		r.fail("truncated at offset %d", r.off)
		return nil
	}
	v := r.b[r.off : r.off+n]
	r.off += n
	return v
}

func (r *reader) u8() byte {
	if b := r.take(1); b != nil {
		return b[0]
	}
	return 0
}

func (r *reader) u16() uint16 {
	if b := r.take(2); b != nil {
		return binary.LittleEndian.Uint16(b)
	}
	return 0
}

func (r *reader) u32() uint32 {
	if b := r.take(4); b != nil {
		return binary.LittleEndian.Uint32(b)
	}
	return 0
}

func (r *reader) u64() uint64 {
	if b := r.take(8); b != nil {
		return binary.LittleEndian.Uint64(b)
	}
	return 0
}

func (r *reader) uleb() uint64 {
	var v uint64
	for shift := uint(0); ; shift += 7 {
		b := r.u8()
		if shift < 64 {
			v |= uint64(b&0x7f) << shift
		}
		if b&0x80 == 0 || r.err != nil {
			return v
		}
	}
}

func (r *reader) sleb() int64 {
	var v int64
	var shift uint
	var b byte
	for {
		b = r.u8()
		if shift < 64 {
			v |= int64(b&0x7f) << shift
		}
		shift += 7
		if b&0x80 == 0 || r.err != nil {
			break
		}
	}
	if shift < 64 && b&0x40 != 0 {
		v |= -1 << shift
	}
	return v
}

func (r *reader) bytes(n uint64) []byte {
	if n > uint64(len(r.b)-r.off) {
		r.fail("truncated at offset %d", r.off)
		return nil
	}
	return r.take(int(n))
}

// ptr reads a pointer in encoding enc; secAddr is the address of the
// section the reader walks (for pc-relative pointers).
func (r *reader) ptr(enc byte, secAddr uint64) uint64 {
	if enc == peOmit {
		return 0
	}
	pos := secAddr + uint64(r.off)
	var v uint64
	switch enc & 0x0f {
	case peAbsptr, peUdata8, peSdata8:
		v = r.u64()
	case peULEB:
		v = r.uleb()
	case peUdata2:
		v = uint64(r.u16())
	case peSdata2:
		v = uint64(int64(int16(r.u16())))
	case peUdata4:
		v = uint64(r.u32())
	case peSdata4:
		v = uint64(int64(int32(r.u32())))
	case peSLEB:
		v = uint64(r.sleb())
	default:
		r.fail("unsupported pointer encoding %#x", enc)
		return 0
	}
	switch enc & 0x70 {
	case 0:
	case pePCRel:
		v += pos
	default:
		// datarel/textrel/funcrel are not used by x86-64 toolchains for
		// FDE ranges.
		r.fail("unsupported pointer application %#x", enc)
	}
	return v
}

// parseCFI walks a .eh_frame (ehFrame true) or .debug_frame section at
// address secAddr and calls emit with the rows of every FDE, in section
// order.
func parseCFI(data []byte, secAddr uint64, ehFrame bool, emit func(start, end uint64, rows []cfiRow)) error {
	cies := map[int]*cie{}
	r := &reader{b: data}
	var rows []cfiRow
	for r.off < len(data) {
		entryStart := r.off
		length := uint64(r.u32())
		if r.err != nil {
			break
		}
		if length == 0 {
			if ehFrame {
				break // terminator
			}
			continue
		}
		is64 := false
		if length == 0xffffffff {
			length, is64 = r.u64(), true
		}
		bodyStart := r.off
		if length > uint64(len(data)-bodyStart) {
			return fmt.Errorf("entry at %#x: length %d past the section end", entryStart, length)
		}
		end := bodyStart + int(length)
		var id uint64
		if is64 {
			id = r.u64()
		} else {
			id = uint64(r.u32())
		}
		isCIE := (ehFrame && id == 0) || (!ehFrame && (id == 0xffffffff || id == 0xffffffffffffffff))
		if isCIE {
			c, err := parseCIE(&reader{b: data[:end], off: r.off}, ehFrame)
			if err != nil {
				return fmt.Errorf("CIE at %#x: %w", entryStart, err)
			}
			cies[entryStart] = c
			r.off = end
			continue
		}
		ciePos := int(id)
		if ehFrame {
			ciePos = bodyStart - int(id) // relative to the CIE pointer field
		}
		c, ok := cies[ciePos]
		if !ok {
			// CIEs normally precede their FDEs; parse out of order if not.
			if ciePos < 0 || ciePos+4 > len(data) {
				return fmt.Errorf("FDE at %#x: CIE offset %#x out of range", entryStart, ciePos)
			}
			cr := &reader{b: data, off: ciePos}
			l := uint64(cr.u32())
			if l == 0xffffffff {
				l = cr.u64()
				cr.u64()
			} else {
				cr.u32()
			}
			if cr.err != nil || l > uint64(len(data)-ciePos) {
				return fmt.Errorf("FDE at %#x: bad CIE at %#x", entryStart, ciePos)
			}
			cr.b = data[:cr.off-8+int(l)+4]
			var err error
			if c, err = parseCIE(cr, ehFrame); err != nil {
				return fmt.Errorf("CIE at %#x: %w", ciePos, err)
			}
			cies[ciePos] = c
		}
		fr := &reader{b: data[:end], off: r.off}
		var start, size uint64
		if ehFrame {
			start = fr.ptr(c.ptrEnc, secAddr)
			size = fr.ptr(c.ptrEnc&0x0f, secAddr)
			if c.zAug {
				fr.bytes(fr.uleb()) // augmentation data (LSDA pointer)
			}
		} else {
			start, size = fr.u64(), fr.u64()
		}
		if fr.err != nil {
			return fmt.Errorf("FDE at %#x: %w", entryStart, fr.err)
		}
		r.off = end
		if start == 0 || size == 0 {
			continue // discarded (e.g. by --gc-sections)
		}
		var err error
		rows, err = runCFA(rows[:0], c, fr.b[fr.off:], start, secAddr)
		if err != nil {
			return fmt.Errorf("FDE %#x-%#x: %w", start, start+size, err)
		}
		emit(start, start+size, rows)
	}
	return r.err
}

func parseCIE(r *reader, ehFrame bool) (*cie, error) {
	c := &cie{ptrEnc: peAbsptr}
	version := r.u8()
	if version != 1 && version != 3 && version != 4 {
		return nil, fmt.Errorf("unsupported CIE version %d", version)
	}
	var aug []byte
	for {
		b := r.u8()
		if b == 0 || r.err != nil {
			break
		}
		aug = append(aug, b)
	}
	if version == 4 {
		if addrSize := r.u8(); addrSize != 8 {
			return nil, fmt.Errorf("address size %d", addrSize)
		}
		r.u8() // segment selector size
	}
	c.codeAlign = r.uleb()
	c.dataAlign = r.sleb()
	if version == 1 {
		c.raReg = uint64(r.u8())
	} else {
		c.raReg = r.uleb()
	}
	if len(aug) > 0 && aug[0] == 'z' {
		c.zAug = true
		augLen := r.uleb()
		ar := &reader{b: r.bytes(augLen)}
		for _, a := range aug[1:] {
			switch a {
			case 'R':
				c.ptrEnc = ar.u8()
			case 'P':
				enc := ar.u8()
				ar.ptr(enc&0x7f, 0) // personality routine: skipped
				ar.err = nil
			case 'L':
				ar.u8() // LSDA encoding; the FDE's augmentation data is skipped whole
			case 'S', 'B', 'G':
			default:
				return nil, fmt.Errorf("unsupported augmentation %q", aug)
			}
		}
	} else if len(aug) > 0 && string(aug) != "eh" {
		return nil, fmt.Errorf("unsupported augmentation %q", aug)
	}
	c.initial = r.b[r.off:]
	if r.err != nil {
		return nil, r.err
	}
	return c, nil
}

// cfaState is the rule of one tracked register during a CFA program.
type cfaState struct {
	cfaReg  uint64
	cfaOff  int64
	cfaExpr []byte
	rbpOff  int64 // 0: same value
	raUndef bool
}

var errSkip = errors.New("skip")

// runCFA executes the CIE's initial instructions and the FDE's instructions
// and appends a row at every location where the rule changes.
func runCFA(rows []cfiRow, c *cie, insns []byte, start, secAddr uint64) ([]cfiRow, error) {
	var st, initial cfaState
	var stack []cfaState
	loc := start
	pushRow := func() {
		row := cfiRow{pc: loc, rule: st.rule(c)}
		if n := len(rows); n > 0 && rows[n-1].pc == loc {
			rows[n-1] = row
			return
		}
		if n := len(rows); n > 0 && rows[n-1].rule == row.rule {
			return
		}
		rows = append(rows, row)
	}
	exec := func(prog []byte, isInitial bool) error {
		r := &reader{b: prog}
		for r.off < len(prog) && r.err == nil {
			op := r.u8()
			switch op >> 6 {
			case 1: // advance_loc
				pushRow()
				loc += uint64(op&0x3f) * c.codeAlign
				continue
			case 2: // offset
				st.setOffset(uint64(op&0x3f), int64(r.uleb())*c.dataAlign)
				continue
			case 3: // restore
				st.restore(uint64(op&0x3f), &initial)
				continue
			}
			switch op {
			case 0x00: // nop
			case 0x01: // set_loc
				pushRow()
				loc = r.ptr(c.ptrEnc, secAddr)
			case 0x02:
				pushRow()
				loc += uint64(r.u8()) * c.codeAlign
			case 0x03:
				pushRow()
				loc += uint64(r.u16()) * c.codeAlign
			case 0x04:
				pushRow()
				loc += uint64(r.u32()) * c.codeAlign
			case 0x05: // offset_extended
				reg := r.uleb()
				st.setOffset(reg, int64(r.uleb())*c.dataAlign)
			case 0x06: // restore_extended
				st.restore(r.uleb(), &initial)
			case 0x07: // undefined
				reg := r.uleb()
				if reg == c.raReg {
					st.raUndef = true
				} else if reg == regRBP {
					st.rbpOff = 0
				}
			case 0x08: // same_value
				if reg := r.uleb(); reg == regRBP {
					st.rbpOff = 0
				}
			case 0x09: // register
				reg := r.uleb()
				r.uleb()
				if reg == regRBP {
					st.rbpOff = 0 // rbp in another register: not tracked
				}
			case 0x0a: // remember_state
				stack = append(stack, st)
			case 0x0b: // restore_state
				if len(stack) == 0 {
					return errors.New("restore_state without remember_state")
				}
				st = stack[len(stack)-1]
				stack = stack[:len(stack)-1]
			case 0x0c: // def_cfa
				st.cfaReg = r.uleb()
				st.cfaOff = int64(r.uleb())
				st.cfaExpr = nil
			case 0x0d: // def_cfa_register
				st.cfaReg = r.uleb()
				st.cfaExpr = nil
			case 0x0e: // def_cfa_offset
				st.cfaOff = int64(r.uleb())
			case 0x0f: // def_cfa_expression
				st.cfaExpr = r.bytes(r.uleb())
			case 0x10: // expression
				reg := r.uleb()
				r.bytes(r.uleb())
				if reg == regRBP {
					st.rbpOff = 0
				}
			case 0x11: // offset_extended_sf
				reg := r.uleb()
				st.setOffset(reg, r.sleb()*c.dataAlign)
			case 0x12: // def_cfa_sf
				st.cfaReg = r.uleb()
				st.cfaOff = r.sleb() * c.dataAlign
				st.cfaExpr = nil
			case 0x13: // def_cfa_offset_sf
				st.cfaOff = r.sleb() * c.dataAlign
			case 0x14: // val_offset
				r.uleb()
				r.uleb()
			case 0x15: // val_offset_sf
				r.uleb()
				r.sleb()
			case 0x16: // val_expression
				r.uleb()
				r.bytes(r.uleb())
			case 0x2e: // GNU_args_size
				r.uleb()
			case 0x2f: // GNU_negative_offset_extended
				reg := r.uleb()
				st.setOffset(reg, -int64(r.uleb())*c.dataAlign)
			default:
				return fmt.Errorf("unsupported CFA instruction %#x", op)
			}
		}
		if isInitial {
			initial = st
		}
		return r.err
	}
	if err := exec(c.initial, true); err != nil {
		return rows, err
	}
	if err := exec(insns, false); err != nil {
		return rows, err
	}
	pushRow()
	return rows, nil
}

func (st *cfaState) setOffset(reg uint64, off int64) {
	if reg == regRBP {
		st.rbpOff = off
	}
}

func (st *cfaState) restore(reg uint64, initial *cfaState) {
	if reg == regRBP {
		st.rbpOff = initial.rbpOff
	}
}

// pltExpr is the CFA expression binutils emits for PLT entries:
// rsp + 8 + ((rip & 15) >= N) << 3. Its threshold N is byte 7 (DW_OP_litN).
var pltExprPrefix = []byte{0x77, 0x08, 0x80, 0x00, 0x3f, 0x1a}

func (st *cfaState) rule(c *cie) rule {
	if st.raUndef {
		return rule{kind: kindEnd}
	}
	var r rule
	switch {
	case st.cfaExpr != nil:
		r.kind = kindUnknown
		e := st.cfaExpr
		if len(e) == 11 && string(e[:6]) == string(pltExprPrefix) && e[6] >= 0x30 && e[6] <= 0x4f && e[7] == 0x2a {
			r.kind, r.cfa = kindPLT, int32(e[6]-0x30)
		}
		return r
	case st.cfaReg == regRSP:
		r.kind = kindRSP
	case st.cfaReg == regRBP:
		r.kind = kindRBP
	default:
		return rule{kind: kindUnknown} // DRAP (CFA in r10): fall back to rbp
	}
	if st.cfaOff < -1<<31 || st.cfaOff >= 1<<31 {
		return rule{kind: kindUnknown}
	}
	r.cfa = int32(st.cfaOff)
	if st.rbpOff >= -1<<15 && st.rbpOff < 1<<15 {
		r.rbp = int16(st.rbpOff)
	}
	return r
}
