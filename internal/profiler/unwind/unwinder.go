//go:build linux

package unwind

import (
	"debug/elf"
	"fmt"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/contprof/contprof/internal/monitor/procfs"
	"github.com/contprof/contprof/internal/profiler/buildid"
)

// Options tune an Unwinder; the zero value is ready to use.
type Options struct {
	// ProcFS is where proc is mounted; default "/proc".
	ProcFS string
	// MaxTableBytes bounds the memory of all built tables together;
	// default 256 MiB. Files whose table does not fit are unwound by
	// frame pointer.
	MaxTableBytes int
	// MaxFrames is the most user frames of a stack; default 127.
	MaxFrames int
}

const (
	mapsRetryAge         = 100 * time.Millisecond
	defaultMaxTableBytes = 256 << 20
)

// Unwinder unwinds snapshots of the processes it was told about. It is safe
// for concurrent use.
type Unwinder struct {
	procfs    string
	maxBytes  int
	maxFrames int

	mu      sync.Mutex
	procs   map[int]*process
	byID    map[fileID]*entry
	byBuild map[string]*entry
	bytes   int // of built tables
	stats   Stats

	queue chan *entry
	quit  chan struct{}
	done  chan struct{}
	start sync.Once
	// built is signalled (non-blocking) whenever a table build ends.
	built chan struct{}
}

// Stats are counters of an Unwinder.
type Stats struct {
	TablesBuilt  int
	TableErrors  int
	TablesOver   int // not kept: over the memory bound
	TableBytes   int // memory of the tables held now
	Tables       int // tables held now
	BuildTime    time.Duration
	LastBuildErr string
}

type fileID struct {
	dev, ino uint64
	size     int64
	mtime    int64
}

// entry is one ELF file's table, shared by the processes mapping it.
type entry struct {
	id      fileID
	buildID string
	path    string // how to open it (through the first process seen)
	refs    int
	state   int // pending, ready, failed
	table   *Table
	loads   []loadSegment
}

const (
	statePending = iota
	stateReady
	stateFailed
)

type loadSegment struct{ off, vaddr, filesz uint64 }

type mapping struct {
	start, end, offset uint64
	e                  *entry // nil: not a file
}

type process struct {
	maps   []mapping
	readAt time.Time
}

// New returns an Unwinder; Close stops its table builder.
func New(opts Options) *Unwinder {
	u := &Unwinder{
		procfs:    opts.ProcFS,
		maxBytes:  opts.MaxTableBytes,
		maxFrames: opts.MaxFrames,
		procs:     map[int]*process{},
		byID:      map[fileID]*entry{},
		byBuild:   map[string]*entry{},
		queue:     make(chan *entry, 4096),
		quit:      make(chan struct{}),
		done:      make(chan struct{}),
		built:     make(chan struct{}, 1),
	}
	if u.procfs == "" {
		u.procfs = "/proc"
	}
	if u.maxBytes <= 0 {
		u.maxBytes = defaultMaxTableBytes
	}
	if u.maxFrames <= 0 {
		u.maxFrames = DefaultMaxFrames
	}
	return u
}

// Close stops the table builder and drops every table.
func (u *Unwinder) Close() error {
	u.start.Do(func() { close(u.done) }) // never started: nothing to wait for
	select {
	case <-u.quit:
	default:
		close(u.quit)
	}
	<-u.done
	u.mu.Lock()
	defer u.mu.Unlock()
	u.procs, u.byID, u.byBuild, u.bytes = map[int]*process{}, map[fileID]*entry{}, map[string]*entry{}, 0
	return nil
}

func (u *Unwinder) startWorker() {
	u.start.Do(func() { go u.worker() })
}

// worker builds tables one at a time, so that a burst of new processes
// costs one core at most.
func (u *Unwinder) worker() {
	defer close(u.done)
	for {
		select {
		case <-u.quit:
			return
		case e := <-u.queue:
			u.build(e)
		}
	}
}

