//go:build linux

package stackprof

import (
	"errors"
	"fmt"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/contprof/contprof/internal/profiler/unwind"
	"github.com/contprof/contprof/internal/ringread"
)

// UnwindOptions choose how a source produces user stacks; zero values take
// the defaults.
type UnwindOptions struct {
	// FramePointersOnly makes the kernel walk user stacks by frame
	// pointer (bpf_get_stackid), as before unwinding: cheaper, but code
	// built without frame pointers loses its callers.
	FramePointersOnly bool
	// MaxFrames is the most user frames of an unwound stack; default 127.
	MaxFrames int
	// EventBytes sizes the ring buffer of stack snapshots; the source
	// sets the default.
	EventBytes int
}

// Validate sets the defaults and checks the options; target prefixes
// errors ("on_cpu max_frames: ...").
func (o *UnwindOptions) Validate(target string, defaultEventBytes int) error {
	if o.MaxFrames == 0 {
		o.MaxFrames = 127
	}
	if o.MaxFrames < 1 || o.MaxFrames > 1<<20 {
		return fmt.Errorf("%s max_frames: %d is out of range [1, %d]", target, o.MaxFrames, 1<<20)
	}
	if o.EventBytes == 0 {
		o.EventBytes = defaultEventBytes
	}
	if n := o.EventBytes; n&(n-1) != 0 || n < 64<<10 || n > 1<<30 {
		return fmt.Errorf("%s event_bytes: %d is not a power of two in [64 KiB, 1 GiB]", target, n)
	}
	return nil
}

// Unwinding is a source's user-space unwinding path (the seam where user
// stacks are produced from snapshots): the unwinder and the reader of the
// ring buffer its programs send stack snapshots to (ustack.h).
type Unwinding struct {
	Unwinder *unwind.Unwinder
	rd       *ringread.Reader
}

// StartUnwinding reads the events of ring, calling handle with each raw
// record (valid only during the call) on the reader's goroutine, in order.
func StartUnwinding(ring *ebpf.Map, maxFrames int, handle func(u *Unwinding, raw []byte)) (*Unwinding, error) {
	u := &Unwinding{Unwinder: unwind.New(unwind.Options{MaxFrames: maxFrames})}
	rd, err := ringread.Start(ring, unwind.PollInterval, func(raw []byte) { handle(u, raw) })
	if err != nil {
		return nil, errors.Join(err, u.Unwinder.Close())
	}
	u.rd = rd
	return u, nil
}

// Stack is the stacks of snapshot ev of process pid: its kernel stack as
// recorded and its user stack unwound.
func (u *Unwinding) Stack(pid uint32, ev *unwind.StackEvent) Stack {
	st := Stack{Kernel: ev.Kernel, KernelLost: ev.KernelErr}
	if !ev.NoUser {
		r := u.Unwinder.Unwind(int(pid), &ev.User)
		st.User, st.Truncated = r.PCs, r.Truncated
	}
	return st
}

// Wants reports whether process pid is profiled (added and not forgotten
// by Attachment). Unlike Profiler.Wants it takes no profiler lock, so a
// handler may use it while a collection waits in Sync.
func (u *Unwinding) Wants(pid uint32) bool { return u.Unwinder.Has(int(pid)) }

// Sync returns once every event in the ring when it was called has been
// handled: a collection calls it first, so that it counts everything that
// happened before it (the reader polls, it is not woken per event).
func (u *Unwinding) Sync() { u.rd.Sync(0) }

// Close stops the reader, then the unwinder; the handler is not called
// after Close returns.
func (u *Unwinding) Close() error {
	return errors.Join(u.rd.Close(), u.Unwinder.Close())
}

// Pending counts, by process and stack, what a source receives between
// two collections (from a ring buffer) until Flush hands it to the
// runtime. It is safe for concurrent use.
type Pending[V Value[V]] struct {
	mu sync.Mutex
	m  map[uint32]map[string]*pendingSample[V]
}

type pendingSample[V any] struct {
	st Stack
	v  V
}

// Add counts v at st for process pid.
func (p *Pending[V]) Add(pid uint32, st Stack, v V) {
	key := st.Key()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = map[uint32]map[string]*pendingSample[V]{}
	}
	acc := p.m[pid]
	if acc == nil {
		acc = map[string]*pendingSample[V]{}
		p.m[pid] = acc
	}
	if s := acc[key]; s != nil {
		s.v = s.v.Add(v)
	} else {
		acc[key] = &pendingSample[V]{st: st, v: v}
	}
}

// Flush hands everything counted so far to c's subscribers.
func (p *Pending[V]) Flush(c *Collection[V]) {
	p.mu.Lock()
	m := p.m
	p.m = nil
	p.mu.Unlock()
	for pid, acc := range m {
		for _, s := range acc {
			c.Add(pid, s.st, s.v)
		}
	}
}

// Forget drops what was counted for process pid.
func (p *Pending[V]) Forget(pid uint32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.m, pid)
}

// Attachment is what every source's kernel side holds besides its maps:
// the links that attach its programs and, unless user stacks are walked by
// frame pointer, its unwinding path.
type Attachment struct {
	Links     []link.Link
	Unwinding *Unwinding // nil: frame pointers only
}

// Added has the unwinder read the binaries of process tgid, in the
// background: a task does not wait for its tables.
func (a *Attachment) Added(tgid uint32) {
	if a.Unwinding != nil {
		_ = a.Unwinding.Unwinder.Add(int(tgid))
	}
}

// Forget drops the unwinder's tables of process tgid.
func (a *Attachment) Forget(tgid uint32) {
	if a.Unwinding != nil {
		a.Unwinding.Unwinder.Forget(int(tgid))
	}
}

// Close stops the unwinding, then detaches the programs.
func (a *Attachment) Close() error {
	var errs []error
	if a.Unwinding != nil {
		errs = append(errs, a.Unwinding.Close())
	}
	for _, l := range a.Links {
		errs = append(errs, l.Close())
	}
	a.Links, a.Unwinding = nil, nil
	return errors.Join(errs...)
}
