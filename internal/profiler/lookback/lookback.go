//go:build linux

// Package lookback keeps a cheap, bounded, always-on record of the
// processes that policies with a lookback select, so that a triggered
// task's first report can hold the seconds before the trigger.
//
// It is one more subscriber of the profiler runtime: a second on-CPU
// sampler (internal/profiler/oncpu, its own perf events and PID filter,
// at a low frequency) with the same unwinder, and for off_cpu policies
// that opt in a second off-CPU source (internal/profiler/offcpu: its own
// sched_switch hook and PID filter, same stack budget and min block). Each selected process has a
// ring of buckets, one per drain (Options.Bucket), covering its lookback;
// all rings together stay under Options.MaxMemory: when the bound is hit
// the oldest bucket of the process with the largest ring goes first, so a
// process with many distinct stacks cannot starve the others of history.
package lookback

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/contprof/contprof/internal/control"
	"github.com/contprof/contprof/internal/periodic"
	"github.com/contprof/contprof/internal/profiler/offcpu"
	"github.com/contprof/contprof/internal/profiler/oncpu"
	"github.com/contprof/contprof/internal/profiler/stackprof"
)

// Defaults of Options.
const (
	DefaultFrequency = 19
	DefaultMaxMemory = 16 << 20
	DefaultBucket    = 500 * time.Millisecond
	// grace is how long past its lookback a bucket is kept: a task starts
	// a moment after its trigger (the processor judges a second once its
	// data is in, then the controller dispatches), and the samples before
	// the trigger must still be there then.
	grace = 5 * time.Second
	// sampleOverhead is the bookkeeping counted per distinct stack of a
	// bucket besides its addresses.
	sampleOverhead = 96
)

// Options configure a Recorder; zero values take the defaults.
type Options struct {
	// Frequency is the sampling frequency per CPU in Hz; default 19.
	Frequency int
	// MaxMemory bounds the bytes of all rings together; default 16 MiB.
	MaxMemory int64
	// Bucket is how often the rings are filled (the time resolution of
	// the record); default 500 ms.
	Bucket time.Duration
	// MaxPIDs is how many processes can be recorded at once; default 1024.
	MaxPIDs int
	// OffCPU configures the off-CPU record (MinBlock, MaxStacksPerSecond:
	// those of the off_cpu tasks, so both count the same blocks).
	OffCPU offcpu.Options
}

// Validate sets the defaults and checks the options, naming the
// configuration field ("profiling.lookback.frequency") and the value.
func (o *Options) Validate() error {
	if o.Frequency == 0 {
		o.Frequency = DefaultFrequency
	}
	if o.MaxMemory == 0 {
		o.MaxMemory = DefaultMaxMemory
	}
	if o.Bucket == 0 {
		o.Bucket = DefaultBucket
	}
	if o.MaxPIDs == 0 {
		o.MaxPIDs = 1024
	}
	var errs []error
	if o.Frequency < 1 || o.Frequency > 1000 {
		errs = append(errs, fmt.Errorf("profiling.lookback.frequency: %d Hz is out of range [1, 1000]", o.Frequency))
	}
	if o.MaxMemory < 64<<10 || o.MaxMemory > 4<<30 {
		errs = append(errs, fmt.Errorf("profiling.lookback.max_memory: %d bytes is out of range [64 KiB, 4 GiB]", o.MaxMemory))
	}
	if o.Bucket < 100*time.Millisecond || o.Bucket > 5*time.Second {
		errs = append(errs, fmt.Errorf("lookback bucket: %v is out of range [100ms, 5s]", o.Bucket))
	}
	if o.MaxPIDs < 1 || o.MaxPIDs > 1<<20 {
		errs = append(errs, fmt.Errorf("lookback max_pids: %d is out of range [1, %d]", o.MaxPIDs, 1<<20))
	}
	return errors.Join(errs...)
}

// Selection is what the policies ask to record: the lookback per process
// id, with the process's start time so that a reused PID starts afresh.
type Selection map[int]Selected

// Selected is one selected process.
type Selected struct {
	// Lookback is the on-CPU lookback (0: no on-CPU record).
	Lookback time.Duration
	// OffCPU is the off-CPU lookback (0: no off-CPU record): every context
	// switch on the host pays the sched_switch hook while any is set.
	OffCPU time.Duration
	Start  time.Time
}

