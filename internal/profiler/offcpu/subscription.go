//go:build linux

package offcpu

import (
	"sort"
	"strings"
	"time"

	"github.com/contprof/contprof/internal/output/profiles"
	"github.com/contprof/contprof/internal/profiler/symbolize"
)

// Subscription is one task's view of the profiler: the blocked time of one
// process per stack since the previous Drain.
type Subscription struct {
	p       *Profiler
	pid     uint32
	created time.Time
	start   time.Time
	acc     map[string]*RawSample
	// closed is guarded by p.mu.
	closed bool
	// release is called after Close (set by a Manager).
	release func()
}

// RawSample is one distinct stack with the time spent off the CPU there;
// addresses are leaf first as the kernel records them.
type RawSample struct {
	User, Kernel []uint64
	// UserLost and KernelLost are set when the stack could not be recorded
	// (stack map full or a hash collision); the time still counts.
	UserLost, KernelLost bool
	// Nanoseconds off the CPU, over Blocks blocks.
	Nanoseconds uint64
	Blocks      uint64
}

// Batch is what a Subscription gathered during one interval.
type Batch struct {
	PID        int
	Start, End time.Time
	Samples    []RawSample
}

// PID is the process this subscription records.
func (sub *Subscription) PID() int { return int(sub.pid) }

func (sub *Subscription) addLocked(key string, user, kernel []uint64, userLost, kernelLost bool, ns, blocks uint64) {
	if rs := sub.acc[key]; rs != nil {
		rs.Nanoseconds += ns
		rs.Blocks += blocks
		return
	}
	sub.acc[key] = &RawSample{User: user, Kernel: kernel, UserLost: userLost, KernelLost: kernelLost, Nanoseconds: ns, Blocks: blocks}
}

// Drain returns the blocks that ended since the previous Drain (or since
// Add) and starts a new interval. A block is counted when it ends, in full:
// a thread still off the CPU is not in the batch (see DrainFinal). Drain
// works after the process has exited; after Close it returns ErrClosed.
func (sub *Subscription) Drain() (*Batch, error) {
	return sub.drain(false)
}

// DrainFinal is Drain plus, for threads still off the CPU, the time they
// have been blocked since the subscription began: for a task's last report,
// so that a thread blocked for the whole task shows. Draining again after
// DrainFinal would count those blocks a second time when they end.
func (sub *Subscription) DrainFinal() (*Batch, error) {
	return sub.drain(true)
}

func (sub *Subscription) drain(final bool) (*Batch, error) {
	p := sub.p
	p.mu.Lock()
	defer p.mu.Unlock()
	if sub.closed {
		return nil, ErrClosed
	}
	var blockedFor *Subscription
	if final {
		blockedFor = sub
	}
	err := p.collectLocked(blockedFor, sub.created)
	now := time.Now()
	b := &Batch{PID: int(sub.pid), Start: sub.start, End: now}
	b.Samples = make([]RawSample, 0, len(sub.acc))
	for _, rs := range sub.acc {
		b.Samples = append(b.Samples, *rs)
	}
	// Biggest first: stable output, and readers see the long waits first.
	sort.Slice(b.Samples, func(i, j int) bool { return b.Samples[i].Nanoseconds > b.Samples[j].Nanoseconds })
	sub.acc = map[string]*RawSample{}
	sub.start = now
	return b, err
}

// Close stops recording the process for this subscriber; blocks not yet
// drained are discarded. Closing twice is fine.
func (sub *Subscription) Close() error {
	err := sub.p.remove(sub)
	if sub.release != nil {
		sub.release()
		sub.release = nil
	}
	return err
}

// Stats reads the profiler-wide counters (all subscriptions together); a
// growing UserStacksLost or BlocksLost means the maps are too small.
func (sub *Subscription) Stats() (Stats, error) {
	return sub.p.Stats()
}

// Total is the time off the CPU in the batch, in nanoseconds.
func (b *Batch) Total() uint64 {
	var n uint64
	for _, s := range b.Samples {
		n += s.Nanoseconds
	}
	return n
}

// Profile symbolizes the batch into an off-CPU profile (values are
// nanoseconds off the CPU). resource and attrs become the profile's
// resource and trigger attributes.
func (b *Batch) Profile(sym *symbolize.Symbolizer, resource, attrs map[string]any) *profiles.Profile {
	p := &profiles.Profile{
		Kind:       profiles.OffCPU(),
		Start:      b.Start,
		End:        b.End,
		Resource:   resource,
		Attributes: attrs,
		Samples:    make([]profiles.Sample, 0, len(b.Samples)),
	}
	for _, rs := range b.Samples {
		frames := trimTracing(sym.Stack(b.PID, rs.User, rs.Kernel))
		if rs.KernelLost {
			frames = append([]profiles.Frame{{Function: "[lost kernel stack]", Type: profiles.FrameKernel}}, frames...)
		}
		if rs.UserLost && len(rs.User) == 0 {
			frames = append(frames, profiles.Frame{Function: "[lost user stack]", Type: profiles.FrameNative})
		}
		p.Samples = append(p.Samples, profiles.Sample{Frames: frames, Value: int64(rs.Nanoseconds)})
	}
	return p
}

// trimTracing drops the leading kernel frames of the tracing machinery that
// ran the BPF program (the program itself, the tracepoint's trampolines), so
// that the kernel stack starts in the scheduler as in a perf profile.
func trimTracing(frames []profiles.Frame) []profiles.Frame {
	i := 0
	for i < len(frames) && frames[i].Type == profiles.FrameKernel && isTracingFrame(frames[i].Function) {
		i++
	}
	return frames[i:]
}

func isTracingFrame(fn string) bool {
	for _, p := range []string{"bpf_", "__bpf_", "___bpf_", "__traceiter_", "trace_", "perf_"} {
		if strings.HasPrefix(fn, p) {
			return true
		}
	}
	return false
}
