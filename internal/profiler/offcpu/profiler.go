//go:build linux

// Package offcpu drives the off-CPU profiler: the BPF programs of
// bpf/offcpu on the sched_switch and sched_process_exit BTF tracepoints, a
// PID filter shared by every task that uses them, and the per-interval
// drain of blocked time per stack.
package offcpu

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

	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	offcpubpf "github.com/contprof/contprof/bpf/offcpu"
)

// Options configure a Profiler; zero values take the defaults.
type Options struct {
	// MinBlock: blocks shorter than this are not counted (their stacks are
	// still taken at switch-out). Default 0: every block counts.
	MinBlock time.Duration
	// StackEntries sizes each of the two stack maps; default 8192. An entry
	// holds 127 frames (about 1 KiB of kernel memory).
	StackEntries int
	// CountEntries sizes each of the two counts maps; default 8192.
	CountEntries int
	// ThreadEntries sizes the map of threads off the CPU now (of target
	// processes only); default 16384, least recently used dropped beyond.
	ThreadEntries int
	// MaxPIDs is how many processes can be profiled at once; default 1024.
	// (The kernel filter is a bitmap over pid_max, 512 KiB at most.)
	MaxPIDs int
	// MaxStacksPerSecond bounds the stack walks per CPU per second (a
	// walk of the user and kernel stacks costs microseconds); default 1000.
	// Beyond it, switch-outs are sampled with probability budget/rate and
	// their time scaled by rate/budget, so totals and shares stay unbiased
	// (a thread switching 50,000 times a second is then sampled, one that
	// blocks 100 times a second is recorded exactly).
	MaxStacksPerSecond int

	// forcePIDNamespace makes the program translate PIDs through the
	// namespace helper even in the initial namespace (tests).
	forcePIDNamespace bool
}

// DefaultMaxStacksPerSecond is the default stack budget per CPU: at a few
// microseconds a walk, about 1% of a CPU at most.
const DefaultMaxStacksPerSecond = 1000

const (
	// maxMinBlock bounds MinBlock: a longer threshold would hide nearly
	// everything and is most likely a unit mistake.
	maxMinBlock = time.Minute
	// settleDelay is how long a buffer flip waits for programs that read
	// the old index to finish; they run for microseconds.
	settleDelay = 2 * time.Millisecond
)

func (o *Options) validate() error {
	if o.MinBlock < 0 || o.MinBlock > maxMinBlock {
		return fmt.Errorf("off_cpu min_block: %v is out of range [0, %v]", o.MinBlock, maxMinBlock)
	}
	for _, f := range []struct {
		name string
		v    *int
		def  int
	}{
		{"stack_entries", &o.StackEntries, 8192},
		{"count_entries", &o.CountEntries, 8192},
		{"thread_entries", &o.ThreadEntries, 16384},
		{"max_pids", &o.MaxPIDs, 1024},
		{"max_stacks_per_second", &o.MaxStacksPerSecond, DefaultMaxStacksPerSecond},
	} {
		if *f.v == 0 {
			*f.v = f.def
		}
		if *f.v < 1 || *f.v > 1<<20 {
			return fmt.Errorf("off_cpu %s: %d is out of range [1, %d]", f.name, *f.v, 1<<20)
		}
	}
	return nil
}

// ErrClosed is returned by operations on a closed Profiler or Subscription.
var ErrClosed = errors.New("off-CPU profiler is closed")

// Profiler is a loaded, attached off-CPU profiler. Any number of
// Subscriptions (tasks) share it; each names one process.
type Profiler struct {
	minBlock time.Duration
	maxPIDs  int
	pidMax   int

	mu     sync.Mutex
	objs   *offcpubpf.Objects
	links  []link.Link
	active uint32
	subs   map[uint32][]*Subscription
	stats  [offcpubpf.NumStats]uint64 // totals read so far
	closed bool
}

