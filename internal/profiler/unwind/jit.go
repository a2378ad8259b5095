//go:build linux

package unwind

import "sync"

// JITFrames describes JIT-compiled code that has no call frame
// information but known frame sizes (HotSpot publishes each compiled
// method's frame size): in such a method's body the caller's frame starts
// at SP+size, with the return address at SP+size-8 and the caller's rbp
// saved at SP+size-16. A runtime integration registers one per process.
type JITFrames interface {
	// FrameSize is the frame size in bytes of the compiled code at pc.
	FrameSize(pc uint64) (size uint64, ok bool)
}

// JITInterpreter is implemented by the JITFrames of a runtime whose
// interpreter keeps frame-pointer frames that say which method they run
// (HotSpot keeps the Method* at rbp-24). For a frame at pc with frame
// pointer bp, InterpretedMethod returns an address standing for the method
// (which the runtime's integration names in the symbolizer); it replaces
// the interpreter's PC in the stack.
type JITInterpreter interface {
	InterpretedMethod(pc, bp uint64, read func(addr uint64) (uint64, bool)) (uint64, bool)
}

var jitFrames sync.Map // pid -> JITFrames

// RegisterJITFrames makes every Unwinder use f for the code of process pid
// that is not in a file; unregister when the process is no longer
// profiled.
func RegisterJITFrames(pid int, f JITFrames) (unregister func()) {
	jitFrames.Store(pid, f)
	return func() { jitFrames.CompareAndDelete(pid, f) }
}

// jitRule is the rule for pc from a registered JITFrames, if any.
func jitRule(pid int, pc uint64) (rule, bool) {
	v, ok := jitFrames.Load(pid)
	if !ok {
		return rule{}, false
	}
	size, ok := v.(JITFrames).FrameSize(pc)
	if !ok || size < 16 || size > 1<<20 {
		return rule{}, false
	}
	return rule{kind: kindRSP, cfa: int32(size), rbp: -16}, true
}

// interpretedMethod is the method address of an interpreter frame of pid,
// from a registered JITInterpreter, if any.
func interpretedMethod(pid int, pc, bp uint64, s *Snapshot) (uint64, bool) {
	v, ok := jitFrames.Load(pid)
	if !ok {
		return 0, false
	}
	ji, ok := v.(JITInterpreter)
	if !ok {
		return 0, false
	}
	return ji.InterpretedMethod(pc, bp, s.read)
}

// methodAt implements methodSource.
func (ps *procSource) methodAt(pc, bp uint64, s *Snapshot) (uint64, bool) {
	return interpretedMethod(ps.pid, pc, bp, s)
}