func (u *Unwinder) build(e *entry) {
	u.mu.Lock()
	if e.refs == 0 || e.state != statePending {
		u.mu.Unlock()
		return // nobody needs it any more
	}
	path := e.path
	u.mu.Unlock()

	t0 := time.Now()
	var (
		t     *Table
		loads []loadSegment
		err   error
	)
	f, err := elf.Open(path)
	if err == nil {
		loads = loadSegments(f)
		t, err = Build(f)
		f.Close()
	}
	elapsed := time.Since(t0)

	u.mu.Lock()
	u.stats.BuildTime += elapsed
	switch {
	case err != nil:
		e.state = stateFailed
		u.stats.TableErrors++
		u.stats.LastBuildErr = fmt.Sprintf("%s: %v", path, err)
	case e.refs == 0:
		// Dropped while building.
	case u.bytes+t.Bytes() > u.maxBytes:
		e.state = stateFailed
		u.stats.TablesOver++
	default:
		e.state, e.table, e.loads = stateReady, t, loads
		u.bytes += t.Bytes()
		u.stats.TablesBuilt++
	}
	u.mu.Unlock()
	select {
	case u.built <- struct{}{}:
	default:
	}
}

func loadSegments(f *elf.File) []loadSegment {
	var out []loadSegment
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD {
			out = append(out, loadSegment{off: p.Off, vaddr: p.Vaddr, filesz: p.Filesz})
		}
	}
	return out
}

// Add reads the mappings of pid and queues the tables of its executable
// files for building. It does not wait for them: until a table is ready,
// frames in that file are unwound by frame pointer.
func (u *Unwinder) Add(pid int) error {
	u.startWorker()
	u.mu.Lock()
	defer u.mu.Unlock()
	if _, ok := u.procs[pid]; ok {
		return nil
	}
	p := &process{}
	if err := u.readMapsLocked(pid, p); err != nil {
		return err
	}
	u.procs[pid] = p
	return nil
}

// Has reports whether pid was added and not forgotten since.
func (u *Unwinder) Has(pid int) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	_, ok := u.procs[pid]
	return ok
}

// Forget drops pid; tables no other process maps are freed.
func (u *Unwinder) Forget(pid int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	p, ok := u.procs[pid]
	if !ok {
		return
	}
	delete(u.procs, pid)
	for _, m := range p.maps {
		u.unrefLocked(m.e)
	}
}

func (u *Unwinder) unrefLocked(e *entry) {
	if e == nil {
		return
	}
	e.refs--
	if e.refs > 0 {
		return
	}
	delete(u.byID, e.id)
	if e.buildID != "" && u.byBuild[e.buildID] == e {
		delete(u.byBuild, e.buildID)
	}
	if e.table != nil {
		u.bytes -= e.table.Bytes()
		e.table = nil
	}
}

// Wait blocks until every table pid needs is built (or failed), or until
// timeout. For tests and benchmarks: tasks never wait.
func (u *Unwinder) Wait(pid int, timeout time.Duration) bool {
	deadline := time.After(timeout)
	for {
		u.mu.Lock()
		pending := false
		if p := u.procs[pid]; p != nil {
			for _, m := range p.maps {
				if m.e != nil && m.e.state == statePending {
					pending = true
				}
			}
		}
		u.mu.Unlock()
		if !pending {
			return true
		}
		select {
		case <-u.built:
		case <-time.After(10 * time.Millisecond):
		case <-deadline:
			return false
		}
	}
}

// Stats returns the counters.
func (u *Unwinder) Stats() Stats {
	u.mu.Lock()
	defer u.mu.Unlock()
	s := u.stats
	s.TableBytes = u.bytes
	for _, e := range u.byID {
		if e.table != nil {
			s.Tables++
		}
	}
	return s
}

