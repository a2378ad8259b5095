//go:build linux

// Package httpmon monitors the HTTP/1.x exchanges of chosen processes with
// eBPF on socket or syscall tracepoints (bpf/httpmon; no kprobes, no
// fentry) and aggregates them into per-process http.server.request.duration
// and http.client.request.duration histograms, one interval at a time.
//
// The kernel side looks only at the first bytes of each read and write of
// a monitored process (the first iovec of vectored calls), recognises
// request and status lines, pairs them per (process, fd) in both roles and
// counts completed exchanges per series (process, role, method, status,
// path without query, at most 128 bytes) into duration histograms, per CPU
// and interval; Drain reads and clears them. Nothing leaves the kernel per
// exchange, except for observed processes (SetObservedPIDs), whose
// exchanges are also sent one by one (with start and fd) to the observer.
// Bodies and headers never leave the kernel.
//
// Not seen: TLS (the bytes are encrypted at the syscall), HTTP/2 and
// HTTP/3, io_uring, sendfile/splice, and 32-bit compat syscalls. A
// pipelined request replaces the pending one (counted as unmatched).
package httpmon

import (
	"cmp"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	bpfhttpmon "github.com/contprof/contprof/bpf/httpmon"
	bpfload "github.com/contprof/contprof/bpf/load"
	"github.com/contprof/contprof/internal/monitor/procfs"
	"github.com/contprof/contprof/internal/ringread"
)

// Attachment flavours.
const (
	// AttachAuto uses the socket tracepoints where the kernel has them,
	// else the per-syscall tracepoints when tracefs is available, else the
	// raw sys_exit tracepoint.
	AttachAuto = ""
	// AttachSock uses sock:sock_send_length, sock:sock_recv_length and
	// sock:inet_sock_set_state (tp_btf, Linux 6.3+): programs run only for
	// socket sends and receives, and no task is put on the slow system
	// call path (which any syscall tracepoint does to every task).
	AttachSock = "sock"
	// AttachTracepoint uses syscalls/sys_exit_<name> (needs tracefs).
	AttachTracepoint = "tracepoint"
	// AttachRawTracepoint uses the raw sys_exit tracepoint (no tracefs
	// needed; the program runs, and returns at once, for every system call).
	AttachRawTracepoint = "raw_tracepoint"
)

// OtherPath replaces url.path once a process has MaxPathsPerProcess
// distinct paths.
const OtherPath = "_other"

// Options configure a Monitor; zero values take the defaults.
type Options struct {
	// MaxPathsPerProcess caps distinct url.path values per process
	// (default 100); later new paths are reported as OtherPath.
	MaxPathsPerProcess int
	// MaxPIDs caps how many processes are monitored at once (default
	// 4096). The in-kernel filter itself is a bitmap sized by pid_max.
	MaxPIDs int
	// MaxConnections is the capacity of the in-kernel table of pending
	// exchanges, one per (process, fd) (default 16384).
	MaxConnections int
	// RingBufferBytes is the event ring size, a power of two ≥ 64 KiB
	// (default 2 MiB).
	RingBufferBytes int
	// MaxSeries is the capacity of the in-kernel table of series
	// (process, role, method, status, path) of the current and the previous
	// interval (default 8192); exchanges of a new series are lost (Stats)
	// while it is full.
	MaxSeries int
	// PollInterval bounds how long observed exchanges wait in the ring
	// before the observer sees them (default 100ms). The reader is otherwise
	// woken only when a quarter of the ring is filled, which keeps the
	// cost per request low under load.
	PollInterval time.Duration
	// Attach selects the tracepoint flavour (default AttachAuto).
	Attach string
}

