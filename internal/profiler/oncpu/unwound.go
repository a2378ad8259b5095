//go:build linux

package oncpu

import (
	"errors"
	"os"
	"sync"

	"github.com/cilium/ebpf/ringbuf"

	"github.com/contprof/contprof/internal/profiler/stackprof"
	"github.com/contprof/contprof/internal/profiler/unwind"
)

// unwinding is the part of the sampler that reads stack snapshots from the
// ring buffer and unwinds them in user space (Options.FramePointersOnly
// unset): it produces the samples' user stacks for the runtime. Samples are
// counted in pending until the next collection.
type unwinding struct {
	p    *stackprof.Profiler[Count]
	unw  *unwind.Unwinder
	rd   *ringbuf.Reader
	done chan struct{}

	mu      sync.Mutex
	pending map[uint32]map[string]*unwound
}

type unwound struct {
	st stackprof.Stack
	n  Count
}

func (k *kernel) startUnwinding(p *stackprof.Profiler[Count], maxFrames int) error {
	rd, err := ringbuf.NewReader(k.objs.Events)
	if err != nil {
		return err
	}
	k.uw = &unwinding{
		p:       p,
		unw:     unwind.New(unwind.Options{MaxFrames: maxFrames}),
		rd:      rd,
		done:    make(chan struct{}),
		pending: map[uint32]map[string]*unwound{},
	}
	go k.uw.read()
	return nil
}

// stop ends the reader and the unwinder.
func (uw *unwinding) stop() error {
	err := uw.rd.Close()
	<-uw.done
	return errors.Join(err, uw.unw.Close())
}

func (uw *unwinding) read() {
	defer close(uw.done)
	var rec ringbuf.Record
	for {
		if err := uw.rd.ReadInto(&rec); err != nil {
			if errors.Is(err, os.ErrClosed) || errors.Is(err, ringbuf.ErrClosed) {
				return
			}
			continue
		}
		ev, err := unwind.DecodeStackEvent(rec.RawSample)
		if err != nil || !uw.p.Wants(ev.PID) {
			continue
		}
		st := stackprof.Stack{Kernel: ev.Kernel, KernelLost: ev.KernelErr}
		if !ev.NoUser {
			u := uw.unw.Unwind(int(ev.PID), &ev.User)
			st.User, st.Truncated = u.PCs, u.Truncated
		}
		key := st.Key()
		uw.mu.Lock()
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
		uw.mu.Unlock()
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
