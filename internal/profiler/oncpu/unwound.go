//go:build linux

package oncpu

import (
	"errors"
	"os"

	"github.com/cilium/ebpf/ringbuf"

	"github.com/contprof/contprof/internal/profiler/unwind"
)

// unwinding is the part of a Sampler that reads stack snapshots from the
// ring buffer and unwinds them in user space (Options.FramePointersOnly
// unset). Samples are counted in pending until the next collection.
type unwinding struct {
	unw     *unwind.Unwinder
	rd      *ringbuf.Reader
	done    chan struct{}
	pending map[uint32]map[string]*RawSample // guarded by Sampler.mu
}

func (s *Sampler) startUnwinding() error {
	rd, err := ringbuf.NewReader(s.objs.Events)
	if err != nil {
		return err
	}
	s.uw = &unwinding{
		unw:     unwind.New(unwind.Options{MaxFrames: s.maxFrames}),
		rd:      rd,
		done:    make(chan struct{}),
		pending: map[uint32]map[string]*RawSample{},
	}
	go s.readEvents(s.uw)
	return nil
}

// stop ends the reader and the unwinder. Called without s.mu held: the
// reader may be waiting for it.
func (uw *unwinding) stop() error {
	err := uw.rd.Close()
	<-uw.done
	return errors.Join(err, uw.unw.Close())
}

func (s *Sampler) readEvents(uw *unwinding) {
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
		if err != nil {
			continue
		}
		if !s.lockOpen() {
			return
		}
		wanted := len(s.subs[ev.PID]) > 0
		s.mu.Unlock()
		if !wanted {
			continue
		}
		var user []uint64
		truncated := false
		if !ev.NoUser {
			st := uw.unw.Unwind(int(ev.PID), &ev.User)
			user, truncated = st.PCs, st.Truncated
		}
		key := stackKey(user, ev.Kernel, false)
		if truncated {
			key += "T"
		}
		if !s.lockOpen() {
			return
		}
		acc := uw.pending[ev.PID]
		if acc == nil {
			acc = map[string]*RawSample{}
			uw.pending[ev.PID] = acc
		}
		if rs := acc[key]; rs != nil {
			rs.Count++
		} else {
			acc[key] = &RawSample{User: user, Kernel: ev.Kernel, KernelLost: ev.KernelErr, Truncated: truncated, Count: 1}
		}
		s.mu.Unlock()
	}
}

// lockOpen locks s.mu unless the sampler is closed.
func (s *Sampler) lockOpen() bool {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return false
	}
	return true
}

// collectUnwoundLocked hands the pending samples to the subscribers.
func (s *Sampler) collectUnwoundLocked() {
	for pid, acc := range s.uw.pending {
		for key, rs := range acc {
			for _, sub := range s.subs[pid] {
				if cur := sub.acc[key]; cur != nil {
					cur.Count += rs.Count
				} else {
					cp := *rs
					sub.acc[key] = &cp
				}
			}
		}
	}
	s.uw.pending = map[uint32]map[string]*RawSample{}
}
