//go:build linux

// Package symbolize turns the raw addresses of sampled stacks into frames on
// the host: ELF .symtab/.dynsym (with the load bias of PIE executables and
// shared libraries taken from /proc/PID/maps), Go .gopclntab (stripped Go
// binaries too), /proc/kallsyms for the kernel and /tmp/perf-PID.map for JIT
// runtimes, with C++ and Rust names demangled. Every frame keeps its mapping
// with path and build ids so that a backend can symbolize what we could not.
//
// Binaries are read through /proc/PID/map_files or /proc/PID/root, so
// processes in containers and deleted-but-running binaries work. Symbol
// tables are cached per file (keyed by file identity and build id).
package symbolize

import (
	"bufio"
	"cmp"
	"fmt"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/contprof/contprof/internal/monitor/procfs"
	"github.com/contprof/contprof/internal/output/profiles"
)

// Options tune a Symbolizer; the zero value is ready to use.
type Options struct {
	// ProcFS is where proc is mounted; default "/proc".
	ProcFS string
	// MaxFiles bounds the number of cached ELF files; default 512.
	MaxFiles int
	// MaxFileBytes bounds the estimated memory of the cached symbol
	// tables; the least recently used file goes first. Default 64 MiB.
	MaxFileBytes int64
	// MaxProcesses bounds the per-process state kept; default 4096.
	MaxProcesses int
}

const (
	mapsMaxAge      = 2 * time.Second        // re-read maps at most this stale
	mapsRetryAge    = 100 * time.Millisecond // on a miss, re-read if older than this
	kallsymsMaxAge  = 5 * time.Minute        // modules come and go
	defaultMaxFiles = 512
	// defaultMaxFileBytes: a few large binaries (a Go or C++ service has
	// tens of MB of symbols) must not hold the collector's memory.
	defaultMaxFileBytes = 64 << 20
	defaultMaxProcs     = 4096
)

// Symbolizer is safe for concurrent use.
type Symbolizer struct {
	procfs   string
	maxFiles int
	// maxFileBytes and fileBytes are the byte budget of the file cache
	// and what it holds.
	maxFileBytes int64
	fileBytes    int64
	maxProcs     int

	mu        sync.Mutex
	tick      uint64
	files     map[fileID]*fileEntry
	byBuildID map[string]*fileEntry
	procs     map[int]*process

	// namers name addresses that a runtime integration put in stacks
	// in place of interpreter PCs (see SetNamer).
	namers map[int]func(addr uint64) (string, bool)

	kernel       *kernelSyms
	kernelErr    error
	kernelLoaded time.Time
}

type fileID struct {
	dev, ino uint64
	size     int64
	mtime    int64
}

type fileEntry struct {
	file    *File
	lastUse uint64
}

type process struct {
	pid     int
	maps    []*mapping // sorted by start
	readAt  time.Time
	perf    *perfMap
	jitType profiles.FrameType
	lastUse uint64
}

type mapping struct {
	procMapping
	pm    *profiles.Mapping
	file  *File
	tried bool
}

// New returns a Symbolizer.
func New(opts Options) *Symbolizer {
	s := &Symbolizer{
		procfs:    opts.ProcFS,
		maxFiles:  opts.MaxFiles,
		maxProcs:  opts.MaxProcesses,
		files:     map[fileID]*fileEntry{},
		byBuildID: map[string]*fileEntry{},
		procs:     map[int]*process{},
	}
	if s.procfs == "" {
		s.procfs = "/proc"
	}
	if s.maxFiles <= 0 {
		s.maxFiles = defaultMaxFiles
	}
	if s.maxFileBytes = opts.MaxFileBytes; s.maxFileBytes <= 0 {
		s.maxFileBytes = defaultMaxFileBytes
	}
	if s.maxProcs <= 0 {
		s.maxProcs = defaultMaxProcs
	}
	return s
}

// Stack symbolizes one sample of process pid: kernel and user addresses,
// each leaf first as the kernel records them. The result is leaf first:
// kernel frames, then user frames. An address in Go code that the compiler
// inlined yields several frames with that address, the inlined functions
// first (as the Go runtime's tracebacks and pprof show them).
func (s *Symbolizer) Stack(pid int, user, kernel []uint64) []profiles.Frame {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tick++
	frames := make([]profiles.Frame, 0, len(user)+len(kernel))
	if len(kernel) > 0 {
		ks := s.kernelSymsLocked()
		for i, addr := range kernel {
			if ks == nil {
				frames = append(frames, profiles.Frame{Address: addr, Type: profiles.FrameKernel})
				continue
			}
			fr := ks.lookup(lookupAddr(addr, i))
			fr.Address = addr
			frames = append(frames, fr)
		}
	}
	if len(user) > 0 {
		p := s.processLocked(pid)
		for i, addr := range user {
			frames = s.appendUserFramesLocked(frames, p, addr, lookupAddr(addr, i))
		}
	}
	return frames
}

