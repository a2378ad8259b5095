//go:build linux

package offcpu

import (
	"sync"
	"time"

	"github.com/cilium/ebpf"

	offcpubpf "github.com/contprof/contprof/bpf/offcpu"
	"github.com/contprof/contprof/internal/profiler/cpython"
	"github.com/contprof/contprof/internal/profiler/stackprof"
	"github.com/contprof/contprof/internal/profiler/unwind"
)

// unwinding is the part of the profiler that reads stack snapshots (sent at
// switch-out) and blocks (sent at switch-in) from the ring buffer and
// unwinds the snapshots of blocks in user space (Options.FramePointersOnly
// unset): it produces the blocks' user stacks for the runtime. A thread has
// at most one snapshot pending, the one of its current or last switch-out;
// short blocks send nothing, and their snapshot is replaced by the next
// switch-out's. Snapshots are unwound only when their block counts (or
// when pending ones hold more than maxPendingBytes).
type unwinding struct {
	*stackprof.Unwinding
	p *stackprof.Profiler[Block]
	// acc counts the blocks since the last collection.
	acc stackprof.Pending[Block]

	mu           sync.Mutex
	pending      map[uint32]*snapshot // by thread id
	pendingBytes int
	orphans      uint64 // blocks whose snapshot was not found
}

const maxPendingBytes = 32 << 20

type snapshot struct {
	pid      uint32
	seq      uint64 // switch-out time (bpf_ktime_get_ns), names the snapshot
	p16      uint32
	received time.Time
	ev       *unwind.StackEvent // nil once unwound
	st       stackprof.Stack
	py       *cpython.RawStack // the Python stack, read at switch-out
}

func (k *kernel) startUnwinding(p *stackprof.Profiler[Block], maxFrames int) error {
	uw := &unwinding{p: p, pending: map[uint32]*snapshot{}}
	u, err := stackprof.StartUnwinding(k.objs.Events, maxFrames, uw.handle)
	if err != nil {
		return err
	}
	uw.Unwinding, k.uw, k.Unwinding = u, uw, u
	return nil
}

func (uw *unwinding) handle(_ *stackprof.Unwinding, raw []byte) {
	switch unwind.EventKind(raw) {
	case unwind.EventStack:
		ev, err := unwind.DecodeStackEvent(raw)
		if err != nil || !uw.Wants(ev.PID) {
			return
		}
		ev.User.Stack = append([]byte(nil), ev.User.Stack...) // raw is reused
		// Read now (py_stacks is an LRU), before uw.mu: the runtime's
		// lock is taken before uw.mu in collect.
		py := uw.p.PythonStack(ev.PID, ev.PyStack)
		s := &snapshot{pid: ev.PID, seq: ev.Seq, p16: ev.P16, received: time.Now(), ev: &ev, py: py}
		uw.mu.Lock()
		defer uw.mu.Unlock()
		uw.dropLocked(ev.TID)
		uw.pending[ev.TID] = s
		uw.pendingBytes += len(ev.User.Stack)
		if uw.pendingBytes > maxPendingBytes {
			uw.unwindLocked(s) // memory first: unwind now
		}
	case unwind.EventBlock:
		be, err := unwind.DecodeBlockEvent(raw)
		if err != nil {
			return
		}
		uw.mu.Lock()
		defer uw.mu.Unlock()
		s := uw.pending[be.TID]
		if s == nil || s.seq != be.Seq {
			uw.orphans++
			return
		}
		uw.dropLocked(be.TID)
		uw.unwindLocked(s)
		uw.acc.Add(s.pid, s.st, Block{Nanoseconds: be.NS, Blocks: be.Blocks})
	}
}

// dropLocked forgets the pending snapshot of thread tid.
func (uw *unwinding) dropLocked(tid uint32) {
	if s := uw.pending[tid]; s != nil {
		if s.ev != nil {
			uw.pendingBytes -= len(s.ev.User.Stack)
		}
		delete(uw.pending, tid)
	}
}

// unwindLocked unwinds s if it was not.
func (uw *unwinding) unwindLocked(s *snapshot) {
	if s.ev == nil {
		return
	}
	uw.pendingBytes -= len(s.ev.User.Stack)
	s.st = uw.Stack(s.pid, s.ev)
	s.st.Python = s.py
	s.ev = nil
}

// collect hands the blocks read since the last collection to the runtime;
// for a final collection, it adds the threads of that process still off
// the CPU (the start map holds them, by switch-out time) for the time since
// max(block start, subscription start).
func (uw *unwinding) collect(c *stackprof.Collection[Block], start *ebpf.Map, minBlock time.Duration) error {
	uw.Sync()
	uw.acc.Flush(c)
	uw.mu.Lock()
	defer uw.mu.Unlock()

	blocked := map[uint32]uint64{}
	err := stackprof.Scan(start, func(tid *uint32, st *offcpubpf.Start) { blocked[*tid] = st.Ts })
	if err != nil {
		return err
	}
	nowMono, nowNs := time.Now(), monotonicNs()
	for tid, s := range uw.pending {
		if ts, ok := blocked[tid]; ok && ts == s.seq {
			if c.Final == nil || s.pid != c.Final.PID || nowNs <= s.seq {
				continue
			}
			from := nowMono.Add(-time.Duration(nowNs - s.seq))
			if from.Before(c.Final.Since) {
				from = c.Final.Since
			}
			if d := nowMono.Sub(from); d > 0 && d >= minBlock {
				b := Block{Nanoseconds: uint64(d), Blocks: 1}
				if s.p16 != 0 { // recorded with probability p16/65536
					b = Block{Nanoseconds: b.Nanoseconds * 65536 / uint64(s.p16), Blocks: 65536 / uint64(s.p16)}
				}
				uw.unwindLocked(s)
				c.AddFinal(s.st, b)
			}
			continue
		}
		// Back on the CPU after a short block (or its block is still in
		// the ring): dropped once its block event would have been read.
		if nowMono.Sub(s.received) > time.Second+2*unwind.PollInterval {
			uw.dropLocked(tid)
		}
	}
	return nil
}

func (uw *unwinding) forget(tgid uint32) {
	uw.acc.Forget(tgid)
	uw.mu.Lock()
	defer uw.mu.Unlock()
	for tid, s := range uw.pending {
		if s.pid == tgid {
			uw.dropLocked(tid)
		}
	}
}