// Open loads the BPF programs and attaches them. Nothing is recorded until
// a process is added.
func Open(opts Options) (_ *Profiler, err error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	pidMax, err := readPIDMax()
	if err != nil {
		return nil, err
	}
	cfg := offcpubpf.Config{
		StackEntries:  uint32(opts.StackEntries),
		CountEntries:  uint32(opts.CountEntries),
		ThreadEntries: uint32(opts.ThreadEntries),
		PIDMax:        uint32(pidMax),
		MinBlockNs:    uint64(opts.MinBlock),

		MaxStacksPerSecond: uint64(opts.MaxStacksPerSecond),
	}
	if dev, ino, init, err := pidNamespace(); err != nil {
		return nil, err
	} else if !init || opts.forcePIDNamespace {
		cfg.PIDNamespaceDev, cfg.PIDNamespaceIno = dev, ino
	}
	objs, err := offcpubpf.Load(cfg)
	if err != nil {
		return nil, privilegeHint(err)
	}
	p := &Profiler{minBlock: opts.MinBlock, maxPIDs: opts.MaxPIDs, pidMax: pidMax, objs: objs, subs: map[uint32][]*Subscription{}}
	defer func() {
		if err != nil {
			p.closeLocked()
		}
	}()
	if p.links, err = objs.Attach(); err != nil {
		return nil, privilegeHint(err)
	}
	return p, nil
}

// MinBlock is the shortest block counted.
func (p *Profiler) MinBlock() time.Duration { return p.minBlock }

// Add starts recording process pid (as seen in this process's /proc) for a
// new subscriber. Several subscriptions may name the same process; it stays
// in the filter until the last one is closed.
func (p *Profiler) Add(pid int) (*Subscription, error) {
	if pid <= 0 || pid > 1<<22 {
		return nil, fmt.Errorf("off_cpu pid: %d is not a valid process id", pid)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, ErrClosed
	}
	key := uint32(pid)
	if len(p.subs[key]) == 0 {
		if pid >= p.pidMax {
			return nil, fmt.Errorf("off_cpu pid: %d is not below pid_max %d", pid, p.pidMax)
		}
		if len(p.subs) >= p.maxPIDs {
			return nil, fmt.Errorf("off_cpu: cannot profile pid %d: already profiling the maximum of %d processes", pid, p.maxPIDs)
		}
		if err := p.objs.SetTarget(key, true); err != nil {
			return nil, fmt.Errorf("off_cpu: add pid %d to the filter: %w", pid, err)
		}
	}
	now := time.Now()
	sub := &Subscription{p: p, pid: key, created: now, start: now, acc: map[string]*RawSample{}}
	p.subs[key] = append(p.subs[key], sub)
	return sub, nil
}

// Close detaches and unloads everything. Subscriptions still open return
// ErrClosed from then on.
func (p *Profiler) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closeLocked()
}

func (p *Profiler) closeLocked() error {
	if p.closed {
		return nil
	}
	p.closed = true
	var errs []error
	for _, l := range p.links {
		errs = append(errs, l.Close())
	}
	if p.objs != nil {
		errs = append(errs, p.objs.Close())
	}
	p.links, p.objs = nil, nil
	for _, subs := range p.subs {
		for _, sub := range subs {
			sub.closed = true
		}
	}
	p.subs = nil
	return errors.Join(errs...)
}

func (p *Profiler) remove(sub *Subscription) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if sub.closed {
		return nil
	}
	sub.closed = true
	if p.closed {
		return nil
	}
	list := p.subs[sub.pid]
	for i, x := range list {
		if x == sub {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) > 0 {
		p.subs[sub.pid] = list
		return nil
	}
	delete(p.subs, sub.pid)
	var err error
	if e := p.objs.SetTarget(sub.pid, false); e != nil {
		err = fmt.Errorf("off_cpu: remove pid %d from the filter: %w", sub.pid, e)
	}
	// Threads of the process still off the CPU would keep their entries
	// (the program no longer looks at them) until they exit.
	var (
		tid  uint32
		st   offcpubpf.Start
		tids []uint32
	)
	it := p.objs.OffcpuStart.Iterate()
	for it.Next(&tid, &st) {
		if st.Pid == sub.pid {
			tids = append(tids, tid)
		}
	}
	for _, tid := range tids {
		_ = p.objs.OffcpuStart.Delete(tid)
	}
	return err
}

// idle reports whether no subscription is open.
func (p *Profiler) idle() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.subs) == 0
}

// stackReader reads stack map entries, each once per collection.
type stackReader struct {
	objs  *offcpubpf.Objects
	cache map[[2]int32][]uint64
	trace [offcpubpf.MaxStackDepth]uint64
}