// lookupAddr steps back into the call instruction for return addresses, so
// that a call ending a function is not credited to the next one.
func lookupAddr(addr uint64, depth int) uint64 {
	if depth > 0 && addr > 0 {
		return addr - 1
	}
	return addr
}

// Preload reads the maps of pid and the symbols of its executable mappings
// now, so that samples stay symbolizable after the process exits.
func (s *Symbolizer) Preload(pid int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tick++
	p := s.processLocked(pid)
	if p.readAt.IsZero() {
		return fmt.Errorf("read maps of pid %d: process not found or not readable", pid)
	}
	for _, m := range p.maps {
		if m.fileBacked() {
			s.fileForLocked(p, m)
		}
	}
	return nil
}

// Release drops every cached table (the kernel's, the files', the
// processes' maps) so that a collector with no task running holds none of
// them: together they are the largest part of its heap while tasks run,
// and a busy hour would otherwise keep them for good. The next Stack or
// Preload reads what it needs again. Namers stay (their owners unset
// them).
func (s *Symbolizer) Release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	// New maps: clear would keep their buckets.
	s.files, s.byBuildID, s.procs = map[fileID]*fileEntry{}, map[string]*fileEntry{}, map[int]*process{}
	s.fileBytes = 0
	s.kernel, s.kernelErr, s.kernelLoaded = nil, nil, time.Time{}
}

// Forget drops the state kept for pid (its maps and perf map); cached files
// stay for other processes.
func (s *Symbolizer) Forget(pid int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.procs, pid)
}

// KernelError says why kernel frames cannot be symbolized, or nil.
func (s *Symbolizer) KernelError() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.kernelSymsLocked()
	return s.kernelErr
}

func (s *Symbolizer) kernelSymsLocked() *kernelSyms {
	if !s.kernelLoaded.IsZero() && time.Since(s.kernelLoaded) < kallsymsMaxAge {
		return s.kernel
	}
	ks, err := loadKallsyms(s.procfs + "/kallsyms")
	s.kernelLoaded = time.Now()
	if err != nil {
		s.kernelErr = err
		return s.kernel // keep the previous table, if any
	}
	s.kernel, s.kernelErr = ks, nil
	return ks
}

func (s *Symbolizer) processLocked(pid int) *process {
	p := s.procs[pid]
	if p == nil {
		if len(s.procs) >= s.maxProcs {
			s.evictProcessLocked()
		}
		p = &process{pid: pid, jitType: s.jitType(pid)}
		s.procs[pid] = p
	}
	p.lastUse = s.tick
	if time.Since(p.readAt) > mapsMaxAge {
		s.readMapsLocked(p)
	}
	return p
}

func (s *Symbolizer) evictProcessLocked() {
	oldest, oldestUse := -1, ^uint64(0)
	for pid, p := range s.procs {
		if p.lastUse < oldestUse {
			oldest, oldestUse = pid, p.lastUse
		}
	}
	delete(s.procs, oldest)
}

// readMapsLocked refreshes the executable mappings of p, keeping the
// resolved files of mappings that did not change. A process that is gone
// keeps its last snapshot.
func (s *Symbolizer) readMapsLocked(p *process) {
	lines, err := procfs.ReadMaps(s.procfs, p.pid)
	if err != nil {
		return
	}
	list := procMappings(lines)
	type key struct{ start, end, offset, inode uint64 }
	old := map[key]*mapping{}
	for _, m := range p.maps {
		old[key{m.start, m.end, m.offset, m.inode}] = m
	}
	maps := make([]*mapping, 0, len(list))
	for _, pm := range list {
		if p.jitType == profiles.FrameNative {
			p.jitType = jitTypeOfLibrary(pm.path)
		}
		if !pm.executable() {
			continue
		}
		if m, ok := old[key{pm.start, pm.end, pm.offset, pm.inode}]; ok && m.path == pm.path {
			maps = append(maps, m)
			continue
		}
		maps = append(maps, &mapping{procMapping: pm})
	}
	p.maps, p.readAt = maps, time.Now()
}

func (p *process) find(addr uint64) *mapping {
	i := sort.Search(len(p.maps), func(i int) bool { return p.maps[i].end > addr })
	if i < len(p.maps) && p.maps[i].start <= addr {
		return p.maps[i]
	}
	return nil
}

