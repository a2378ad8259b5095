//go:build linux

// Package lookback keeps a cheap, bounded, always-on on-CPU record of the
// processes that policies with a lookback select, so that a triggered
// task's first report can hold the seconds before the trigger.
//
// It is one more subscriber of the profiler runtime: a second on-CPU
// sampler (internal/profiler/oncpu, its own perf events and PID filter,
// at a low frequency) with the same unwinder. Each selected process has a
// ring of buckets, one per drain (Options.Bucket), covering its lookback;
// all rings together stay under Options.MaxMemory: when the bound is hit
// the oldest bucket of the process with the largest ring goes first, so a
// process with many distinct stacks cannot starve the others of history.
package lookback

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/contprof/contprof/internal/control"
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
	Lookback time.Duration
	Start    time.Time
}

// Recorder keeps the rings. It is safe for concurrent use.
type Recorder struct {
	opts Options
	mgr  *oncpu.Manager

	// syncMu serializes Sync; mu guards the rings.
	syncMu  sync.Mutex
	mu      sync.Mutex
	procs   map[int]*ring
	bytes   int64
	dropped uint64
	// failed remembers processes that could not be added (gone, too
	// many), so that a scrape does not retry them every time.
	failed map[int]Selected
	closed bool

	stop chan struct{}
	done chan struct{}
}

// ring is one process's record, oldest bucket first.
type ring struct {
	sel     Selected
	sub     *stackprof.Subscription[oncpu.Count]
	buckets []bucket
	bytes   int64
}

type bucket struct {
	start, end time.Time
	samples    []stackprof.RawSample[oncpu.Count]
	n          uint64 // samples (sum of counts)
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
	r := &Recorder{opts: opts, mgr: mgr, procs: map[int]*ring{}, failed: map[int]Selected{},
		stop: make(chan struct{}), done: make(chan struct{})}
	go r.loop()
	return r, nil
}

// Frequency is the sampling frequency in Hz.
func (r *Recorder) Frequency() int { return r.opts.Frequency }

func (r *Recorder) loop() {
	defer close(r.done)
	t := time.NewTicker(r.opts.Bucket)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case now := <-t.C:
			r.mu.Lock()
			r.fillLocked(now)
			r.mu.Unlock()
		}
	}
}

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
	for pid, rg := range r.procs {
		if s, ok := sel[pid]; !ok || s.Start != rg.sel.Start {
			r.dropLocked(pid, rg)
		} else {
			rg.sel.Lookback = s.Lookback
		}
	}
	for pid, s := range r.failed {
		if sel[pid] != s {
			delete(r.failed, pid)
		}
	}
	var add []int
	for pid, s := range sel {
		if _, failed := r.failed[pid]; r.procs[pid] == nil && s.Lookback > 0 && !failed {
			add = append(add, pid)
		}
	}
	r.mu.Unlock()

	var errs []error
	for _, pid := range add {
		sub, err := r.mgr.Acquire(pid)
		r.mu.Lock()
		switch {
		case err != nil:
			r.failed[pid] = sel[pid]
			errs = append(errs, fmt.Errorf("lookback: %w", err))
		case r.closed:
			_ = sub.Close()
		default:
			r.procs[pid] = &ring{sel: sel[pid], sub: sub}
		}
		r.mu.Unlock()
	}
	return errors.Join(errs...)
}

func (r *Recorder) dropLocked(pid int, rg *ring) {
	_ = rg.sub.Close()
	r.bytes -= rg.bytes
	delete(r.procs, pid)
}

// fillLocked drains every subscription into a new bucket, then trims the
// rings to their lookback and to the memory bound.
func (r *Recorder) fillLocked(now time.Time) {
	for pid, rg := range r.procs {
		b, err := rg.sub.Drain()
		if err != nil {
			r.dropLocked(pid, rg)
			continue
		}
		if len(b.Samples) > 0 {
			bk := bucket{start: b.Start, end: b.End, samples: b.Samples}
			for _, s := range b.Samples {
				bk.n += uint64(s.Value)
				bk.bytes += int64(8*(len(s.User)+len(s.Kernel))) + sampleOverhead
			}
			rg.buckets = append(rg.buckets, bk)
			rg.bytes += bk.bytes
			r.bytes += bk.bytes
		}
		// Old buckets leave by age; they are not counted as dropped.
		keep := now.Add(-rg.sel.Lookback - grace)
		for len(rg.buckets) > 0 && rg.buckets[0].end.Before(keep) {
			r.removeOldestLocked(rg)
		}
	}
	r.evictLocked()
}

// evictLocked drops the oldest bucket of the process with the largest
// ring until all rings fit the memory bound; what it drops counts as
// dropped.
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
	Samples    []stackprof.RawSample[oncpu.Count]
	Fraction   float64
	Start, End time.Time
}

// Window is what the ring of process pid holds from from (inclusive) to
// to (exclusive), oldest first. It first moves what the sampler has
// gathered since the last bucket into the ring.
func (r *Recorder) Window(pid int, from, to time.Time) []Part {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.procs[pid] == nil {
		return nil
	}
	r.fillLocked(time.Now())
	rg := r.procs[pid]
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
	for pid, rg := range r.procs {
		c := Coverage{PID: pid, Lookback: rg.sel.Lookback, Bytes: rg.bytes}
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
	// Dropped is how many samples the memory bound evicted since New.
	Dropped uint64
	// Loaded is whether the sampler is in the kernel now.
	Loaded bool
}

// Stats reads the totals.
func (r *Recorder) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return Stats{Processes: len(r.procs), Bytes: r.bytes, Dropped: r.dropped, Loaded: r.mgr.Loaded()}
}

// IsSampled reports whether process pid is in the sampler's in-kernel
// filter now.
func (r *Recorder) IsSampled(pid int) bool {
	p, ok := r.mgr.Profiler()
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
	close(r.stop)
	for pid, rg := range r.procs {
		r.dropLocked(pid, rg)
	}
	r.mu.Unlock()
	<-r.done
	return r.mgr.Close()
}
