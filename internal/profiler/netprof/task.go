//go:build linux

package netprof

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"sync"
	"time"
	"unsafe"

	"github.com/cilium/ebpf/link"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"golang.org/x/sys/unix"
	"golang.org/x/time/rate"

	"github.com/contprof/contprof/bpf/load"
	"github.com/contprof/contprof/bpf/tcpevents"
	"github.com/contprof/contprof/internal/monitor/procfs"
	"github.com/contprof/contprof/internal/output/histogram"
	"github.com/contprof/contprof/internal/ringread"
)

// Options configure a network profiling task; zero values take defaults.
type Options struct {
	// PIDs are the processes covered (a service instance on this host).
	PIDs []int
	// Resource returns the resource attributes of a covered process, put on
	// its ResourceMetrics and ResourceLogs. Nil (or a nil result) means
	// {process.pid: pid}.
	Resource func(pid int) map[string]any
	// Attributes (the trigger context, see profiles.TaskAttributes) are
	// stamped on every data point and log record.
	Attributes map[string]any
	// SlowThreshold: HTTP exchanges lasting at least this long are
	// candidates for a sampled log, like those answered with status ≥ 500.
	// Default 1s; negative means only failed exchanges.
	SlowThreshold time.Duration
	// LogsPerSecond and LogBurst size the token bucket that rate-limits
	// sampled exchange logs for the task (defaults 1/s and 10).
	LogsPerSecond float64
	LogBurst      int
	// MaxConnections is the capacity of the in-kernel connection table
	// (default 65536).
	MaxConnections int
	// MaxHTTPSeries caps distinct per-peer HTTP histogram series per
	// interval (default 2000); exchanges beyond it are counted in Stats.
	MaxHTTPSeries int
	// FDCacheTTL is how long a (pid, fd) → socket resolution of an HTTP
	// exchange is reused before /proc/PID/fd/FD is read again (default 1s).
	FDCacheTTL time.Duration
	// Attach selects the program flavour: tcpevents.AttachAuto (default:
	// classic tracepoints, else tp_btf when tracefs is not mounted),
	// AttachTracepoint or AttachBTF.
	Attach string
	// PeerService names a local peer process; default: OTEL_SERVICE_NAME,
	// else service.name in OTEL_RESOURCE_ATTRIBUTES, else the executable.
	PeerService func(pid int) string
}

func (o *Options) setDefaults() error {
	o.SlowThreshold = cmp.Or(o.SlowThreshold, time.Second)
	o.LogsPerSecond = cmp.Or(o.LogsPerSecond, 1)
	o.LogBurst = cmp.Or(o.LogBurst, 10)
	o.MaxConnections = cmp.Or(o.MaxConnections, 65536)
	o.MaxHTTPSeries = cmp.Or(o.MaxHTTPSeries, 2000)
	o.FDCacheTTL = cmp.Or(o.FDCacheTTL, time.Second)
	if o.PeerService == nil {
		o.PeerService = serviceName
	}
	var errs []error
	if o.LogsPerSecond < 0 {
		errs = append(errs, fmt.Errorf("logs_per_second: %v must not be negative", o.LogsPerSecond))
	}
	if o.LogBurst < 0 {
		errs = append(errs, fmt.Errorf("log_burst: %d must not be negative", o.LogBurst))
	}
	if o.MaxConnections < 16 || o.MaxConnections > 1<<22 {
		errs = append(errs, fmt.Errorf("max_connections: %d is out of range [16, 4194304]", o.MaxConnections))
	}
	if o.MaxHTTPSeries < 1 {
		errs = append(errs, fmt.Errorf("max_http_series: %d must be ≥ 1", o.MaxHTTPSeries))
	}
	if o.FDCacheTTL < 0 {
		errs = append(errs, fmt.Errorf("fd_cache_ttl: %v must not be negative", o.FDCacheTTL))
	}
	switch o.Attach {
	case tcpevents.AttachAuto, tcpevents.AttachTracepoint, tcpevents.AttachBTF:
	default:
		errs = append(errs, fmt.Errorf("attach: %q is not one of %q, %q, %q", o.Attach,
			tcpevents.AttachAuto, tcpevents.AttachTracepoint, tcpevents.AttachBTF))
	}
	if len(o.PIDs) == 0 {
		errs = append(errs, errors.New("pids: no process to cover"))
	}
	for _, p := range o.PIDs {
		if p <= 0 {
			errs = append(errs, fmt.Errorf("pids: %d is not a process id", p))
		}
	}
	return errors.Join(errs...)
}

