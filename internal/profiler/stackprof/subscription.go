//go:build linux

package stackprof

import (
	"sort"
	"time"

	"github.com/contprof/contprof/internal/output/profiles"
	"github.com/contprof/contprof/internal/profiler/cpython"
)

// Subscription is one task's view of a profiler: what one process did
// since the previous Drain.
type Subscription[V Value[V]] struct {
	p       *Profiler[V]
	pid     uint32
	created time.Time
	start   time.Time
	acc     map[string]*RawSample[V]
	// closed is guarded by p.mu.
	closed bool
	// release is called after Close (set by a Manager).
	release func()
}

// RawSample is one distinct stack with its value.
type RawSample[V any] struct {
	User, Kernel []uint64
	// UserLost and KernelLost are set when the stack could not be recorded
	// (stack map full or a hash collision); the value still counts.
	UserLost, KernelLost bool
	// Truncated is set when the user stack was cut (frame limit or the
	// end of the stack copy) before its outermost frame.
	Truncated bool
	// Python is the interpreter's stack (Python processes), nil if none.
	Python *cpython.RawStack
	Value  V
}

// Batch is what a Subscription gathered during one interval, biggest
// first.
type Batch[V Value[V]] struct {
	PID        int
	Start, End time.Time
	Kind       profiles.Kind
	Samples    []RawSample[V]
	// PythonNote says which interpreter's frames were walked, or why
	// Python frames are not shown (empty for other processes).
	PythonNote string
	trim       func([]profiles.Frame) []profiles.Frame
	python     *cpython.Process // nil: no Python frames
}

// PID is the process this subscription records.
func (sub *Subscription[V]) PID() int { return int(sub.pid) }

func (sub *Subscription[V]) addLocked(key string, st Stack, v V) {
	if rs := sub.acc[key]; rs != nil {
		rs.Value = rs.Value.Add(v)
		return
	}
	sub.acc[key] = &RawSample[V]{User: st.User, Kernel: st.Kernel, UserLost: st.UserLost, KernelLost: st.KernelLost, Truncated: st.Truncated, Python: st.Python, Value: v}
}

// Drain returns what was gathered since the previous Drain (or since Add)
// and starts a new interval. It works after the process has exited; after
// Close it returns ErrClosed.
func (sub *Subscription[V]) Drain() (*Batch[V], error) {
	return sub.drain(false)
}

// DrainFinal is Drain for a task's last report: the source may add what is
// still in progress (off-CPU: threads still blocked, for the time since the
// subscription began). Draining again afterwards may count that twice.
func (sub *Subscription[V]) DrainFinal() (*Batch[V], error) {
	return sub.drain(true)
}

func (sub *Subscription[V]) drain(final bool) (*Batch[V], error) {
	p := sub.p
	p.mu.Lock()
	defer p.mu.Unlock()
	if sub.closed {
		return nil, ErrClosed
	}
	var f *Subscription[V]
	if final {
		f = sub
	}
	err := p.collectLocked(f)
	now := time.Now()
	b := &Batch[V]{PID: int(sub.pid), Start: sub.start, End: now, Kind: p.cfg.Kind, trim: p.cfg.Trim}
	if p.py != nil {
		b.python, b.PythonNote = p.py.Process(sub.pid)
	}
	b.Samples = make([]RawSample[V], 0, len(sub.acc))
	for _, rs := range sub.acc {
		b.Samples = append(b.Samples, *rs)
	}
	// Biggest first: stable output, and readers see the hot stacks first.
	sort.Slice(b.Samples, func(i, j int) bool { return b.Samples[i].Value.Weight() > b.Samples[j].Value.Weight() })
	sub.acc = map[string]*RawSample[V]{}
	sub.start = now
	return b, err
}

// Close stops recording the process for this subscriber; what was not yet
// drained is discarded. Closing twice is fine.
func (sub *Subscription[V]) Close() error {
	err := sub.p.remove(sub)
	if sub.release != nil {
		sub.release()
		sub.release = nil
	}
	return err
}

// Total is the sum of the batch's weights (samples, nanoseconds).
func (b *Batch[V]) Total() uint64 {
	var n uint64
	for _, s := range b.Samples {
		n += s.Value.Weight()
	}
	return n
}

// Symbolizer turns one sample's addresses into frames, leaf first; pid
// names the address space of the user addresses. *symbolize.Symbolizer is
// one; it is the seam where interpreter and JIT frames come in.
type Symbolizer interface {
	Stack(pid int, user, kernel []uint64) []profiles.Frame
}

// Profile symbolizes the batch into a profile. resource and attrs become
// the profile's resource and trigger attributes.
func (b *Batch[V]) Profile(sym Symbolizer, resource, attrs map[string]any) *profiles.Profile {
	p := &profiles.Profile{
		Kind:       b.Kind,
		Start:      b.Start,
		End:        b.End,
		Resource:   resource,
		Attributes: cpython.NoteAttributes(attrs, b.PythonNote),
		Samples:    make([]profiles.Sample, 0, len(b.Samples)),
	}
	py := cpython.NewSymbolizer(b.python)
	for _, rs := range b.Samples {
		frames := sym.Stack(b.PID, rs.User, rs.Kernel)
		if b.trim != nil {
			frames = b.trim(frames)
		}
		// Python frames replace the interpreter loop's native frames.
		frames = py.Merge(frames, rs.Python)
		if rs.KernelLost {
			frames = append([]profiles.Frame{{Function: "[lost kernel stack]", Type: profiles.FrameKernel}}, frames...)
		}
		if rs.Truncated {
			frames = append(frames, profiles.Frame{Function: profiles.TruncatedFrame, Type: profiles.FrameNative})
		}
		if rs.UserLost && len(rs.User) == 0 {
			frames = append(frames, profiles.Frame{Function: "[lost user stack]", Type: profiles.FrameNative})
		}
		p.Samples = append(p.Samples, profiles.Sample{Frames: frames, Value: int64(rs.Value.Weight())})
	}
	return p
}
