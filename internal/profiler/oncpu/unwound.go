//go:build linux

package oncpu

import (
	"github.com/contprof/contprof/internal/profiler/stackprof"
	"github.com/contprof/contprof/internal/profiler/unwind"
)

// unwinding is the part of the sampler that reads stack snapshots from the
// ring buffer and unwinds them in user space (Options.FramePointersOnly
// unset): it produces the samples' user stacks for the runtime. Samples are
// counted in pending until the next collection.
type unwinding struct {
	*stackprof.Unwinding
	p       *stackprof.Profiler[Count]
	pending stackprof.Pending[Count]
}

func (k *kernel) startUnwinding(p *stackprof.Profiler[Count], maxFrames int) error {
	uw := &unwinding{p: p}
	u, err := stackprof.StartUnwinding(k.objs.Events, maxFrames, uw.handle)
	if err != nil {
		return err
	}
	uw.Unwinding, k.uw, k.Unwinding = u, uw, u
	return nil
}

// handle unwinds one snapshot and counts it.
func (uw *unwinding) handle(u *stackprof.Unwinding, raw []byte) {
	ev, err := unwind.DecodeStackEvent(raw)
	if err != nil || !u.Wants(ev.PID) {
		return
	}
	st := u.Stack(ev.PID, &ev)
	st.Python = uw.p.PythonStack(ev.PID, ev.PyStack) // now: py_stacks is an LRU
	uw.pending.Add(ev.PID, st, 1)
}