func (o *Options) setDefaults() error {
	o.MaxPathsPerProcess = cmp.Or(o.MaxPathsPerProcess, 100)
	o.MaxPIDs = cmp.Or(o.MaxPIDs, 4096)
	o.MaxConnections = cmp.Or(o.MaxConnections, 16384)
	o.MaxSeries = cmp.Or(o.MaxSeries, 8192)
	o.RingBufferBytes = cmp.Or(o.RingBufferBytes, 2<<20)
	o.PollInterval = cmp.Or(o.PollInterval, 100*time.Millisecond)
	var errs []error
	if o.MaxPathsPerProcess < 1 {
		errs = append(errs, fmt.Errorf("max_paths_per_process: %d must be ≥ 1", o.MaxPathsPerProcess))
	}
	if o.MaxPIDs < 1 || o.MaxPIDs > 1<<20 {
		errs = append(errs, fmt.Errorf("max_pids: %d is out of range [1, 1048576]", o.MaxPIDs))
	}
	if o.MaxConnections < 1 || o.MaxConnections > 1<<22 {
		errs = append(errs, fmt.Errorf("max_connections: %d is out of range [1, 4194304]", o.MaxConnections))
	}
	if o.MaxSeries < 1 || o.MaxSeries > 1<<20 {
		errs = append(errs, fmt.Errorf("max_series: %d is out of range [1, 1048576]", o.MaxSeries))
	}
	if n := o.RingBufferBytes; n < 64<<10 || n > 1<<30 || n&(n-1) != 0 {
		errs = append(errs, fmt.Errorf("ring_buffer_bytes: %d is not a power of two in [64KiB, 1GiB]", n))
	}
	if o.PollInterval < time.Millisecond || o.PollInterval > 10*time.Second {
		errs = append(errs, fmt.Errorf("poll_interval: %v is out of range [1ms, 10s]", o.PollInterval))
	}
	switch o.Attach {
	case AttachAuto, AttachSock, AttachTracepoint, AttachRawTracepoint:
	default:
		errs = append(errs, fmt.Errorf("attach: %q is not one of %q, %q, %q, %q", o.Attach, AttachAuto, AttachSock, AttachTracepoint, AttachRawTracepoint))
	}
	return errors.Join(errs...)
}

// Stats are cumulative counters since Open.
type Stats struct {
	// Exchanges is the number of completed exchanges the kernel counted.
	Exchanges uint64
	// Lost exchanges were completed but not counted (the series table was
	// full) or not sent to the observer (the ring buffer was full).
	Lost uint64
	// UnmatchedRequests were replaced by another request, or their
	// connection closed, before a response was seen (e.g. pipelining).
	UnmatchedRequests uint64
	// UnmatchedResponses came without a pending request on their
	// connection (e.g. the request predates monitoring).
	UnmatchedResponses uint64
	// Dropped exchanges reached user space for a PID no longer monitored
	// or as a malformed record.
	Dropped uint64
}

// Monitor runs the HTTP monitor programs and aggregates their exchanges.
type Monitor struct {
	opts   Options
	objs   *bpfhttpmon.Objects
	links  []link.Link
	rd     *ringread.Reader
	attach string
	notes  []string

	drainMu sync.Mutex // one Drain at a time

	pidLimit uint32 // PIDs must be below this: the filter's size

	mu       sync.Mutex
	closed   bool
	pids     map[uint32]struct{}
	targets  pidBitmap // the PID filter
	observed pidBitmap // processes whose exchanges go to the observer
	procs    map[uint32]*procState
	dropped  uint64
	epoch    uint32 // the interval the kernel counts in (agg_epoch)
	grace    *bpfload.Grace
	// observer sees each exchange (SetObserver); called under mu.
	observer func(Exchange)
}