// lookback is the lookback sel asks of kind k.
func (s Selected) lookback(k Kind) time.Duration {
	if k == OffCPU {
		return s.OffCPU
	}
	return s.Lookback
}

// Kind is what a ring records.
type Kind int

// Kinds of record.
const (
	OnCPU Kind = iota
	OffCPU
)

func (k Kind) String() string {
	if k == OffCPU {
		return offcpu.Target
	}
	return oncpu.Target
}

var kinds = [...]Kind{OnCPU, OffCPU}

// key names one ring: a process has one per kind.
type key struct {
	pid  int
	kind Kind
}

// weight is a sample's value in the rings: CPU samples (on-CPU) or
// nanoseconds off the CPU (off-CPU, already scaled by the source for its
// stack budget).
type weight uint64

func (w weight) Add(o weight) weight { return w + o }
func (w weight) Weight() uint64      { return uint64(w) }

// source is one kind's subscription for a ring.
type source interface {
	drain() (start, end time.Time, samples []stackprof.RawSample[weight], n uint64, err error)
	close() error
}

// sub adapts a subscription of either source; count is how many samples
// (on-CPU) or blocks (off-CPU) a value stands for.
type sub[V stackprof.Value[V]] struct {
	s     *stackprof.Subscription[V]
	count func(V) uint64
}

func (s sub[V]) drain() (start, end time.Time, out []stackprof.RawSample[weight], n uint64, err error) {
	b, err := s.s.Drain()
	if err != nil {
		return start, end, nil, 0, err
	}
	out = make([]stackprof.RawSample[weight], 0, len(b.Samples))
	for _, rs := range b.Samples {
		out = append(out, stackprof.RawSample[weight]{User: rs.User, Kernel: rs.Kernel, UserLost: rs.UserLost,
			KernelLost: rs.KernelLost, Truncated: rs.Truncated, Python: rs.Python, Value: weight(rs.Value.Weight())})
		n += s.count(rs.Value)
	}
	return b.Start, b.End, out, n, nil
}

func (s sub[V]) close() error { return s.s.Close() }

// Recorder keeps the rings. It is safe for concurrent use.
type Recorder struct {
	opts Options
	mgr  *oncpu.Manager
	off  *offcpu.Manager

	// syncMu serializes Sync; mu guards the rings.
	syncMu  sync.Mutex
	mu      sync.Mutex
	procs   map[key]*ring
	bytes   int64
	dropped uint64
	// failed remembers processes that could not be added (gone, too
	// many), so that a scrape does not retry them every time.
	failed map[key]Selected
	closed bool

	stop context.CancelFunc // ends the fill loop
	done chan struct{}
}

// ring is one process's record, oldest bucket first.
type ring struct {
	sel     Selected
	sub     source
	buckets []bucket
	bytes   int64
}

type bucket struct {
	start, end time.Time
	samples    []stackprof.RawSample[weight]
	n          uint64 // samples (on-CPU) or blocks (off-CPU)
	bytes      int64
}

// New starts a Recorder; nothing is loaded into the kernel until a
// process is selected, and the sampler is unloaded when none is.
func New(opts Options) (*Recorder, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	// User stacks are unwound in user space, so the stack and count maps
	// of the frame-pointer path stay small; the snapshot ring is sized for
	// a low rate.
	mgr, err := oncpu.NewManager(oncpu.Options{
		Frequency: opts.Frequency, MaxPIDs: opts.MaxPIDs, StackEntries: 256, CountEntries: 256,
		UnwindOptions: stackprof.UnwindOptions{EventBytes: 1 << 20},
	})
	if err != nil {
		return nil, fmt.Errorf("lookback: %w", err)
	}
	// Loaded only while some off_cpu policy with a lookback selects a
	// process: its sched_switch hook runs on every switch of the host.
	offOpts := opts.OffCPU
	offOpts.MaxPIDs = opts.MaxPIDs
	offOpts.StackEntries, offOpts.CountEntries = 1024, 1024
	if offOpts.EventBytes == 0 {
		offOpts.EventBytes = 2 << 20
	}
	off, err := offcpu.NewManager(offOpts)
	if err != nil {
		_ = mgr.Close()
		return nil, fmt.Errorf("lookback: %w", err)
	}
	r := &Recorder{opts: opts, mgr: mgr, off: off, procs: map[key]*ring{}, failed: map[key]Selected{},
		done: make(chan struct{})}
	ctx, stop := context.WithCancel(context.Background())
	r.stop = stop
	go func() {
		defer close(r.done)
		periodic.Run(ctx, r.opts.Bucket, func(now time.Time) {
			r.mu.Lock()
			r.fillLocked(now)
			r.mu.Unlock()
		})
	}()
	return r, nil
}