// Stats are cumulative counters since Start.
type Stats struct {
	// From the kernel: open and close events sent, events lost to a full
	// ring, connections not tracked because the table was full, and
	// retransmits seen host-wide.
	Opens, Closes, EventsLost, TableFull, Retransmits uint64
	// Connections is the number of live connections of covered processes
	// at the last Collect.
	Connections int
	// LostCloses are connections that vanished without a close event (for
	// example reset in softirq before being adopted): their last interval
	// is missing.
	LostCloses uint64
	// HTTP exchanges: observed for covered processes, whose socket (hence
	// peer) could not be resolved, ignored (process not covered or series
	// cap reached).
	HTTPExchanges, HTTPUnresolved, HTTPIgnored uint64
	// Logs sampled, and candidates refused by the rate limit.
	LogsSampled, LogsRateLimited uint64
}

// Task profiles the TCP connections of a set of processes.
type Task struct {
	opts   Options
	objs   *tcpevents.Objects
	links  []link.Link
	rd     *ringread.Reader
	attach string // the flavour attached

	closeOnce sync.Once
	closeErr  error

	mu         sync.Mutex
	closed     bool
	pids       map[int]*proc
	diag       map[uint32]*diagConn // netns → socket, for covered namespaces
	conns      map[connKey]*conn
	byInode    map[uint64]*conn
	recent     map[uint64]recentConn // closed connections by inode, for HTTP
	events     []tcpevents.Event
	listen     map[tcpevents.ListenKey]uint32
	peerCache  map[connKey]int        // (netns, remote endpoint) of client flows → peer pid
	services   map[int]string         // peer pid → service.name
	ownerCache map[uint32]*ownerIndex // netns → socket owners, for peers
	gen        uint64
	last       time.Time // previous Collect (or Start)
	closedNow  []*conn   // closed since the previous Collect
	// From the latest refresh: socket inode → covered pid, and every
	// socket of the covered namespaces by its endpoints → inode.
	owner map[uint64]int
	index map[connKey]uint64

	stats Stats

	h httpState
}

// maxMissed is how many refreshes a connection may go unseen before it is
// taken as closed without a close event.
const maxMissed = 30

type proc struct {
	pid      int
	start    string // /proc/PID/stat start time, to notice PID reuse
	netns    uint32
	resource map[string]any
	gen      uint64 // added at this generation: its connections predate us
	// exited is the generation that found the process gone: it stays one
	// more Collect so that the close events of its connections count.
	exited uint64
}

// conn is one connection of a covered process.
type conn struct {
	connKey
	inode  uint64
	pid    int
	role   uint8
	openNs uint64 // CLOCK_MONOTONIC open time; 0 unknown
	gen    uint64 // last refresh that saw it
	missed int    // refreshes that did not see it

	// Peer resolution.
	peerPID      int
	peerAttempts int

	// Cumulative counters already accounted for, and what is pending for
	// the next Collect.
	acked, received, retrans uint64
	dAcked, dReceived        uint64
	dRetrans                 uint64
	rtt                      uint32 // µs, latest
	// base is the baseline taken when the connection predated coverage.
	baseAcked, baseReceived uint64
	baselined               bool
	openedNow               bool // an open event came this interval
	closeNs                 uint64
}