// Open loads and attaches the programs. Nothing is monitored until PIDs are
// added. The caller must Close the Monitor.
func Open(opts Options) (_ *Monitor, err error) {
	if err := opts.setDefaults(); err != nil {
		return nil, fmt.Errorf("http monitor: %w", err)
	}
	pidLimit, err := procfs.PIDMax()
	if err != nil {
		return nil, fmt.Errorf("http monitor: %w", err)
	}
	cfg := bpfhttpmon.Config{
		PIDLimit:        pidLimit,
		MaxConns:        uint32(opts.MaxConnections),
		MaxSeries:       uint32(opts.MaxSeries),
		BoundsNs:        boundsNs(),
		RingBufferBytes: uint32(opts.RingBufferBytes),
		WakeupBytes:     uint64(opts.RingBufferBytes / 4),
	}
	if dev, ino, init, err := procfs.PIDNamespace(); err != nil {
		return nil, fmt.Errorf("http monitor: %w", err)
	} else if !init {
		cfg.PIDNamespaceDev, cfg.PIDNamespaceIno = dev, ino
	}
	m := &Monitor{
		opts:     opts,
		pidLimit: pidLimit,
		pids:     map[uint32]struct{}{},
		procs:    map[uint32]*procState{},
	}
	defer func() {
		if err != nil {
			m.release()
		}
	}()

	// Only the programs of the flavour tried are loaded: a fallback
	// reloads.
	switch opts.Attach {
	case AttachSock:
		if err = m.load(cfg, true); err == nil {
			err = m.attachSock()
		}
	case AttachTracepoint:
		if err = m.load(cfg, false); err == nil {
			err = m.attachTracepoints()
		}
	case AttachRawTracepoint:
		if err = m.load(cfg, false); err == nil {
			err = m.attachRaw()
		}
	default:
		if bpfhttpmon.HasSockTracepoints() {
			if err = m.load(cfg, true); err == nil {
				if err = m.attachSock(); err == nil {
					break
				}
			}
			m.closeLinks()
		}
		if err = m.load(cfg, false); err != nil {
			break
		}
		if err = m.attachTracepoints(); err != nil {
			tpErr := err
			m.closeLinks()
			m.notes = nil
			if err = m.attachRaw(); err != nil {
				err = fmt.Errorf("%w; fallback: %w", tpErr, err)
			}
		}
	}
	if err != nil {
		return nil, privilegeHint(err)
	}

	if m.grace, err = bpfload.NewGrace(); err != nil {
		return nil, fmt.Errorf("http monitor: %w", err)
	}
	m.targets = pidBitmap{m: m.objs.TargetPids, words: map[uint32]uint64{}}
	m.observed = pidBitmap{m: m.objs.ObservedPids, words: map[uint32]uint64{}}
	m.rd, err = ringread.Start(m.objs.Events, m.opts.PollInterval, m.handle)
	if err != nil {
		return nil, fmt.Errorf("http monitor: open ring buffer reader: %w", err)
	}
	return m, nil
}

// load loads the programs of the socket flavour (sock) or of the system
// call flavours, replacing those loaded before.
func (m *Monitor) load(cfg bpfhttpmon.Config, sock bool) error {
	if m.objs != nil {
		if err := m.objs.Close(); err != nil {
			return fmt.Errorf("http monitor: %w", err)
		}
		m.objs = nil
	}
	cfg.Sock = sock
	objs, err := bpfhttpmon.Load(cfg)
	if err != nil {
		return err
	}
	m.objs = objs
	return nil
}

func (m *Monitor) attachTracepoints() error {
	prog := m.objs.Program(false)
	for _, sc := range bpfhttpmon.Syscalls {
		l, err := link.Tracepoint("syscalls", "sys_exit_"+sc, prog, nil)
		if err != nil && sc == "close" {
			// Some kernels refuse BPF on this tracepoint (EACCES). Closing
			// only frees a pending exchange early; the fd's next request
			// replaces it anyway.
			m.notes = append(m.notes, fmt.Sprintf("tracepoint syscalls/sys_exit_close not attached (%v): an exchange pending at close is dropped when its fd is reused instead of at close", err))
			continue
		}
		if err != nil {
			return fmt.Errorf("http monitor: attach tracepoint syscalls/sys_exit_%s: %w", sc, err)
		}
		m.links = append(m.links, l)
	}
	m.attach = AttachTracepoint
	return nil
}