// Unwind walks snapshot s of process pid. Processes not added are added
// now (their tables will come later).
func (u *Unwinder) Unwind(pid int, s *Snapshot) Stack {
	u.mu.Lock()
	p := u.procs[pid]
	u.mu.Unlock()
	if p == nil {
		if err := u.Add(pid); err != nil {
			return Stack{PCs: []uint64{s.IP}}
		}
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	p = u.procs[pid]
	if p == nil {
		return Stack{PCs: []uint64{s.IP}}
	}
	return walk(&procSource{u: u, pid: pid, p: p}, s, u.maxFrames)
}

type procSource struct {
	u   *Unwinder
	pid int
	p   *process
}

func (ps *procSource) ruleFor(pc uint64) (rule, bool, bool) {
	m := ps.p.find(pc)
	if m == nil && time.Since(ps.p.readAt) > mapsRetryAge {
		_ = ps.u.readMapsLocked(ps.pid, ps.p) // maybe a library was loaded since
		m = ps.p.find(pc)
	}
	if m == nil {
		return rule{}, false, false
	}
	e := m.e
	if e == nil {
		// JIT code: by its frame size when the runtime published it.
		if r, ok := jitRule(ps.pid, pc); ok {
			return r, true, false
		}
		return rule{kind: kindNone}, true, false
	}
	if e.state != stateReady {
		return rule{kind: kindNone}, true, false
	}
	vaddr := fileVaddr(e.loads, pc-m.start+m.offset)
	r, ok := e.table.lookup(vaddr)
	if !ok || r.kind == kindNone {
		// Go code (no FDE) is unwound by frame pointer.
		return rule{kind: kindNone}, true, e.table.GoFramePointers
	}
	return r, true, false
}

func fileVaddr(loads []loadSegment, off uint64) uint64 {
	for _, l := range loads {
		if off >= l.off && off < l.off+l.filesz {
			return off - l.off + l.vaddr
		}
	}
	return off
}

func (p *process) find(addr uint64) *mapping {
	i := sort.Search(len(p.maps), func(i int) bool { return p.maps[i].end > addr })
	if i < len(p.maps) && p.maps[i].start <= addr {
		return &p.maps[i]
	}
	return nil
}

// readMapsLocked (re)reads the executable mappings of pid, taking a
// reference on the entry of every file (new files are queued for building).
func (u *Unwinder) readMapsLocked(pid int, p *process) error {
	lines, err := procfs.ReadMaps(u.procfs, pid)
	if err != nil {
		return fmt.Errorf("unwind: read maps of pid %d: %w", pid, err)
	}
	var maps []mapping
	for _, ml := range lines {
		if !ml.Executable() {
			continue
		}
		m := mapping{start: ml.Start, end: ml.End, offset: ml.Offset}
		if ml.FileBacked() {
			// The root path is for kernels without map_files access.
			m.e = u.entryLocked(ml.MapFile(u.procfs, pid))
			if m.e == nil {
				m.e = u.entryLocked(fmt.Sprintf("%s/%d/root%s", u.procfs, pid, ml.Path))
			}
		}
		maps = append(maps, m)
	}
	for _, m := range p.maps {
		u.unrefLocked(m.e)
	}
	p.maps, p.readAt = maps, time.Now()
	return nil
}

// entryLocked returns the referenced entry of the file at path, creating
// and queueing it if new.
func (u *Unwinder) entryLocked(path string) *entry {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return nil
	}
	id := fileID{dev: st.Dev, ino: st.Ino, size: st.Size, mtime: st.Mtim.Nano()}
	if e, ok := u.byID[id]; ok {
		e.refs++
		return e
	}
	e := &entry{id: id, path: path, refs: 1}
	if bid, err := buildid.GNU(path); err == nil && bid != "" {
		if shared, ok := u.byBuild[bid]; ok {
			// The same file in another container or copy.
			shared.refs++
			u.byID[id] = shared
			return shared
		}
		e.buildID = bid
		u.byBuild[bid] = e
	}
	u.byID[id] = e
	select {
	case u.queue <- e:
	default:
		e.state = stateFailed // queue full: frame pointers for this file
	}
	return e
}