// Start loads and attaches the programs and begins covering opts.PIDs.
// An error means nothing was left loaded.
func Start(opts Options) (_ *Task, err error) {
	if err := opts.setDefaults(); err != nil {
		return nil, fmt.Errorf("network task: %w", err)
	}
	cfg := tcpevents.Config{
		MaxPIDs:         4096,
		MaxListenPorts:  4096,
		MaxFlows:        uint32(opts.MaxConnections),
		MaxRetrans:      16384,
		RingBufferBytes: 1 << 20,
		WakeupBytes:     1 << 18,
	}
	if dev, ino, init, err := procfs.PIDNamespace(); err != nil {
		return nil, fmt.Errorf("network task: %w", err)
	} else if !init {
		cfg.PIDNamespaceDev, cfg.PIDNamespaceIno = dev, ino
	}
	t := &Task{
		opts:       opts,
		pids:       map[int]*proc{},
		diag:       map[uint32]*diagConn{},
		conns:      map[connKey]*conn{},
		byInode:    map[uint64]*conn{},
		recent:     map[uint64]recentConn{},
		listen:     map[tcpevents.ListenKey]uint32{},
		peerCache:  map[connKey]int{},
		services:   map[int]string{},
		ownerCache: map[uint32]*ownerIndex{},
		last:       time.Now(),
		h: httpState{
			pids:    map[int]bool{},
			series:  map[httpKey]*histogram.Histogram{},
			fdCache: map[pidFD]fdEntry{},
			limiter: rate.NewLimiter(rate.Limit(opts.LogsPerSecond), opts.LogBurst),
		},
	}
	t.objs, err = tcpevents.Load(cfg)
	if err != nil {
		return nil, privilegeHint(err)
	}
	defer func() {
		if err != nil {
			t.release()
		}
	}()
	t.rd, err = ringread.Start(t.objs.Events, readerPoll, t.handle)
	if err != nil {
		return nil, fmt.Errorf("network task: ring buffer reader: %w", err)
	}
	// The PID filter is filled before attaching, and the first refresh
	// (which takes the baseline of existing connections) runs after, so
	// that no connection falls between the two.
	t.gen = 1
	if err := t.setPIDsLocked(opts.PIDs); err != nil {
		return nil, err
	}
	if len(t.pids) == 0 {
		return nil, fmt.Errorf("network task: pids: none of %v is running", opts.PIDs)
	}
	if t.links, t.attach, err = t.objs.Attach(opts.Attach); err != nil {
		return nil, privilegeHint(err)
	}
	t.refresh()
	return t, nil
}

// Attachment names the program flavour in use (tcpevents.AttachTracepoint
// or AttachBTF).
func (t *Task) Attachment() string { return t.attach }