func (m *Monitor) attachSock() error {
	progs := m.objs.SockPrograms()
	for _, name := range []string{"sock_send_length", "sock_recv_length", "inet_sock_set_state"} {
		if progs[name] == nil {
			return fmt.Errorf("http monitor: the kernel has no tracepoint sock:%s", name)
		}
		l, err := link.AttachTracing(link.TracingOptions{Program: progs[name], AttachType: ebpf.AttachTraceRawTp})
		if err != nil {
			return fmt.Errorf("http monitor: attach tp_btf/%s: %w", name, err)
		}
		m.links = append(m.links, l)
	}
	m.attach = AttachSock
	return nil
}

func (m *Monitor) attachRaw() error {
	l, err := link.AttachRawTracepoint(link.RawTracepointOptions{Name: "sys_exit", Program: m.objs.Program(true)})
	if err != nil {
		return fmt.Errorf("http monitor: attach raw tracepoint sys_exit: %w", err)
	}
	m.links = append(m.links, l)
	m.attach = AttachRawTracepoint
	return nil
}

// Attachment reports the tracepoint flavour in use: AttachSock,
// AttachTracepoint or AttachRawTracepoint.
func (m *Monitor) Attachment() string { return m.attach }

// Notes describe features the kernel refused that monitoring works
// without, for the caller to log once.
func (m *Monitor) Notes() []string { return m.notes }

// SetPIDs makes pids the exact set of monitored processes. Data of removed
// processes not yet drained is still returned by the next Drain.
func (m *Monitor) SetPIDs(pids []int) error {
	want := make(map[uint32]struct{}, len(pids))
	for _, p := range pids {
		if p <= 0 || p > 1<<22 {
			return fmt.Errorf("http monitor: pid %d is not a valid PID", p)
		}
		want[uint32(p)] = struct{}{}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return errClosed
	}
	var errs []error
	for p := range m.pids {
		if _, ok := want[p]; !ok {
			errs = append(errs, m.removeLocked(p))
		}
	}
	for p := range want {
		if _, ok := m.pids[p]; !ok {
			errs = append(errs, m.addLocked(p))
		}
	}
	return errors.Join(errs...)
}

// AddPID starts monitoring pid.
func (m *Monitor) AddPID(pid int) error {
	if pid <= 0 || pid > 1<<22 {
		return fmt.Errorf("http monitor: pid %d is not a valid PID", pid)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return errClosed
	}
	if _, ok := m.pids[uint32(pid)]; ok {
		return nil
	}
	return m.addLocked(uint32(pid))
}

// RemovePID stops monitoring pid.
func (m *Monitor) RemovePID(pid int) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return errClosed
	}
	if _, ok := m.pids[uint32(pid)]; !ok {
		return nil
	}
	return m.removeLocked(uint32(pid))
}

// PIDs returns the monitored PIDs, sorted.
func (m *Monitor) PIDs() []int {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]int, 0, len(m.pids))
	for p := range m.pids {
		out = append(out, int(p))
	}
	sort.Ints(out)
	return out
}

var errClosed = errors.New("http monitor: closed")

func (m *Monitor) addLocked(pid uint32) error {
	if pid >= m.pidLimit {
		return fmt.Errorf("http monitor: add pid %d: above the kernel's pid_max (%d) when monitoring started", pid, m.pidLimit)
	}
	if len(m.pids) >= m.opts.MaxPIDs {
		return fmt.Errorf("http monitor: add pid %d: already monitoring max_pids (%d) processes", pid, m.opts.MaxPIDs)
	}
	if err := m.targets.set(pid, true); err != nil {
		return fmt.Errorf("http monitor: add pid %d: %w", pid, err)
	}
	m.pids[pid] = struct{}{}
	if ps, ok := m.procs[pid]; ok && ps.removed {
		// Re-added before its last data was drained: the same process
		// (or a reused PID, which the caller tells apart by start time).
		ps.removed = false
	}
	return nil
}

func (m *Monitor) removeLocked(pid uint32) error {
	delete(m.pids, pid)
	// Its exchanges since the last Drain are in the kernel's series: the
	// next Drain reports them once more, also for a process it never saw.
	ps, ok := m.procs[pid]
	if !ok {
		ps = newProcState()
		m.procs[pid] = ps
	}
	ps.removed = true
	if err := m.targets.set(pid, false); err != nil {
		return fmt.Errorf("http monitor: remove pid %d: %w", pid, err)
	}
	return nil
}