// appendUserFramesLocked appends the frames at user address addr (look is
// where to look it up) to dst: one, or several for inlined Go code.
func (s *Symbolizer) appendUserFramesLocked(dst []profiles.Frame, p *process, addr, look uint64) []profiles.Frame {
	m := p.find(look)
	if m == nil && time.Since(p.readAt) > mapsRetryAge {
		s.readMapsLocked(p) // maybe a library loaded since
		m = p.find(look)
	}
	if m != nil && m.fileBacked() {
		f := s.fileForLocked(p, m)
		if f != nil {
			n := len(dst)
			dst = f.AppendFrames(dst, f.vaddr(look-m.start+m.offset))
			if len(dst) > n {
				for i := n; i < len(dst); i++ {
					dst[i].Address, dst[i].Mapping = addr, m.pm
				}
				return dst
			}
		}
		// JIT code in a file mapping (a memfd double mapping, as .NET
		// does) has no ELF symbols but may be in the perf map.
		if jf, ok := s.perfMapFrameLocked(p, look); ok {
			jf.Address, jf.Mapping = addr, m.pm
			return append(dst, jf)
		}
		return append(dst, profiles.Frame{Address: addr, Mapping: m.pm, Type: profiles.FrameNative})
	}
	return append(dst, s.anonFrameLocked(p, m, addr, look))
}

// anonFrameLocked symbolizes an address outside file mappings.
func (s *Symbolizer) anonFrameLocked(p *process, m *mapping, addr, look uint64) profiles.Frame {
	// Anonymous executable memory: JIT code, described by a perf map.
	fr := profiles.Frame{Address: addr, Type: profiles.FrameNative}
	if n := s.namers[p.pid]; n != nil && m == nil {
		if name, ok := n(look); ok {
			return profiles.Frame{Function: name, Address: addr, Type: p.jitType}
		}
	}
	if jf, ok := s.perfMapFrameLocked(p, look); ok {
		fr = jf
		fr.Address = addr
	}
	if m != nil {
		fr.Mapping = s.pseudoMapping(m)
	}
	return fr
}

// perfMapFrameLocked names look from the process's perf map. The map is
// checked for changes at most every perfMapCheckAge, and on every miss:
// the runtime may have just compiled the code.
func (s *Symbolizer) perfMapFrameLocked(p *process, look uint64) (profiles.Frame, bool) {
	if p.perf == nil {
		p.perf = &perfMap{path: PerfMapPath(s.procfs, p.pid)}
	}
	now := time.Now()
	if p.perf.stale || now.Sub(p.perf.checked) > perfMapCheckAge {
		p.perf.refresh(now)
	}
	sym, ok := p.perf.syms.lookup(look)
	if !ok && now.Sub(p.perf.checked) > perfMapMissAge {
		p.perf.refresh(now)
		if sym, ok = p.perf.syms.lookup(look); !ok {
			return profiles.Frame{}, false
		}
	}
	fr := profiles.Frame{Function: sym.name, Type: p.jitType}
	if d := demangled(sym.name); d != sym.name {
		fr.Function, fr.SystemName = d, sym.name
	}
	return fr, true
}

// SetNamer names the addresses of process pid that are in no executable
// mapping with n: an unwinder that knows a runtime's interpreter puts the
// address of the method a frame runs (e.g. a HotSpot Method*) in the stack
// in place of the interpreter's PC. The returned func removes n.
func (s *Symbolizer) SetNamer(pid int, n func(addr uint64) (string, bool)) (unset func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.namers == nil {
		s.namers = map[int]func(uint64) (string, bool){}
	}
	s.namers[pid] = n
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.namers, pid)
	}
}

// ReloadPerfMap makes the next lookup in pid's perf map read the file from
// the start: call it after asking a runtime to rewrite its map (HotSpot's
// Compiler.perfmap), whose change might otherwise look like growth.
func (s *Symbolizer) ReloadPerfMap(pid int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.procs[pid]; p != nil && p.perf != nil {
		p.perf.stale = true
	}
}

func (s *Symbolizer) pseudoMapping(m *mapping) *profiles.Mapping {
	if m.pm == nil {
		m.pm = &profiles.Mapping{Start: m.start, Limit: m.end, Offset: m.offset, File: cmp.Or(m.path, anonMappingFile)}
	}
	return m.pm
}

// anonMappingFile names an anonymous executable mapping (JIT code) as perf
// does: backends refuse mappings without a file name (Pyroscope's OTLP
// ingest, profiles.Conformance).
const anonMappingFile = "//anon"