// SetPIDs replaces the covered processes. Connections of newly covered
// processes that already exist are counted from now on.
func (t *Task) SetPIDs(pids []int) error {
	for _, p := range pids {
		if p <= 0 {
			return fmt.Errorf("network task: pids: %d is not a process id", p)
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return errors.New("network task: closed")
	}
	t.gen++
	if err := t.setPIDsLocked(pids); err != nil {
		return err
	}
	t.refreshLocked()
	return nil
}

// PIDs returns the covered processes that are still alive.
func (t *Task) PIDs() []int {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]int, 0, len(t.pids))
	for p, pr := range t.pids {
		if pr.exited == 0 {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

func (t *Task) setPIDsLocked(pids []int) error {
	want := map[int]bool{}
	for _, p := range pids {
		want[p] = true
	}
	var errs []error
	for p, pr := range t.pids {
		if !want[p] && pr.exited == 0 {
			// Reported one last time at the next Collect.
			t.exitPID(pr)
		}
	}
	for p := range want {
		if pr, ok := t.pids[p]; ok && (pr.exited == 0 || startTicks(p) == pr.start) {
			pr.exited = 0
			if err := t.objs.TargetPids.Put(uint32(p), uint8(1)); err != nil {
				errs = append(errs, fmt.Errorf("network task: add pid %d to the kernel filter: %w", p, err))
			}
			continue
		}
		st := startTicks(p)
		if st == "" {
			continue // gone: nothing to cover
		}
		ns, err := netnsOf(p)
		if err != nil {
			continue
		}
		if err := t.objs.TargetPids.Put(uint32(p), uint8(1)); err != nil {
			errs = append(errs, fmt.Errorf("network task: add pid %d to the kernel filter: %w", p, err))
			continue
		}
		var res map[string]any
		if t.opts.Resource != nil {
			res = t.opts.Resource(p)
		}
		if res == nil {
			res = map[string]any{"process.pid": int64(p)}
		}
		t.pids[p] = &proc{pid: p, start: st, netns: ns, resource: res, gen: t.gen}
	}
	t.syncHTTPPIDs()
	return errors.Join(errs...)
}

func (t *Task) exitPID(pr *proc) {
	pr.exited = t.gen
	_ = t.objs.TargetPids.Delete(uint32(pr.pid))
}

// eventBatch is how many events wait before the reader applies them.
const eventBatch = 4096

// readerPoll bounds how long events wait in the ring (the kernel wakes
// the reader only when a quarter of it is full).
const readerPoll = 200 * time.Millisecond

// handle moves an event from the ring buffer to t.events.
func (t *Task) handle(raw []byte) {
	if len(raw) < tcpevents.EventSize {
		return
	}
	// The record is the C struct in native layout (EventSize checked
	// above); a copy is much cheaper than binary.Decode.
	ev := *(*tcpevents.Event)(unsafe.Pointer(&raw[0]))
	t.mu.Lock()
	t.events = append(t.events, ev)
	if len(t.events) >= eventBatch && !t.closed {
		// Applied as they come under churn, so that memory stays bounded
		// by connections rather than by events.
		t.applyEvents()
	}
	t.mu.Unlock()
}

// flush waits until every event the kernel has sent so far is in t.events.
func (t *Task) flush() { t.rd.Sync(time.Second) }

// Collect returns what the covered processes' connections did since the
// previous Collect (or Start): metrics per flow and sampled exchange logs.
func (t *Task) Collect(now time.Time) (pmetric.Metrics, plog.Logs) {
	t.flush()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return pmetric.NewMetrics(), plog.NewLogs()
	}
	t.gen++
	t.refreshLocked()
	t.applyEvents()
	t.resolvePeers()
	series, logs := t.h.take()
	md := t.buildMetrics(now, series)
	ld := t.buildLogs(logs)
	t.endInterval()
	t.last = now
	return md, ld
}

// Stats returns the counters.
func (t *Task) Stats() Stats {
	t.mu.Lock()
	s := t.stats
	closed := t.closed
	t.mu.Unlock()
	t.h.mu.Lock()
	s.HTTPExchanges, s.HTTPIgnored = t.h.exchanges, t.h.ignored
	s.LogsSampled, s.LogsRateLimited = t.h.sampled, t.h.rateLimited
	t.h.mu.Unlock()
	if closed {
		return s
	}
	if v, err := load.SumStats(t.objs.Stats, tcpevents.NumStats); err == nil {
		s.Opens, s.Closes = v[tcpevents.StatOpens], v[tcpevents.StatCloses]
		s.EventsLost += v[tcpevents.StatEventsLost]
		s.TableFull, s.Retransmits = v[tcpevents.StatFlowsFull], v[tcpevents.StatRetransmits]
	}
	return s
}

// Close detaches and unloads everything. It is safe to call twice.
func (t *Task) Close() error {
	t.closeOnce.Do(func() {
		t.mu.Lock()
		t.closed = true
		t.syncHTTPPIDs()
		t.mu.Unlock()
		t.closeErr = t.release()
	})
	return t.closeErr
}

func (t *Task) release() error {
	var errs []error
	for _, l := range t.links {
		errs = append(errs, l.Close())
	}
	t.links = nil
	if t.rd != nil {
		errs = append(errs, t.rd.Close())
	}
	if t.objs != nil {
		errs = append(errs, t.objs.Close())
	}
	t.mu.Lock()
	for ns, d := range t.diag {
		errs = append(errs, d.close())
		delete(t.diag, ns)
	}
	t.mu.Unlock()
	return errors.Join(errs...)
}

// refresh runs refreshLocked under the lock.
func (t *Task) refresh() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.refreshLocked()
}