// SetObservedPIDs makes pids the exact set of processes whose exchanges,
// while they are monitored, are also sent one by one to the observer
// (SetObserver). The others' exchanges are only counted, in the kernel:
// the cheap path.
func (m *Monitor) SetObservedPIDs(pids []int) error {
	want := make(map[uint32]bool, len(pids))
	for _, p := range pids {
		if p <= 0 || uint32(p) >= m.pidLimit {
			return fmt.Errorf("http monitor: observed pid %d is not a PID below pid_max (%d)", p, m.pidLimit)
		}
		want[uint32(p)] = true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return errClosed
	}
	var errs []error
	for p := range m.observed.pids() {
		if !want[p] {
			errs = append(errs, m.observed.set(p, false))
		}
	}
	for p := range want {
		errs = append(errs, m.observed.set(p, true))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("http monitor: observed pids: %w", err)
	}
	return nil
}

// pidBitmap is a PID bitmap map of the programs (PIDWord) and the non-zero
// words as written.
type pidBitmap struct {
	m     *ebpf.Map
	words map[uint32]uint64
}

func (b *pidBitmap) set(pid uint32, on bool) error {
	idx, bit := bpfhttpmon.PIDWord(pid)
	w := b.words[idx] &^ bit
	if on {
		w |= bit
	}
	if w == b.words[idx] {
		return nil
	}
	if err := b.m.Update(idx, w, ebpf.UpdateAny); err != nil {
		return err
	}
	if w == 0 {
		delete(b.words, idx)
	} else {
		b.words[idx] = w
	}
	return nil
}

// pids are the PIDs set.
func (b *pidBitmap) pids() map[uint32]bool {
	out := map[uint32]bool{}
	for idx, w := range b.words {
		for i := range uint32(64) {
			if w&(1<<i) != 0 {
				out[idx*64+i] = true
			}
		}
	}
	return out
}

// handle passes an observed exchange to the observer.
func (m *Monitor) handle(b []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	// Records stop after their path's room (bpfhttpmon.ShortPathLen or
	// PathLen bytes); what is read is at most path_len bytes of it.
	if len(b) < offPath || len(b) < offPath+min(int(b[offPathLen]), pathLen) {
		m.dropped++
		return
	}
	// Counted in the histograms already; only the observer is left.
	if _, ok := m.pids[le32(b[16:])]; ok && m.observer != nil {
		m.observer(decodeExchange(b))
	}
}

// Drain returns what each monitored process did since the previous Drain
// and starts a new interval. Processes without completed exchanges are
// left out. Everything the kernel completed before the call is included.
func (m *Monitor) Drain() map[int]*ProcessHTTP {
	m.drainMu.Lock()
	defer m.drainMu.Unlock()
	m.mu.Lock()
	closed := m.closed
	m.mu.Unlock()
	if closed {
		return nil
	}
	// The observer first: it sees what completed before the call too.
	m.rd.Sync(m.opts.PollInterval + time.Second)

	// The programs count in the other interval from now on; the old one is
	// stable once those in flight have finished.
	old := m.epoch
	m.epoch ^= 1
	if err := m.objs.AggEpoch.Update(uint32(0), m.epoch, ebpf.UpdateExist); err != nil {
		m.epoch = old
		return map[int]*ProcessHTTP{}
	}
	if err := m.grace.Wait(); err != nil {
		time.Sleep(10 * time.Millisecond) // programs run for microseconds
	}
	byPID := m.takeAggs(uint8(old))

	m.mu.Lock()
	defer m.mu.Unlock()
	for pid, es := range byPID {
		ps := m.procs[pid]
		if ps == nil {
			if _, ok := m.pids[pid]; !ok {
				// Not monitored, nor removed since the last Drain: an
				// exchange that passed the filter as the PID was removed.
				for _, e := range es {
					m.dropped += e.h.Count
				}
				continue
			}
			ps = newProcState()
			m.procs[pid] = ps
		}
		ps.add(es, m.opts.MaxPathsPerProcess)
	}
	out := map[int]*ProcessHTTP{}
	for pid, ps := range m.procs {
		if ph := ps.drain(int(pid)); ph != nil {
			out[int(pid)] = ph
		}
		if ps.removed {
			delete(m.procs, pid)
		}
	}
	return out
}