// fileForLocked resolves (once per mapping) the ELF file behind m.
func (s *Symbolizer) fileForLocked(p *process, m *mapping) *File {
	if m.tried {
		return m.file
	}
	m.tried = true
	m.pm = &profiles.Mapping{Start: m.start, Limit: m.end, Offset: m.offset, File: m.path}
	candidates := []string{
		fmt.Sprintf("%s/%d/map_files/%x-%x", s.procfs, p.pid, m.start, m.end),
		fmt.Sprintf("%s/%d/root%s", s.procfs, p.pid, m.path),
	}
	for _, c := range candidates {
		f := s.openCachedLocked(c)
		if f != nil {
			m.file = f
			m.pm.BuildID, m.pm.GoBuildID, m.pm.HTLHash = f.BuildID, f.GoBuildID, f.HTLHash
			return f
		}
	}
	return nil
}

func (s *Symbolizer) openCachedLocked(path string) *File {
	st, err := os.Stat(path)
	if err != nil || !st.Mode().IsRegular() {
		return nil
	}
	id := fileID{size: st.Size(), mtime: st.ModTime().UnixNano()}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		id.dev, id.ino = uint64(sys.Dev), sys.Ino
	}
	if e := s.files[id]; e != nil {
		e.lastUse = s.tick
		return e.file
	}
	f, err := OpenFile(path)
	if err != nil && f == nil {
		return nil
	}
	// The same binary in several containers is one file.
	if f.BuildID != "" {
		if e := s.byBuildID[f.BuildID]; e != nil {
			e.lastUse = s.tick
			s.files[id] = e
			return e.file
		}
	}
	if len(s.files) >= s.maxFiles {
		s.evictFileLocked(nil)
	}
	e := &fileEntry{file: f, lastUse: s.tick}
	s.files[id] = e
	if f.BuildID != "" {
		s.byBuildID[f.BuildID] = e
	}
	s.fileBytes += f.bytes
	// The file just opened stays even if it alone exceeds the budget:
	// the stack being symbolized needs it.
	for s.fileBytes > s.maxFileBytes && s.evictFileLocked(e) {
	}
	return f
}

// evictFileLocked drops the least recently used file other than keep; it
// reports whether there was one.
func (s *Symbolizer) evictFileLocked(keep *fileEntry) bool {
	var victim *fileEntry
	for _, e := range s.files {
		if e != keep && (victim == nil || e.lastUse < victim.lastUse) {
			victim = e
		}
	}
	if victim == nil {
		return false
	}
	for id, e := range s.files {
		if e == victim {
			delete(s.files, id)
		}
	}
	for b, e := range s.byBuildID {
		if e == victim {
			delete(s.byBuildID, b)
		}
	}
	s.fileBytes -= victim.file.bytes
	return true
}

// PerfMapPath is the perf map of process pid through proc: its JIT writes
// /tmp/perf-<its own PID>.map in its root.
func PerfMapPath(procfs string, pid int) string {
	if procfs == "" {
		procfs = "/proc"
	}
	return fmt.Sprintf("%s/%d/root/tmp/perf-%d.map", procfs, pid, nsPID(procfs, pid))
}

// nsPID is the PID of pid inside its own namespace (the last NSpid field),
// which is the number a containerized JIT puts in its perf map's name.
func nsPID(procfs string, pid int) int {
	f, err := os.Open(fmt.Sprintf("%s/%d/status", procfs, pid))
	if err != nil {
		return pid
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "NSpid:"); ok {
			fields := strings.Fields(rest)
			if len(fields) > 0 {
				if n, err := strconv.Atoi(fields[len(fields)-1]); err == nil {
					return n
				}
			}
		}
	}
	return pid
}

// jitTypeOfLibrary names the runtime that a mapped library embeds (a JVM
// started by a launcher not called java, Node embedded as libnode), or
// native.
func jitTypeOfLibrary(file string) profiles.FrameType {
	switch path.Base(file) {
	case "libjvm.so":
		return profiles.FrameJVM
	case "libnode.so":
		return profiles.FrameV8JS
	case "libcoreclr.so":
		return profiles.FrameDotnet
	}
	if strings.HasPrefix(path.Base(file), "libnode.so.") {
		return profiles.FrameV8JS
	}
	return profiles.FrameNative
}

// jitType guesses the runtime whose JIT writes the perf map from the
// executable's name; readMapsLocked refines it from the mapped libraries.
func (s *Symbolizer) jitType(pid int) profiles.FrameType {
	exe, err := os.Readlink(fmt.Sprintf("%s/%d/exe", s.procfs, pid))
	if err != nil {
		return profiles.FrameNative
	}
	switch path.Base(exe) {
	case "java":
		return profiles.FrameJVM
	case "node", "nodejs":
		return profiles.FrameV8JS
	case "dotnet":
		return profiles.FrameDotnet
	}
	return profiles.FrameNative
}