// refreshLocked reads the covered processes' sockets through /proc and
// sock_diag: it notes new connections, accumulates the counters of live
// ones, and updates the listening ports the kernel adopts passive opens
// on.
func (t *Task) refreshLocked() {
	owner := map[uint64]int{} // socket inode → covered pid
	needNS := map[uint32]int{}
	for p, pr := range t.pids {
		if pr.exited != 0 {
			continue
		}
		if startTicks(p) != pr.start {
			t.exitPID(pr) // exited, or the PID was reused
			continue
		}
		if err := socketInodes(p, func(ino uint64) { owner[ino] = p }); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				t.exitPID(pr)
			}
			continue
		}
		// A process may enter another namespace (ip netns exec does).
		if ns, err := netnsOf(p); err == nil {
			pr.netns = ns
		}
		needNS[pr.netns] = p
	}
	for ns, d := range t.diag {
		if _, ok := needNS[ns]; !ok {
			d.close()
			delete(t.diag, ns)
		}
	}
	listen := map[tcpevents.ListenKey]uint32{}
	index := map[connKey]uint64{}
	t.owner, t.index = owner, index
	for ns, p := range needNS {
		d := t.diag[ns]
		if d == nil {
			var err error
			if d, err = openDiag(p, ns); err != nil {
				continue
			}
			t.diag[ns] = d
		}
		err := d.dump(func(s *diagSock) {
			if s.State != tcpStateListen {
				index[s.connKey] = s.Inode
			}
			pid, ok := owner[s.Inode]
			if !ok {
				if c := t.conns[s.connKey]; c != nil && s.Inode == 0 && s.State != tcpStateListen {
					// Closed by its owner, still finishing (FIN_WAIT*,
					// LAST_ACK): an orphan has no inode.
					t.observeOrphan(c, s)
				}
				return
			}
			if s.State == tcpStateListen {
				listen[tcpevents.ListenKey{Netns: ns, Port: s.Local.Port}] = uint32(pid)
				return
			}
			t.observeSock(s, pid)
		})
		if err != nil {
			// A broken socket is reopened next time.
			d.close()
			delete(t.diag, ns)
		}
	}
	// Connections not seen: closed (their close event finishes them) or
	// no longer ours.
	live := 0
	for k, c := range t.conns {
		if c.gen == t.gen {
			live++
			continue
		}
		if _, ok := t.pids[c.pid]; !ok {
			t.forget(k, c)
			continue
		}
		// Kept a while: a close event may still come (a lost FIN is
		// retransmitted for minutes), and must not count the connection
		// from zero again.
		if c.missed++; c.missed > maxMissed {
			t.stats.LostCloses++
			t.forget(k, c)
		}
	}
	t.stats.Connections = live
	t.syncListen(listen)
	t.syncHTTPPIDs()
}

func (t *Task) forget(k connKey, c *conn) {
	delete(t.conns, k)
	if c.inode != 0 && t.byInode[c.inode] == c {
		delete(t.byInode, c.inode)
	}
}

// observeSock accounts one live socket of a covered process.
func (t *Task) observeSock(s *diagSock, pid int) {
	c := t.conns[s.connKey]
	if c != nil && c.inode != 0 && c.inode != s.Inode {
		// The same 4-tuple again: the old connection is gone.
		t.forget(s.connKey, c)
		c = nil
	}
	if c == nil {
		c = &conn{connKey: s.connKey, pid: pid}
		if t.pids[pid].gen == t.gen {
			// Covered from now on: count from here.
			c.acked, c.received = s.BytesAcked, s.BytesReceived
			c.baseAcked, c.baseReceived = s.BytesAcked, s.BytesReceived
			c.baselined = true
			c.retrans = t.kernelRetrans(s.connKey)
		}
		t.conns[s.connKey] = c
	}
	if c.inode == 0 {
		c.inode = s.Inode
		t.byInode[s.Inode] = c
	}
	c.pid = pid
	if c.role == tcpevents.RoleUnknown {
		c.role = t.guessRole(s.connKey)
	}
	t.observeOrphan(c, s)
}

// guessRole: a connection on a port its namespace listens on was
// accepted; any other was connected.
func (t *Task) guessRole(k connKey) uint8 {
	if _, ok := t.listen[tcpevents.ListenKey{Netns: k.NetNS, Port: k.Local.Port}]; ok {
		return tcpevents.RoleServer
	}
	return tcpevents.RoleClient
}

// observeOrphan records what sock_diag says of c now (also for a
// connection whose process is no longer known).
func (t *Task) observeOrphan(c *conn, s *diagSock) {
	c.gen = t.gen
	c.missed = 0
	if s.HasInfo {
		c.advance(s.BytesAcked, s.BytesReceived)
		c.rtt = s.RTT
	}
	if r := t.kernelRetrans(s.connKey); r > c.retrans {
		c.dRetrans += r - c.retrans
		c.retrans = r
	}
}

