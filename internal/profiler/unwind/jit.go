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
