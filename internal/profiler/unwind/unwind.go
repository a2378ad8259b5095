//go:build linux

// Package unwind walks user stacks without frame pointers. The BPF programs
// copy, at sample time, the user registers and the top of the user stack
// (perf's approach); this package unwinds that copy in user space with the
// DWARF call frame information (.eh_frame, .debug_frame) of every mapped
// ELF file, falling back to the frame pointer where no FDE covers a PC, and
// for Go code (which keeps frame pointers). When the walk leaves the copy
// because the code switched stacks (Go calling C through cgo runs C on the
// system stack), it continues on the frame-pointer chain the BPF program
// read beyond the copy.
//
// Unwind tables are built once per ELF file (shared by build id or file
// identity across processes), by one background worker so that no task
// waits for them, bounded in total memory, and dropped when the last
// process that maps the file is forgotten.
package unwind

import (
	"encoding/binary"
)

// DefaultMaxFrames is how many user frames Unwind returns at most.
const DefaultMaxFrames = 127

// Link is one frame of a frame-pointer chain: the frame pointer and the
// return address stored next to it.
type Link struct {
	FP, RA uint64
}

// Snapshot is the user state of a thread at sample time.
type Snapshot struct {
	IP, SP, BP uint64
	// Stack is a copy of user memory from SP upwards.
	Stack []byte
	// StackCut is set when the copy ended at its size limit rather than
	// at the end of the stack mapping.
	StackCut bool
	// Chain is the frame-pointer chain read from BP when BP pointed
	// outside the copy (another stack), oldest last.
	Chain []Link
}

func (s *Snapshot) read(addr uint64) (uint64, bool) {
	if addr < s.SP || addr-s.SP > uint64(len(s.Stack)) || addr-s.SP+8 > uint64(len(s.Stack)) {
		return 0, false
	}
	return binary.LittleEndian.Uint64(s.Stack[addr-s.SP:]), true
}

// Stack is the result of an unwind.
type Stack struct {
	// PCs are leaf first: the sampled IP, then return addresses.
	PCs []uint64
	// Truncated is set when the walk stopped at the frame limit or at the
	// end of a stack copy that was cut, not at the outermost frame.
	Truncated bool
	// FramePointerSteps counts frames unwound by frame pointer (no FDE,
	// Go code or the chain beyond the copy).
	FramePointerSteps int
}

// frameSource finds the unwind rule for a PC of a process: the table of the
// file mapped there and the PC as an ELF virtual address.
type frameSource interface {
	ruleFor(pc uint64) (r rule, mapped bool, goFP bool)
}

// methodSource is a frameSource that can name interpreter frames by the
// method they run (see JITInterpreter).
type methodSource interface {
	methodAt(pc, bp uint64, s *Snapshot) (uint64, bool)
}

// walk unwinds s with the rules of src.
func walk(src frameSource, s *Snapshot, maxFrames int) Stack {
	var out Stack
	pc, sp, bp := s.IP, s.SP, s.BP
	out.PCs = append(out.PCs, pc)
	ms, _ := src.(methodSource)
	for depth := 0; ; depth++ {
		if len(out.PCs) >= maxFrames {
			out.Truncated = true
			return out
		}
		look := pc
		if depth > 0 {
			look-- // a return address: the call is before it
		}
		if ms != nil {
			// An interpreter frame: the method it runs stands for it
			// (bp is this frame's pointer).
			if m, ok := ms.methodAt(look, bp, s); ok {
				out.PCs[len(out.PCs)-1] = m
			}
		}
		r, mapped, goFP := src.ruleFor(look)
		if !mapped {
			return out // not code: the walk went astray, or JIT code
		}
		var ra, cfa uint64
		ok := true
		useFP := goFP || r.kind == kindNone || r.kind == kindUnknown
		switch {
		case r.kind == kindEnd && !goFP:
			return out
		case useFP:
			if bp == 0 {
				return out
			}
			if ra, ok = s.read(bp + 8); !ok {
				break
			}
			var next uint64
			if next, ok = s.read(bp); !ok {
				break
			}
			if bp+16 <= sp && depth > 0 {
				return out // frame pointers must go up the stack
			}
			sp, bp = bp+16, next
			out.FramePointerSteps++
			if ra == 0 {
				return out
			}
			pc = ra
			out.PCs = append(out.PCs, pc)
			continue
		case r.kind == kindRSP:
			cfa = sp + uint64(int64(r.cfa))
		case r.kind == kindRBP:
			cfa = bp + uint64(int64(r.cfa))
		case r.kind == kindPLT:
			cfa = sp + 8
			if look&15 >= uint64(r.cfa) {
				cfa += 8
			}
		}
		if ok {
			ra, ok = s.read(cfa - 8)
			if ok && r.rbp != 0 {
				bp, ok = s.read(cfa + uint64(int64(r.rbp)))
			}
		}
		if !ok {
			// Outside the copy: continue on the frame-pointer chain
			// read beyond it, if it starts at this frame's pointer.
			return spliceChain(out, s, bp, maxFrames)
		}
		if cfa <= sp && depth > 0 {
			return out // the stack must grow towards the caller
		}
		sp = cfa
		if ra == 0 {
			return out
		}
		pc = ra
		out.PCs = append(out.PCs, pc)
	}
}

// spliceChain appends the return addresses of s.Chain from the link whose
// frame pointer is bp, or marks the stack truncated when the copy was cut
// and no chain continues it.
func spliceChain(out Stack, s *Snapshot, bp uint64, maxFrames int) Stack {
	for i, l := range s.Chain {
		if l.FP != bp {
			continue
		}
		for _, l := range s.Chain[i:] {
			if l.RA == 0 {
				return out
			}
			if len(out.PCs) >= maxFrames {
				out.Truncated = true
				return out
			}
			out.PCs = append(out.PCs, l.RA)
			out.FramePointerSteps++
		}
		return out
	}
	if s.StackCut {
		out.Truncated = true
	}
	return out
}