// takeAggs reads and deletes the kernel's series of interval epoch, by
// process.
func (m *Monitor) takeAggs(epoch uint8) map[uint32][]aggEntry {
	byPID := map[uint32][]aggEntry{}
	add := func(key *bpfhttpmon.AggKey, values []bpfhttpmon.AggValue) {
		if e := entryOf(key, values); e.h.Count > 0 {
			byPID[key.Tgid] = append(byPID[key.Tgid], e)
		}
	}
	takeEpoch(m.objs.AggsShort, epoch, func(k *bpfhttpmon.AggKeyShort, v []bpfhttpmon.AggValue) uint8 {
		if k.Epoch == epoch {
			long := k.Long()
			add(&long, v)
		}
		return k.Epoch
	})
	takeEpoch(m.objs.Aggs, epoch, func(k *bpfhttpmon.AggKey, v []bpfhttpmon.AggValue) uint8 {
		if k.Epoch == epoch {
			add(k, v)
		}
		return k.Epoch
	})
	return byPID
}

// takeEpoch walks the series map mp, passing each entry to fn, which
// returns its epoch; the entries of epoch are deleted after the walk
// (deleting under the iterator would restart it).
func takeEpoch[K any](mp *ebpf.Map, epoch uint8, fn func(*K, []bpfhttpmon.AggValue) uint8) {
	var (
		key    K
		values []bpfhttpmon.AggValue
		done   []K
	)
	it := mp.Iterate()
	for it.Next(&key, &values) {
		if fn(&key, values) == epoch {
			done = append(done, key)
		}
	}
	// Nothing else deletes them: an error would be a kernel refusal, and
	// the entry is read again (as the old epoch) two Drains later.
	for i := range done {
		_ = mp.Delete(&done[i])
	}
}

// Stats returns the cumulative counters.
func (m *Monitor) Stats() (Stats, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return Stats{}, errClosed
	}
	v, err := bpfload.SumStats(m.objs.Stats, bpfhttpmon.NumStats)
	if err != nil {
		return Stats{}, fmt.Errorf("http monitor: %w", err)
	}
	return Stats{
		Exchanges:          v[bpfhttpmon.StatExchanges],
		Lost:               v[bpfhttpmon.StatLost],
		UnmatchedRequests:  v[bpfhttpmon.StatUnmatchedRequest],
		UnmatchedResponses: v[bpfhttpmon.StatUnmatchedResponse],
		Dropped:            m.dropped,
	}, nil
}

// Close detaches and unloads everything and stops the reader. Data not yet
// drained is discarded.
func (m *Monitor) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	m.mu.Unlock()
	m.drainMu.Lock() // wait for a Drain in progress
	defer m.drainMu.Unlock()
	return m.release()
}

func (m *Monitor) closeLinks() error {
	var errs []error
	for _, l := range m.links {
		errs = append(errs, l.Close())
	}
	m.links = nil
	return errors.Join(errs...)
}

func (m *Monitor) release() error {
	errs := []error{m.closeLinks()}
	if m.rd != nil {
		errs = append(errs, m.rd.Close())
	}
	if m.objs != nil {
		errs = append(errs, m.objs.Close())
	}
	if m.grace != nil {
		errs = append(errs, m.grace.Close())
	}
	return errors.Join(errs...)
}

func le32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

// privilegeHint names what is missing when the kernel refuses.
func privilegeHint(err error) error {
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		return fmt.Errorf("%w (HTTP monitoring needs root or CAP_BPF+CAP_PERFMON)", err)
	}
	if !strings.HasPrefix(err.Error(), "http monitor") {
		return fmt.Errorf("http monitor: %w", err)
	}
	return err
}
