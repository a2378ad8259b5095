//go:build linux

// Package oncpu drives the on-CPU sampler: one CPU-clock perf event per CPU
// running the BPF program of bpf/oncpu, a PID filter shared by every task
// that uses the sampler, and the per-interval drain of stacks and counts.
package oncpu

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	oncpubpf "github.com/contprof/contprof/bpf/oncpu"
)

// Options configure a Sampler; zero values take the defaults.
type Options struct {
	// Frequency is the sampling frequency per CPU in Hz; default 99.
	Frequency int
	// StackEntries sizes each of the two stack maps; default 8192. An
	// entry holds 127 frames (about 1 KiB of kernel memory), so the default
	// costs about 17 MiB while the sampler is loaded.
	StackEntries int
	// CountEntries sizes each of the two counts maps; default 8192.
	CountEntries int
	// MaxPIDs is how many processes can be profiled at once; default 1024.
	MaxPIDs int
	// FramePointersOnly makes the kernel walk user stacks by frame
	// pointer (bpf_get_stackid), as before unwinding: cheaper, but code
	// built without frame pointers loses its callers.
	FramePointersOnly bool
	// MaxFrames is the most user frames of an unwound stack; default 127.
	MaxFrames int
	// EventBytes sizes the ring buffer of stack snapshots; default 4 MiB.
	EventBytes int

	// forcePIDNamespace makes the program translate PIDs through the
	// namespace helper even in the initial namespace (tests).
	forcePIDNamespace bool
}

// DefaultFrequency is the default sampling frequency, off the common 100 Hz
// so that sampling does not run in lockstep with periodic work.
const DefaultFrequency = 99

const (
	maxFrequency = 10000
	// settleDelay is how long a buffer flip waits for programs that read
	// the old index to finish; they run for microseconds.
	settleDelay = 2 * time.Millisecond
)

func (o *Options) validate() error {
	if o.Frequency == 0 {
		o.Frequency = DefaultFrequency
	}
	if o.Frequency < 1 || o.Frequency > maxFrequency {
		return fmt.Errorf("on_cpu frequency: %d Hz is out of range [1, %d]", o.Frequency, maxFrequency)
	}
	for _, f := range []struct {
		name string
		v    *int
		def  int
	}{{"stack_entries", &o.StackEntries, 8192}, {"count_entries", &o.CountEntries, 8192}, {"max_pids", &o.MaxPIDs, 1024}, {"max_frames", &o.MaxFrames, 127}} {
		if *f.v == 0 {
			*f.v = f.def
		}
		if *f.v < 1 || *f.v > 1<<20 {
			return fmt.Errorf("on_cpu %s: %d is out of range [1, %d]", f.name, *f.v, 1<<20)
		}
	}
	if o.EventBytes == 0 {
		o.EventBytes = 4 << 20
	}
	return nil
}

// ErrClosed is returned by operations on a closed Sampler or Subscription.
var ErrClosed = errors.New("on-CPU sampler is closed")

// Sampler is a loaded, attached on-CPU sampler. Any number of
// Subscriptions (tasks) share it; each names one process.
type Sampler struct {
	freq      int
	maxFrames int
	uw        *unwinding // nil: frame pointers only

	mu     sync.Mutex
	objs   *oncpubpf.Objects
	links  []link.Link
	events []int // perf event fds
	active uint32
	subs   map[uint32][]*Subscription
	stats  [oncpubpf.NumStats]uint64 // totals read so far
	closed bool
}