// advance moves the accounted counters forward.
func (c *conn) advance(acked, received uint64) {
	if acked > c.acked {
		c.dAcked += acked - c.acked
		c.acked = acked
	}
	if received > c.received {
		c.dReceived += received - c.received
		c.received = received
	}
}

// kernelRetrans reads the retransmit count of a connection from the LRU
// map the retransmit tracepoint fills.
func (t *Task) kernelRetrans(k connKey) uint64 {
	var n uint64
	if err := t.objs.Retrans.Lookup(kernelTuple(k), &n); err != nil {
		return 0
	}
	return n
}

func kernelTuple(k connKey) tcpevents.Tuple {
	return tcpevents.Tuple{
		Saddr: k.Local.Addr.As16(),
		Daddr: k.Remote.Addr.As16(),
		Sport: k.Local.Port,
		Dport: k.Remote.Port,
		Netns: k.NetNS,
	}
}

func keyFromTuple(tu *tcpevents.Tuple) connKey {
	return connKey{
		NetNS:  tu.Netns,
		Local:  endpoint{netip.AddrFrom16(tu.Saddr).Unmap(), tu.Sport},
		Remote: endpoint{netip.AddrFrom16(tu.Daddr).Unmap(), tu.Dport},
	}
}

// syncListen makes the kernel's listening-port table equal to want.
func (t *Task) syncListen(want map[tcpevents.ListenKey]uint32) {
	for k := range t.listen {
		if _, ok := want[k]; !ok {
			_ = t.objs.ListenPorts.Delete(k)
			delete(t.listen, k)
		}
	}
	for k, v := range want {
		if old, ok := t.listen[k]; ok && old == v {
			continue
		}
		if err := t.objs.ListenPorts.Put(k, v); err == nil {
			t.listen[k] = v
		}
	}
}

// applyEvents accounts the open and close events received so far.
func (t *Task) applyEvents() {
	evs := t.events
	t.events = nil
	for i := range evs {
		ev := &evs[i]
		k := keyFromTuple(&ev.T)
		pid := int(ev.Tgid)
		c := t.conns[k]
		switch ev.Kind {
		case tcpevents.KindOpen:
			if c != nil && c.inode != 0 && ev.Ino != 0 && c.inode != ev.Ino {
				t.forget(k, c)
				c = nil
			}
			if c == nil {
				if _, ok := t.pids[pid]; !ok {
					continue
				}
				c = &conn{connKey: k, pid: pid, gen: t.gen}
				t.conns[k] = c
			} else if c.baselined {
				// Taken as pre-existing by a refresh, but opened after
				// tracking began: count it from its start.
				c.dAcked += c.baseAcked
				c.dReceived += c.baseReceived
				c.baselined = false
			}
			c.openNs = ev.TsNs
			c.role = ev.Role
			if ev.Ino != 0 && c.inode == 0 {
				c.inode = ev.Ino
				t.byInode[ev.Ino] = c
			}
			c.openedNow = true
		case tcpevents.KindClose:
			if c == nil {
				if _, ok := t.pids[pid]; !ok {
					continue // adopted by a process no longer covered
				}
				c = &conn{connKey: k, pid: pid, role: ev.Role}
			}
			if c.openNs == 0 {
				c.openNs = ev.OpenNs
			}
			if c.role == tcpevents.RoleUnknown {
				c.role = ev.Role
			}
			if c.role == tcpevents.RoleUnknown {
				c.role = t.guessRole(k)
			}
			if c.inode == 0 && ev.Ino != 0 {
				c.inode = ev.Ino
			}
			c.advance(ev.BytesAcked, ev.BytesReceived)
			if ev.Retransmits > c.retrans {
				c.dRetrans += ev.Retransmits - c.retrans
				c.retrans = ev.Retransmits
			}
			c.rtt = ev.SrttUs
			c.closeNs = ev.TsNs
			t.forget(k, c)
			t.closedNow = append(t.closedNow, c)
			if c.inode != 0 {
				t.recent[c.inode] = recentConn{c: c, gen: t.gen}
			}
		}
	}
}

// privilegeHint names what is missing when the kernel refuses.
func privilegeHint(err error) error {
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		return fmt.Errorf("network task: %w (needs root or CAP_BPF+CAP_PERFMON+CAP_SYS_ADMIN)", err)
	}
	return fmt.Errorf("network task: %w", err)
}
