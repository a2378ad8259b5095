//go:build linux

package oncpu

import (
	"errors"
	"sync"

	"github.com/contprof/contprof/internal/profiler/stackprof"
	"github.com/contprof/contprof/internal/profiler/unwind"
)

// unwinding is the part of the sampler that reads stack snapshots from the
// ring buffer and unwinds them in user space (Options.FramePointersOnly
// unset): it produces the samples' user stacks for the runtime. Samples are
// counted in pending until the next collection.
type unwinding struct {
	p   *stackprof.Profiler[Count]
	unw *unwind.Unwinder
	rd  *unwind.EventReader

	mu      sync.Mutex
	pending map[uint32]map[string]*unwound
}

type unwound struct {
	st stackprof.Stack
	n  Count
}

func (k *kernel) startUnwinding(p *stackprof.Profiler[Count], maxFrames int) error {
	uw := &unwinding{
		p:       p,
		unw:     unwind.New(unwind.Options{MaxFrames: maxFrames}),
		pending: map[uint32]map[string]*unwound{},
	}
	rd, err := unwind.NewEventReader(k.objs.Events, uw.handle)
	if err != nil {
		return errors.Join(err, uw.unw.Close())
	}
	uw.rd, k.uw = rd, uw
	return nil
}

// stop ends the reader and the unwinder.
func (uw *unwinding) stop() error {
	return errors.Join(uw.rd.Close(), uw.unw.Close())
}

// handle unwinds one snapshot and counts it.
func (uw *unwinding) handle(raw []byte) {
	ev, err := unwind.DecodeStackEvent(raw)
	if err != nil || !uw.p.Wants(ev.PID) {
		return
	}
	st := stackprof.Stack{Kernel: ev.Kernel, KernelLost: ev.KernelErr}
	if !ev.NoUser {
		u := uw.unw.Unwind(int(ev.PID), &ev.User)
		st.User, st.Truncated = u.PCs, u.Truncated
	}
	key := st.Key()
	uw.mu.Lock()
	defer uw.mu.Unlock()
	acc := uw.pending[ev.PID]
	if acc == nil {
		acc = map[string]*unwound{}
		uw.pending[ev.PID] = acc
	}
	if u := acc[key]; u != nil {
		u.n++
	} else {
		acc[key] = &unwound{st: st, n: 1}
	}
}

// collect hands the pending samples to the subscribers.
func (uw *unwinding) collect(c *stackprof.Collection[Count]) {
	uw.mu.Lock()
	pending := uw.pending
	uw.pending = map[uint32]map[string]*unwound{}
	uw.mu.Unlock()
	for pid, acc := range pending {
		for _, u := range acc {
			c.Add(pid, u.st, u.n)
		}
	}
}

func (uw *unwinding) forget(tgid uint32) {
	uw.unw.Forget(int(tgid))
	uw.mu.Lock()
	delete(uw.pending, tgid)
	uw.mu.Unlock()
}