// Open loads the BPF program and attaches it to a CPU-clock perf event on
// every online CPU. Nothing is sampled until a process is added.
func Open(opts Options) (_ *Sampler, err error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if opts.EventBytes&(opts.EventBytes-1) != 0 || opts.EventBytes < 64<<10 {
		return nil, fmt.Errorf("on_cpu event_bytes: %d is not a power of two of at least 64 KiB", opts.EventBytes)
	}
	cfg := oncpubpf.Config{
		StackEntries: uint32(opts.StackEntries),
		CountEntries: uint32(opts.CountEntries),
		MaxPIDs:      uint32(opts.MaxPIDs),
		Unwind:       !opts.FramePointersOnly,
		EventBytes:   uint32(opts.EventBytes),
	}
	if dev, ino, init, err := pidNamespace(); err != nil {
		return nil, err
	} else if !init || opts.forcePIDNamespace {
		cfg.PIDNamespaceDev, cfg.PIDNamespaceIno = dev, ino
	}
	objs, err := oncpubpf.Load(cfg)
	if err != nil {
		return nil, privilegeHint(err)
	}
	s := &Sampler{freq: opts.Frequency, maxFrames: opts.MaxFrames, objs: objs, subs: map[uint32][]*Subscription{}}
	defer func() {
		if err != nil {
			s.closeLocked()
			if s.uw != nil {
				s.uw.stop()
			}
		}
	}()
	if cfg.Unwind {
		if err := s.startUnwinding(); err != nil {
			return nil, fmt.Errorf("on_cpu: read stack snapshots: %w", err)
		}
	}

	cpus, err := onlineCPUs()
	if err != nil {
		return nil, err
	}
	for _, cpu := range cpus {
		attr := unix.PerfEventAttr{
			Type:   unix.PERF_TYPE_SOFTWARE,
			Config: unix.PERF_COUNT_SW_CPU_CLOCK,
			Size:   uint32(binary.Size(unix.PerfEventAttr{})),
			Sample: uint64(opts.Frequency),
			Bits:   unix.PerfBitFreq,
		}
		fd, err := unix.PerfEventOpen(&attr, -1, cpu, -1, unix.PERF_FLAG_FD_CLOEXEC)
		if err != nil {
			return nil, privilegeHint(fmt.Errorf("perf_event_open(cpu-clock, cpu %d): %w", cpu, err))
		}
		s.events = append(s.events, fd)
		l, err := link.AttachRawLink(link.RawLinkOptions{Target: fd, Program: objs.Program(), Attach: ebpf.AttachPerfEvent})
		if err != nil {
			if !errors.Is(err, ebpf.ErrNotSupported) {
				return nil, fmt.Errorf("attach on-CPU program to cpu %d: %w", cpu, err)
			}
			// Kernels before 5.15 have no BPF link for perf events.
			if err := unix.IoctlSetInt(fd, unix.PERF_EVENT_IOC_SET_BPF, objs.Program().FD()); err != nil {
				return nil, fmt.Errorf("attach on-CPU program to cpu %d: %w", cpu, err)
			}
			if err := unix.IoctlSetInt(fd, unix.PERF_EVENT_IOC_ENABLE, 0); err != nil {
				return nil, fmt.Errorf("enable perf event on cpu %d: %w", cpu, err)
			}
			continue
		}
		s.links = append(s.links, l)
	}
	return s, nil
}

// Frequency is the sampling frequency in Hz.
func (s *Sampler) Frequency() int { return s.freq }