func (r *stackReader) stack(buf uint32, id int32) []uint64 {
	if id < 0 {
		return nil
	}
	k := [2]int32{int32(buf & 1), id}
	if st, ok := r.cache[k]; ok {
		return st
	}
	_, stacks := r.objs.Buffer(buf & 1)
	var st []uint64
	if err := stacks.Lookup(uint32(id), &r.trace); err == nil {
		n := 0
		for n < len(r.trace) && r.trace[n] != 0 {
			n++
		}
		st = append([]uint64(nil), r.trace[:n]...)
	}
	r.cache[k] = st
	return st
}

// collectLocked moves every block counted since the last collection into
// the subscribers' accumulators and clears what the kernel no longer
// needs. With blockedFor set, threads of that process still off the CPU
// are also added to sub (time since max(block start, since)), without
// being cleared: for a task's last report.
func (p *Profiler) collectLocked(blockedFor *Subscription, since time.Time) error {
	// The program writes counts only into the active map: once the flip has
	// settled, the old one is stable and can be read and cleared.
	inactive := p.active
	p.active ^= 1
	if err := p.objs.SetActive(p.active); err != nil {
		return fmt.Errorf("off_cpu: flip buffers: %w", err)
	}
	time.Sleep(settleDelay)
	counts, oldStacks := p.objs.Buffer(inactive)
	activeCounts, _ := p.objs.Buffer(p.active)
	sr := &stackReader{objs: p.objs, cache: map[[2]int32][]uint64{}}

	var (
		key  offcpubpf.BlockKey
		val  offcpubpf.BlockValue
		keys []offcpubpf.BlockKey
	)
	it := counts.Iterate()
	for it.Next(&key, &val) {
		keys = append(keys, key)
		subs := p.subs[key.Pid]
		if len(subs) == 0 {
			continue // the process was removed since
		}
		p.addLocked(subs, sr, key.StackBuf, key.UserStackId, key.KernelStackId, val.Ns, val.Blocks)
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("off_cpu: read counts: %w", err)
	}
	if len(keys) > 0 {
		if _, err := counts.BatchDelete(keys, nil); err != nil {
			for i := range keys { // batch ops need 5.6+
				_ = counts.Delete(&keys[i])
			}
		}
	}

	// Threads off the CPU now; their stacks must outlive this collection.
	var (
		tid     uint32
		st      offcpubpf.Start
		keep    = map[int32]bool{}
		nowMono = time.Now()
		nowNs   = monotonicNs()
	)
	sit := p.objs.OffcpuStart.Iterate()
	for sit.Next(&tid, &st) {
		if uint32(st.StackBuf) == inactive {
			keep[st.UserStackId], keep[st.KernelStackId] = true, true
		}
		if blockedFor != nil && st.Pid == blockedFor.pid && nowNs > st.Ts {
			from := nowMono.Add(-time.Duration(nowNs - st.Ts))
			if from.Before(since) {
				from = since
			}
			if d := nowMono.Sub(from); d > 0 && d >= p.minBlock {
				ns, blocks := uint64(d), uint64(1)
				if st.P16 != 0 { // recorded with probability P16/65536
					ns, blocks = ns*65536/uint64(st.P16), 65536/uint64(st.P16)
				}
				p.addLocked([]*Subscription{blockedFor}, sr, uint32(st.StackBuf), st.UserStackId, st.KernelStackId, ns, blocks)
			}
		}
	}
	if err := sit.Err(); err != nil {
		return fmt.Errorf("off_cpu: read blocked threads: %w", err)
	}
	// Blocks that ended since the flip, counted in the now active map,
	// may name stacks of the inactive buffer too. Read after the start map:
	// the program adds a count before it deletes the start entry.
	ait := activeCounts.Iterate()
	for ait.Next(&key, &val) {
		if key.StackBuf == inactive {
			keep[key.UserStackId], keep[key.KernelStackId] = true, true
		}
	}
	if err := ait.Err(); err != nil {
		return fmt.Errorf("off_cpu: read counts: %w", err)
	}
	var (
		id  uint32
		ids []uint32
	)
	stIt := oldStacks.Iterate()
	for stIt.Next(&id, &sr.trace) {
		if !keep[int32(id)] {
			ids = append(ids, id)
		}
	}
	for _, id := range ids {
		_ = oldStacks.Delete(id)
	}
	return p.readStatsLocked()
}