// Frequency is the sampling frequency in Hz.
func (r *Recorder) Frequency() int { return r.opts.Frequency }

// Sync makes the recorded processes those of sel: new ones are added to
// the sampler's filter, those no longer selected leave it (and their
// rings are dropped) now. It returns the errors of processes that could
// not be added, once per process.
func (r *Recorder) Sync(sel Selection) error {
	// One Sync at a time; the lock of the rings is not held while
	// processes are added (the first loads the sampler, seconds on a busy
	// machine), so filling, Window and Stats go on meanwhile.
	r.syncMu.Lock()
	defer r.syncMu.Unlock()
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return stackprof.ErrClosed
	}
	for k, rg := range r.procs {
		if s, ok := sel[k.pid]; !ok || s.Start != rg.sel.Start || s.lookback(k.kind) <= 0 {
			r.dropLocked(k, rg)
		} else {
			rg.sel = s
		}
	}
	for k, s := range r.failed {
		if sel[k.pid] != s {
			delete(r.failed, k)
		}
	}
	var add []key
	for pid, s := range sel {
		for _, kind := range kinds {
			k := key{pid, kind}
			if _, failed := r.failed[k]; r.procs[k] == nil && s.lookback(kind) > 0 && !failed {
				add = append(add, k)
			}
		}
	}
	r.mu.Unlock()

	var errs []error
	for _, k := range add {
		src, err := r.acquire(k)
		r.mu.Lock()
		switch {
		case err != nil:
			r.failed[k] = sel[k.pid]
			errs = append(errs, fmt.Errorf("lookback %s: %w", k.kind, err))
		case r.closed:
			_ = src.close()
		default:
			r.procs[k] = &ring{sel: sel[k.pid], sub: src}
		}
		r.mu.Unlock()
	}
	return errors.Join(errs...)
}

// acquire subscribes to the source of k's kind.
func (r *Recorder) acquire(k key) (source, error) {
	if k.kind == OffCPU {
		s, err := r.off.Acquire(k.pid)
		if err != nil {
			return nil, err
		}
		return sub[offcpu.Block]{s, func(b offcpu.Block) uint64 { return b.Blocks }}, nil
	}
	s, err := r.mgr.Acquire(k.pid)
	if err != nil {
		return nil, err
	}
	return sub[oncpu.Count]{s, func(c oncpu.Count) uint64 { return uint64(c) }}, nil
}

func (r *Recorder) dropLocked(k key, rg *ring) {
	_ = rg.sub.close()
	r.bytes -= rg.bytes
	delete(r.procs, k)
}

// fillLocked drains every subscription into a new bucket, then trims the
// rings to their lookback and to the memory bound.
func (r *Recorder) fillLocked(now time.Time) {
	for k, rg := range r.procs {
		start, end, samples, n, err := rg.sub.drain()
		if err != nil {
			r.dropLocked(k, rg)
			continue
		}
		if len(samples) > 0 {
			bk := bucket{start: start, end: end, samples: samples, n: n}
			for _, s := range samples {
				bk.bytes += int64(8*(len(s.User)+len(s.Kernel))) + sampleOverhead
			}
			rg.buckets = append(rg.buckets, bk)
			rg.bytes += bk.bytes
			r.bytes += bk.bytes
		}
		// Old buckets leave by age; they are not counted as dropped.
		keep := now.Add(-rg.sel.lookback(k.kind) - grace)
		for len(rg.buckets) > 0 && rg.buckets[0].end.Before(keep) {
			r.removeOldestLocked(rg)
		}
	}
	r.evictLocked()
}

// evictLocked drops the oldest bucket of the largest ring (on-CPU and
// off-CPU rings alike) until all rings fit the memory bound; what it
// drops counts as dropped.
func (r *Recorder) evictLocked() {
	for r.bytes > r.opts.MaxMemory {
		var big *ring
		for _, rg := range r.procs {
			if len(rg.buckets) > 0 && (big == nil || rg.bytes > big.bytes) {
				big = rg
			}
		}
		if big == nil {
			break
		}
		r.dropped += big.buckets[0].n
		r.removeOldestLocked(big)
	}
}