// Add starts sampling process pid (as seen in this process's /proc) for a
// new subscriber. Several subscriptions may name the same process; it stays
// in the filter until the last one is closed.
func (s *Sampler) Add(pid int) (*Subscription, error) {
	if pid <= 0 || pid > 1<<22 {
		return nil, fmt.Errorf("on_cpu pid: %d is not a valid process id", pid)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	key := uint32(pid)
	if len(s.subs[key]) == 0 {
		if err := s.objs.TargetPids.Update(key, uint8(1), ebpf.UpdateAny); err != nil {
			if errors.Is(err, syscall.E2BIG) {
				return nil, fmt.Errorf("on_cpu: cannot profile pid %d: already profiling the maximum of %d processes", pid, s.objs.TargetPids.MaxEntries())
			}
			return nil, fmt.Errorf("on_cpu: add pid %d to the filter: %w", pid, err)
		}
		if s.uw != nil {
			// Tables are built in the background: the task does not wait.
			_ = s.uw.unw.Add(pid)
		}
	}
	sub := &Subscription{s: s, pid: key, start: time.Now(), acc: map[string]*RawSample{}}
	s.subs[key] = append(s.subs[key], sub)
	return sub, nil
}

// Close detaches and unloads everything. Subscriptions still open return
// ErrClosed from then on.
func (s *Sampler) Close() error {
	s.mu.Lock()
	uw := s.uw
	err := s.closeLocked()
	s.mu.Unlock()
	if uw != nil {
		err = errors.Join(err, uw.stop())
	}
	return err
}

func (s *Sampler) closeLocked() error {
	if s.closed {
		return nil
	}
	s.closed = true
	var errs []error
	for _, l := range s.links {
		errs = append(errs, l.Close())
	}
	for _, fd := range s.events {
		errs = append(errs, unix.Close(fd))
	}
	if s.objs != nil {
		errs = append(errs, s.objs.Close())
	}
	s.links, s.events, s.objs = nil, nil, nil
	for _, subs := range s.subs {
		for _, sub := range subs {
			sub.closed = true
		}
	}
	s.subs = nil
	return errors.Join(errs...)
}

func (s *Sampler) remove(sub *Subscription) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sub.closed {
		return nil
	}
	sub.closed = true
	if s.closed {
		return nil
	}
	list := s.subs[sub.pid]
	for i, x := range list {
		if x == sub {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	var err error
	if len(list) == 0 {
		delete(s.subs, sub.pid)
		if s.uw != nil {
			s.uw.unw.Forget(int(sub.pid))
			delete(s.uw.pending, sub.pid)
		}
		if e := s.objs.TargetPids.Delete(sub.pid); e != nil && !errors.Is(e, ebpf.ErrKeyNotExist) {
			err = fmt.Errorf("on_cpu: remove pid %d from the filter: %w", sub.pid, e)
		}
	} else {
		s.subs[sub.pid] = list
	}
	return err
}

// idle reports whether no subscription is open.
func (s *Sampler) idle() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.subs) == 0
}