func (p *Profiler) addLocked(subs []*Subscription, sr *stackReader, buf uint32, userID, kernelID int32, ns, blocks uint64) {
	user, kernel := sr.stack(buf, userID), sr.stack(buf, kernelID)
	userLost := userID < 0 && userID != -int32(syscall.EFAULT)
	kernelLost := kernelID < 0
	sk := stackKey(user, kernel, userLost, kernelLost)
	for _, sub := range subs {
		sub.addLocked(sk, user, kernel, userLost, kernelLost, ns, blocks)
	}
}

func (p *Profiler) readStatsLocked() error {
	var perCPU []uint64
	for i := range p.stats {
		if err := p.objs.Stats.Lookup(uint32(i), &perCPU); err != nil {
			return fmt.Errorf("off_cpu: read stats: %w", err)
		}
		var sum uint64
		for _, v := range perCPU {
			sum += v
		}
		p.stats[i] = sum
	}
	return nil
}

// Stats are profiler-wide totals since Open.
type Stats struct {
	SwitchOuts       uint64 // switch-outs of target threads recorded (stacks taken)
	Blocks           uint64 // blocks counted
	ShortBlocks      uint64 // blocks shorter than MinBlock, not counted
	UserStacksLost   uint64 // user stack not recorded (map full or collision)
	KernelStacksLost uint64
	BlocksLost       uint64 // counts map full
	// Unsampled switch-outs were skipped by the stack budget (their time
	// is represented by the sampled ones).
	Unsampled uint64
}

// Stats reads the profiler-wide counters.
func (p *Profiler) Stats() (Stats, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return Stats{}, ErrClosed
	}
	if err := p.readStatsLocked(); err != nil {
		return Stats{}, err
	}
	return Stats{
		SwitchOuts:       p.stats[offcpubpf.StatSwitchOut],
		Blocks:           p.stats[offcpubpf.StatBlocks],
		ShortBlocks:      p.stats[offcpubpf.StatShortBlocks],
		UserStacksLost:   p.stats[offcpubpf.StatUserStackLost],
		KernelStacksLost: p.stats[offcpubpf.StatKernelStackLost],
		BlocksLost:       p.stats[offcpubpf.StatCountLost],
		Unsampled:        p.stats[offcpubpf.StatUnsampled],
	}, nil
}

func stackKey(user, kernel []uint64, userLost, kernelLost bool) string {
	b := make([]byte, 0, 8*(len(user)+len(kernel))+3)
	for _, a := range kernel {
		b = binary.LittleEndian.AppendUint64(b, a)
	}
	b = append(b, '|')
	for _, a := range user {
		b = binary.LittleEndian.AppendUint64(b, a)
	}
	if userLost {
		b = append(b, 'U')
	}
	if kernelLost {
		b = append(b, 'K')
	}
	return string(b)
}

// monotonicNs is CLOCK_MONOTONIC, the clock of bpf_ktime_get_ns.
func monotonicNs() uint64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return uint64(ts.Nano())
}

// pidNamespace identifies the PID namespace we run in; init is true for
// the initial namespace, where the kernel's PIDs are ours.
func pidNamespace() (dev, ino uint64, init bool, err error) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/ns/pid", &st); err != nil {
		return 0, 0, false, fmt.Errorf("off_cpu: identify pid namespace: %w", err)
	}
	const procPIDInitIno = 0xEFFFFFFC
	return st.Dev, st.Ino, st.Ino == procPIDInitIno, nil
}

// readPIDMax reads the kernel's PID limit, which sizes the filter bitmap.
func readPIDMax() (int, error) {
	b, err := os.ReadFile("/proc/sys/kernel/pid_max")
	if err != nil {
		return 0, fmt.Errorf("off_cpu: read pid_max: %w", err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || n < 1 || n > 1<<22 {
		return 0, fmt.Errorf("off_cpu: /proc/sys/kernel/pid_max: %q is not a PID limit", strings.TrimSpace(string(b)))
	}
	return n, nil
}

func privilegeHint(err error) error {
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		return fmt.Errorf("%w (off-CPU profiling needs root or CAP_BPF+CAP_PERFMON)", err)
	}
	return err
}