func (r *Recorder) removeOldestLocked(rg *ring) {
	b := rg.buckets[0]
	rg.buckets[0] = bucket{}
	rg.buckets = rg.buckets[1:]
	rg.bytes -= b.bytes
	r.bytes -= b.bytes
}

// Part is one bucket's samples in a window, with the share of the bucket's
// time the window covers (the samples of a bucket carry no times of their
// own, so a bucket cut by the window counts in proportion).
type Part struct {
	Samples    []stackprof.RawSample[weight]
	Fraction   float64
	Start, End time.Time
}

// Window is what the on-CPU ring of process pid holds from from
// (inclusive) to to (exclusive), oldest first.
func (r *Recorder) Window(pid int, from, to time.Time) []Part {
	return r.WindowOf(OnCPU, pid, from, to)
}

// WindowOf is Window for the ring of kind. It first moves what the source
// has gathered since the last bucket into the ring.
func (r *Recorder) WindowOf(kind Kind, pid int, from, to time.Time) []Part {
	k := key{pid, kind}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.procs[k] == nil {
		return nil
	}
	r.fillLocked(time.Now())
	rg := r.procs[k]
	if rg == nil {
		return nil
	}
	var parts []Part
	for _, b := range rg.buckets {
		lo, hi := maxTime(b.start, from), minTime(b.end, to)
		if !lo.Before(hi) {
			continue
		}
		f := 1.0
		if d := b.end.Sub(b.start); d > 0 {
			f = float64(hi.Sub(lo)) / float64(d)
		}
		parts = append(parts, Part{Samples: b.samples, Fraction: f, Start: lo, End: hi})
	}
	return parts
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// Coverage is what one process's ring holds (the form GET
// /api/v1/processes shows).
type Coverage = control.LookbackCoverage

// Coverage lists the recorded processes.
func (r *Recorder) Coverage() []Coverage {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Coverage, 0, len(r.procs))
	for k, rg := range r.procs {
		c := Coverage{PID: k.pid, Target: k.kind.String(), Lookback: rg.sel.lookback(k.kind), Bytes: rg.bytes}
		if n := len(rg.buckets); n > 0 {
			c.From, c.To = rg.buckets[0].start, rg.buckets[n-1].end
		}
		for _, b := range rg.buckets {
			c.Samples += b.n
		}
		out = append(out, c)
	}
	return out
}

// Stats are the recorder's totals.
type Stats struct {
	// Processes is how many processes are recorded now.
	Processes int
	// Bytes is the memory the rings hold now.
	Bytes int64
	// Dropped is how many samples (on-CPU) and blocks (off-CPU) the
	// memory bound evicted since New.
	Dropped uint64
	// Loaded is whether the on-CPU sampler is in the kernel now;
	// OffCPULoaded whether the off-CPU source is.
	Loaded, OffCPULoaded bool
}

// Stats reads the totals.
func (r *Recorder) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	pids := map[int]bool{}
	for k := range r.procs {
		pids[k.pid] = true
	}
	return Stats{Processes: len(pids), Bytes: r.bytes, Dropped: r.dropped, Loaded: r.mgr.Loaded(), OffCPULoaded: r.off.Loaded()}
}

// IsSampled reports whether process pid is in the sampler's in-kernel
// filter now.
func (r *Recorder) IsSampled(pid int) bool { return inFilter(r.mgr, pid) }

// IsRecordedOffCPU reports whether process pid is in the off-CPU
// source's in-kernel filter now.
func (r *Recorder) IsRecordedOffCPU(pid int) bool { return inFilter(r.off, pid) }

func inFilter[V stackprof.Value[V]](m *stackprof.Manager[V], pid int) bool {
	p, ok := m.Profiler()
	if !ok {
		return false
	}
	in, err := p.IsTarget(pid)
	return err == nil && in
}

// Close stops recording and unloads the sampler.
func (r *Recorder) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.stop()
	for k, rg := range r.procs {
		r.dropLocked(k, rg)
	}
	r.mu.Unlock()
	<-r.done
	return errors.Join(r.mgr.Close(), r.off.Close())
}
