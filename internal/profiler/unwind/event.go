//go:build linux

package unwind

import (
	"encoding/binary"
	"fmt"
)

// Layout of struct stack_event and struct block_event (bpf/headers/ustack.h).
const (
	EventStack = 1
	EventBlock = 2

	stackEventHeader = 1600
	chainLinks       = 32
	kernelDepth      = 127
	blockEventSize   = 40

	flagCut       = 1
	flagNoUser    = 2
	flagKernelErr = 4
)

// StackEvent is a decoded stack_event: one sample's kernel stack and user
// snapshot.
type StackEvent struct {
	PID, TID uint32
	// Seq names an off-CPU snapshot in the block event that completes it.
	Seq uint64
	// P16 is the off-CPU recording probability in 1/65536 (0: 1).
	P16 uint32
	// Kernel frames, leaf first.
	Kernel    []uint64
	KernelErr bool
	// NoUser is set for kernel threads: no user stack.
	NoUser bool
	User   Snapshot
	// PyStack names the sample's Python stack in py_stacks (cpython.h);
	// 0: none.
	PyStack uint64
}

// BlockEvent is a decoded block_event: the off-CPU time of the snapshot
// Seq of thread TID.
type BlockEvent struct {
	PID, TID uint32
	Seq      uint64
	NS       uint64 // scaled by 1/p
	Blocks   uint64 // scaled by 1/p
}

// EventKind is the kind of a raw ring buffer record.
func EventKind(raw []byte) uint32 {
	if len(raw) < 4 {
		return 0
	}
	return binary.LittleEndian.Uint32(raw)
}

// DecodeStackEvent decodes a raw stack_event. The snapshot's stack aliases
// raw.
func DecodeStackEvent(raw []byte) (StackEvent, error) {
	le := binary.LittleEndian
	if len(raw) < stackEventHeader || le.Uint32(raw) != EventStack {
		return StackEvent{}, fmt.Errorf("stack event: %d bytes, kind %d", len(raw), EventKind(raw))
	}
	ev := StackEvent{PID: le.Uint32(raw[4:]), TID: le.Uint32(raw[8:]), Seq: le.Uint64(raw[16:]), P16: le.Uint32(raw[24:]), PyStack: le.Uint64(raw[1592:])}
	flags := le.Uint32(raw[12:])
	ev.KernelErr, ev.NoUser = flags&flagKernelErr != 0, flags&flagNoUser != 0
	klen := int(le.Uint32(raw[28:]))
	if klen > kernelDepth {
		return StackEvent{}, fmt.Errorf("stack event: %d kernel frames", klen)
	}
	ev.Kernel = make([]uint64, 0, klen)
	for i := 0; i < klen; i++ {
		ev.Kernel = append(ev.Kernel, le.Uint64(raw[576+8*i:]))
	}
	u := &ev.User
	u.IP, u.SP, u.BP = le.Uint64(raw[32:]), le.Uint64(raw[40:]), le.Uint64(raw[48:])
	ulen, nchain := int(le.Uint32(raw[56:])), int(le.Uint32(raw[60:]))
	if ulen > len(raw)-stackEventHeader || nchain > chainLinks {
		return StackEvent{}, fmt.Errorf("stack event: %d stack bytes in %d, %d links", ulen, len(raw), nchain)
	}
	u.Stack, u.StackCut = raw[stackEventHeader:stackEventHeader+ulen], flags&flagCut != 0
	for i := 0; i < nchain; i++ {
		u.Chain = append(u.Chain, Link{FP: le.Uint64(raw[64+16*i:]), RA: le.Uint64(raw[72+16*i:])})
	}
	return ev, nil
}

// DecodeBlockEvent decodes a raw block_event.
func DecodeBlockEvent(raw []byte) (BlockEvent, error) {
	le := binary.LittleEndian
	if len(raw) < blockEventSize || le.Uint32(raw) != EventBlock {
		return BlockEvent{}, fmt.Errorf("block event: %d bytes, kind %d", len(raw), EventKind(raw))
	}
	return BlockEvent{PID: le.Uint32(raw[4:]), TID: le.Uint32(raw[8:]), Seq: le.Uint64(raw[16:]), NS: le.Uint64(raw[24:]), Blocks: le.Uint64(raw[32:])}, nil
}