// collectLocked moves everything the kernel gathered since the last
// collection into the subscribers' accumulators.
func (s *Sampler) collectLocked() error {
	if s.uw != nil {
		s.collectUnwoundLocked()
		return s.readStatsLocked()
	}
	inactive := s.active
	s.active ^= 1
	if err := s.objs.SetActive(s.active); err != nil {
		return fmt.Errorf("on_cpu: flip buffers: %w", err)
	}
	time.Sleep(settleDelay)
	counts, stacks := s.objs.Buffer(inactive)

	var (
		key   oncpubpf.SampleKey
		count uint64
		keys  []oncpubpf.SampleKey
		cache = map[int32][]uint64{}
		trace [oncpubpf.MaxStackDepth]uint64
	)
	stack := func(id int32) []uint64 {
		if id < 0 {
			return nil
		}
		if st, ok := cache[id]; ok {
			return st
		}
		var st []uint64
		if err := stacks.Lookup(uint32(id), &trace); err == nil {
			n := 0
			for n < len(trace) && trace[n] != 0 {
				n++
			}
			st = append([]uint64(nil), trace[:n]...)
		}
		cache[id] = st
		return st
	}
	it := counts.Iterate()
	for it.Next(&key, &count) {
		keys = append(keys, key)
		subs := s.subs[key.Pid]
		if len(subs) == 0 {
			continue // the process was removed since
		}
		user, kernel := stack(key.UserStackId), stack(key.KernelStackId)
		sk := stackKey(user, kernel, key.UserStackId < 0)
		for _, sub := range subs {
			sub.addLocked(sk, user, kernel, key.UserStackId < 0, key.KernelStackId < 0 && key.KernelStackId != -int32(syscall.EFAULT), count)
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("on_cpu: read counts: %w", err)
	}
	if len(keys) > 0 {
		if _, err := counts.BatchDelete(keys, nil); err != nil {
			for i := range keys { // batch ops need 5.6+
				_ = counts.Delete(&keys[i])
			}
		}
	}
	// Empty the stack map, including stacks whose count was dropped.
	var id uint32
	var ids []uint32
	sit := stacks.Iterate()
	for sit.Next(&id, &trace) {
		ids = append(ids, id)
	}
	for _, id := range ids {
		_ = stacks.Delete(id)
	}
	return s.readStatsLocked()
}

func (s *Sampler) readStatsLocked() error {
	var perCPU []uint64
	for i := range s.stats {
		if err := s.objs.Stats.Lookup(uint32(i), &perCPU); err != nil {
			return fmt.Errorf("on_cpu: read stats: %w", err)
		}
		var sum uint64
		for _, v := range perCPU {
			sum += v
		}
		s.stats[i] = sum
	}
	return nil
}

// Stats are sampler-wide totals since Open.
type Stats struct {
	Samples          uint64 // samples of target processes
	UserStacksLost   uint64 // user stack not recorded (map full or collision)
	KernelStacksLost uint64
	SamplesLost      uint64 // count map full
}

// Stats reads the sampler-wide counters.
func (s *Sampler) Stats() (Stats, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return Stats{}, ErrClosed
	}
	if err := s.readStatsLocked(); err != nil {
		return Stats{}, err
	}
	return Stats{
		Samples:          s.stats[oncpubpf.StatSamples],
		UserStacksLost:   s.stats[oncpubpf.StatUserStackLost],
		KernelStacksLost: s.stats[oncpubpf.StatKernelStackLost],
		SamplesLost:      s.stats[oncpubpf.StatCountLost] + s.stats[oncpubpf.StatEventLost],
	}, nil
}

func stackKey(user, kernel []uint64, userLost bool) string {
	b := make([]byte, 0, 8*(len(user)+len(kernel))+9)
	for _, a := range kernel {
		b = binary.LittleEndian.AppendUint64(b, a)
	}
	b = append(b, '|')
	for _, a := range user {
		b = binary.LittleEndian.AppendUint64(b, a)
	}
	if userLost {
		b = append(b, 'L')
	}
	return string(b)
}

// pidNamespace identifies the PID namespace we run in; init is true for
// the initial namespace, where the kernel's PIDs are ours.
func pidNamespace() (dev, ino uint64, init bool, err error) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/ns/pid", &st); err != nil {
		return 0, 0, false, fmt.Errorf("on_cpu: identify pid namespace: %w", err)
	}
	const procPIDInitIno = 0xEFFFFFFC
	return st.Dev, st.Ino, st.Ino == procPIDInitIno, nil
}

func onlineCPUs() ([]int, error) {
	b, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err != nil {
		return nil, fmt.Errorf("on_cpu: list online CPUs: %w", err)
	}
	return parseCPUList(strings.TrimSpace(string(b)))
}

// parseCPUList parses "0-3,5,7-8".
func parseCPUList(s string) ([]int, error) {
	var cpus []int
	for _, part := range strings.Split(s, ",") {
		if part == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return nil, fmt.Errorf("on_cpu: bad CPU list %q", s)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return nil, fmt.Errorf("on_cpu: bad CPU list %q", s)
			}
		}
		for c := a; c <= b; c++ {
			cpus = append(cpus, c)
		}
	}
	if len(cpus) == 0 {
		return nil, fmt.Errorf("on_cpu: bad CPU list %q", s)
	}
	return cpus, nil
}

func privilegeHint(err error) error {
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		return fmt.Errorf("%w (on-CPU profiling needs root or CAP_BPF+CAP_PERFMON)", err)
	}
	return err
}
