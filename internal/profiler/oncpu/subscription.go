//go:build linux

package oncpu

import (
	"sort"
	"time"

	"github.com/contprof/contprof/internal/output/profiles"
	"github.com/contprof/contprof/internal/profiler/symbolize"
)

// Subscription is one task's view of the sampler: the samples of one
// process since the previous Drain.
type Subscription struct {
	s     *Sampler
	pid   uint32
	start time.Time
	acc   map[string]*RawSample
	// closed is guarded by s.mu.
	closed bool
	// release is called after Close (set by a Manager).
	release func()
}

// RawSample is one distinct stack with its sample count; addresses are leaf
// first as the kernel records them.
type RawSample struct {
	User, Kernel []uint64
	// UserLost and KernelLost are set when the stack could not be recorded
	// (stack map full or a hash collision); the sample still counts.
	UserLost, KernelLost bool
	// Truncated is set when the user stack was cut (frame limit or the
	// end of the stack copy) before its outermost frame.
	Truncated bool
	Count     uint64
}

// Batch is what a Subscription gathered during one interval.
type Batch struct {
	PID        int
	Start, End time.Time
	Frequency  int
	Samples    []RawSample
}

// PID is the process this subscription samples.
func (sub *Subscription) PID() int { return int(sub.pid) }

func (sub *Subscription) addLocked(key string, user, kernel []uint64, userLost, kernelLost bool, n uint64) {
	if rs := sub.acc[key]; rs != nil {
		rs.Count += n
		return
	}
	sub.acc[key] = &RawSample{User: user, Kernel: kernel, UserLost: userLost, KernelLost: kernelLost, Count: n}
}

// Drain returns the samples gathered since the previous Drain (or since
// Add) and starts a new interval. It works after the process has exited;
// after Close it returns ErrClosed.
func (sub *Subscription) Drain() (*Batch, error) {
	s := sub.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if sub.closed {
		return nil, ErrClosed
	}
	err := s.collectLocked()
	now := time.Now()
	b := &Batch{PID: int(sub.pid), Start: sub.start, End: now, Frequency: s.freq}
	b.Samples = make([]RawSample, 0, len(sub.acc))
	for _, rs := range sub.acc {
		b.Samples = append(b.Samples, *rs)
	}
	// Biggest first: stable output, and readers see the hot stacks first.
	sort.Slice(b.Samples, func(i, j int) bool { return b.Samples[i].Count > b.Samples[j].Count })
	sub.acc = map[string]*RawSample{}
	sub.start = now
	return b, err
}

// Close stops sampling the process for this subscriber; samples not yet
// drained are discarded. Closing twice is fine.
func (sub *Subscription) Close() error {
	err := sub.s.remove(sub)
	if sub.release != nil {
		sub.release()
	}
	return err
}

// Total is the number of samples in the batch.
func (b *Batch) Total() uint64 {
	var n uint64
	for _, s := range b.Samples {
		n += s.Count
	}
	return n
}

// Profile symbolizes the batch into an on-CPU profile. resource and attrs
// become the profile's resource and trigger attributes.
func (b *Batch) Profile(sym *symbolize.Symbolizer, resource, attrs map[string]any) *profiles.Profile {
	p := &profiles.Profile{
		Kind:       profiles.OnCPU(b.Frequency),
		Start:      b.Start,
		End:        b.End,
		Resource:   resource,
		Attributes: attrs,
		Samples:    make([]profiles.Sample, 0, len(b.Samples)),
	}
	for _, rs := range b.Samples {
		frames := sym.Stack(b.PID, rs.User, rs.Kernel)
		if rs.KernelLost {
			frames = append([]profiles.Frame{{Function: "[lost kernel stack]", Type: profiles.FrameKernel}}, frames...)
		}
		if rs.Truncated {
			frames = append(frames, profiles.Frame{Function: profiles.TruncatedFrame, Type: profiles.FrameNative})
		}
		if rs.UserLost && len(rs.User) == 0 {
			frames = append(frames, profiles.Frame{Function: "[lost user stack]", Type: profiles.FrameNative})
		}
		p.Samples = append(p.Samples, profiles.Sample{Frames: frames, Value: int64(rs.Count)})
	}
	return p
}

// Stats reads the sampler-wide counters (all subscriptions together); a
// growing UserStacksLost or SamplesLost means the maps are too small.
func (sub *Subscription) Stats() (Stats, error) {
	return sub.s.Stats()
}
