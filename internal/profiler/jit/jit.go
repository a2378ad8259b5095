//go:build linux

// Package jit prepares a process with a JIT runtime for a profiling task,
// so that the symbolizer can name its JIT frames from /tmp/perf-PID.map:
//
//   - HotSpot JVMs (libjvm.so mapped) are asked for their code map through
//     the attach mechanism (Compiler.perfmap, JDK 17+) when the task starts,
//     and again every refresh interval while it runs; never for processes
//     that are only monitored.
//   - V8 (Node) and other runtimes that write the map themselves (.NET with
//     DOTNET_PerfMapEnabled=1, LuaJIT, Julia) need nothing; the symbolizer
//     reads their map as it grows. A Node started without --perf-basic-prof
//     gets a note saying why its JS frames have no names.
//
// Every profile of the task says what was done (contprof.jit.* attributes),
// and problems are logged: a JVM that is too old or refuses attach still
// gets its native frames.
package jit

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/contprof/contprof/internal/output/profiles"
	"github.com/contprof/contprof/internal/periodic"
	"github.com/contprof/contprof/internal/profiler/hotspot"
	"github.com/contprof/contprof/internal/profiler/symbolize"
	"github.com/contprof/contprof/internal/profiler/unwind"
)

// Profile attributes a task's profiles carry for a JIT runtime.
const (
	// AttrRuntime is the runtime found: hotspot, v8 or perf_map (any other
	// runtime writing a perf map).
	AttrRuntime = "contprof.jit.runtime"
	// AttrStatus is ok, or why JIT frames are not (all) named:
	// attach_disabled, attach_refused, too_old, no_perf_map, error.
	AttrStatus = "contprof.jit.status"
	// AttrNote explains the status in words, including how far stacks go.
	AttrNote = "contprof.jit.note"
)

// Runtimes.
const (
	RuntimeHotSpot = "hotspot"
	RuntimeV8      = "v8"
	RuntimePerfMap = "perf_map"
)

// Statuses.
const (
	StatusOK             = "ok"
	StatusPending        = "pending"
	StatusAttachDisabled = "attach_disabled"
	StatusAttachRefused  = "attach_refused"
	StatusTooOld         = "too_old"
	StatusNoPerfMap      = "no_perf_map"
	StatusError          = "error"
)

// DefaultRefreshInterval is how often a JVM's perf map is written again
// while a task runs: methods compiled since then are named from then on.
const DefaultRefreshInterval = 5 * time.Second

// Options configure a Manager.
type Options struct {
	// Symbolizer is told when a JVM rewrote its perf map. Required.
	Symbolizer *symbolize.Symbolizer
	Logger     *zap.Logger
	// RefreshInterval is how often a JVM is asked for its perf map again;
	// default DefaultRefreshInterval.
	RefreshInterval time.Duration
	// HotSpot tunes attaching (proc mount, listener timeout).
	HotSpot hotspot.Options
}

// Manager starts one session per process, shared by the tasks that run on
// it at the same time.
type Manager struct {
	opts Options

	mu       sync.Mutex
	sessions map[int]*Session
	wg       sync.WaitGroup
}

// NewManager returns a Manager.
func NewManager(opts Options) *Manager {
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.RefreshInterval <= 0 {
		opts.RefreshInterval = DefaultRefreshInterval
	}
	return &Manager{opts: opts, sessions: map[int]*Session{}}
}

// Session is the JIT preparation of one process for its tasks.
type Session struct {
	m   *Manager
	pid int
	// refs is guarded by m.mu.
	refs   int
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	runtime string
	status  string
	note    string
	// removeMap is the perf map the session made the JVM write (none was
	// there before); it is removed when the last task ends.
	removeMap string
}

// Start prepares pid for a task; it returns at once (attaching to a JVM
// runs in the background, while the task already samples). Call Close when
// the task ends.
func (m *Manager) Start(pid int) *Session {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s := m.sessions[pid]; s != nil {
		s.refs++
		return s
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Session{m: m, pid: pid, refs: 1, cancel: cancel, done: make(chan struct{})}
	m.sessions[pid] = s
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer close(s.done)
		s.run(ctx)
	}()
	return s
}

// Wait blocks until every session has ended (for shutdown).
func (m *Manager) Wait() { m.wg.Wait() }

// Close ends the task's use of the session; the last one stops the
// refreshes and removes a perf map that only the session caused.
func (s *Session) Close() {
	m := s.m
	m.mu.Lock()
	s.refs--
	last := s.refs == 0
	if last {
		delete(m.sessions, s.pid)
	}
	m.mu.Unlock()
	if !last {
		return
	}
	s.cancel()
	<-s.done
	s.mu.Lock()
	rm := s.removeMap
	s.mu.Unlock()
	if rm != "" {
		_ = os.Remove(rm)
	}
}

// Status reports the runtime found ("" for none), the status and the note.
func (s *Session) Status() (runtime, status, note string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.runtime, s.status, s.note
}

// Annotate adds the session's attributes to p (a copy of its attribute
// map: tasks share theirs between profiles). Nothing for a process without
// a JIT runtime.
func (s *Session) Annotate(p *profiles.Profile) {
	rt, status, note := s.Status()
	if rt == "" {
		return
	}
	attrs := maps.Clone(p.Attributes)
	if attrs == nil {
		attrs = map[string]any{}
	}
	attrs[AttrRuntime] = rt
	attrs[AttrStatus] = status
	if note != "" {
		attrs[AttrNote] = note
	}
	p.Attributes = attrs
}

func (s *Session) set(runtime, status, note string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.runtime, s.status, s.note = runtime, status, note
}

func (s *Session) run(ctx context.Context) {
	opts := s.m.opts
	log := opts.Logger.With(zap.Int("pid", s.pid))
	tg, err := hotspot.Find(opts.HotSpot, s.pid)
	switch {
	case err == nil:
		s.runHotSpot(ctx, tg, log)
	case errors.Is(err, hotspot.ErrNotJVM):
		s.detectOther(log)
	default:
		log.Debug("JIT runtime detection failed", zap.Error(err))
	}
}

func (s *Session) runHotSpot(ctx context.Context, tg *hotspot.Target, log *zap.Logger) {
	opts := s.m.opts
	s.set(RuntimeHotSpot, StatusPending, "asking the JVM for its perf map")
	mapPath := tg.TmpPath(tg.PerfMapName())
	_, statErr := os.Stat(mapPath)
	existed := statErr == nil

	start := time.Now()
	err := s.dump(ctx, tg)
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		status := StatusError
		switch {
		case errors.Is(err, hotspot.ErrAttachDisabled):
			status = StatusAttachDisabled
		case errors.Is(err, hotspot.ErrNoListener), errors.Is(err, hotspot.ErrRefused):
			status = StatusAttachRefused
		case errors.Is(err, hotspot.ErrTooOld):
			status = StatusTooOld
		}
		note := fmt.Sprintf("Java frames are not named: %v; native frames are unaffected", err)
		s.set(RuntimeHotSpot, status, note)
		log.Warn("JVM frames will not be named", zap.String("status", status), zap.Error(err))
		return
	}
	if !existed {
		s.mu.Lock()
		s.removeMap = mapPath
		s.mu.Unlock()
	}
	frames, note := s.hotspotUnwinding(tg, mapPath, s.preservesFramePointer(ctx, tg), log)
	if frames != nil {
		defer unwind.RegisterJITFrames(s.pid, frames)()
		if frames.methods != nil {
			defer frames.methods.Close()
			defer opts.Symbolizer.SetNamer(s.pid, frames.name)()
		}
	}
	s.set(RuntimeHotSpot, StatusOK, note)
	log.Info("JVM perf map written through the attach mechanism", zap.Duration("took", time.Since(start)), zap.String("perf_map", mapPath))

	periodic.Run(ctx, opts.RefreshInterval, func(time.Time) {
		if err := s.dump(ctx, tg); err != nil {
			if ctx.Err() == nil {
				log.Debug("JVM perf map refresh failed", zap.Error(err))
			}
			return
		}
		if frames != nil {
			if err := frames.update(mapPath); err != nil {
				log.Debug("JVM frame sizes not refreshed", zap.Error(err))
			}
		}
	})
}

// hotspotUnwinding prepares what the unwinder needs from the JVM's own
// tables (gHotSpotVMStructs): the frame size of every compiled method, to
// go through compiled frames without frame pointers, and the names of the
// methods interpreter frames run. The note says how stacks will look.
func (s *Session) hotspotUnwinding(tg *hotspot.Target, mapPath string, framePointers bool, log *zap.Logger) (*hotspotFrames, string) {
	note := "JIT-compiled methods named from Compiler.perfmap"
	vms, err := hotspot.ReadVMStructs(tg)
	var frames *hotspotFrames
	if err == nil {
		frames = &hotspotFrames{tg: tg, vms: vms}
		err = frames.update(mapPath)
	}
	if err != nil {
		log.Info("JVM tables unavailable", zap.Error(err))
		note += "; interpreted frames show as Interpreter"
		if !framePointers {
			note += "; the JVM runs without -XX:+PreserveFramePointer, so stacks end at the first compiled Java frame (its callers are missing): " + err.Error()
		}
		return nil, note
	}
	if frames.methods, err = hotspot.NewMethods(tg, vms); err != nil {
		log.Info("JVM interpreted frames will not be named", zap.Error(err))
		note += "; interpreted frames show as Interpreter (" + err.Error() + ")"
	} else {
		note += "; interpreted frames named by the method they run (on-CPU and off-CPU stacks unwound in user space)"
	}
	if !framePointers {
		note += "; the JVM runs without -XX:+PreserveFramePointer: stacks unwound in user space go through compiled frames by the frame sizes HotSpot publishes (gHotSpotVMStructs), frame-pointer stacks end at the first compiled Java frame"
	}
	return frames, note
}

// dump has the JVM rewrite its perf map and the symbolizer read it anew.
func (s *Session) dump(ctx context.Context, tg *hotspot.Target) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err := hotspot.DumpPerfMap(ctx, s.m.opts.HotSpot, tg)
	if err == nil {
		s.m.opts.Symbolizer.ReloadPerfMap(s.pid)
	}
	return err
}

// preservesFramePointer asks the JVM for its non-default flags.
func (s *Session) preservesFramePointer(ctx context.Context, tg *hotspot.Target) bool {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	res, err := hotspot.Jcmd(ctx, s.m.opts.HotSpot, tg, "VM.flags")
	return err == nil && strings.Contains(res.Output, "-XX:+PreserveFramePointer")
}

// detectOther recognizes Node (and what it needs to be named) and any
// runtime that already writes a perf map.
func (s *Session) detectOther(log *zap.Logger) {
	procfs := s.m.opts.HotSpot.ProcFS
	if procfs == "" {
		procfs = "/proc"
	}
	mapPath := symbolize.PerfMapPath(procfs, s.pid)
	_, err := os.Stat(mapPath)
	hasMap := err == nil
	if isNode(procfs, s.pid) {
		args := nodeArgs(procfs, s.pid)
		switch {
		case !args["--perf-basic-prof"] && !args["--perf-basic-prof-only-functions"] && !args["--perf-prof"]:
			note := "node runs without --perf-basic-prof: JS frames are not named (start it with --perf-basic-prof --interpreted-frames-native-stack)"
			s.set(RuntimeV8, StatusNoPerfMap, note)
			log.Info("Node JS frames will not be named", zap.String("reason", note))
		case !args["--interpreted-frames-native-stack"]:
			s.set(RuntimeV8, StatusOK, "JS frames named from the perf map; interpreted functions show as the interpreter builtin (add --interpreted-frames-native-stack)")
		default:
			s.set(RuntimeV8, StatusOK, "JS frames named from the perf map")
		}
		return
	}
	if hasMap {
		s.set(RuntimePerfMap, StatusOK, "JIT frames named from the perf map")
	}
}

func isNode(procfs string, pid int) bool {
	exe, err := os.Readlink(fmt.Sprintf("%s/%d/exe", procfs, pid))
	if err != nil {
		return false
	}
	base := path.Base(strings.TrimSuffix(exe, " (deleted)"))
	return base == "node" || base == "nodejs"
}

// nodeArgs are the V8/Node flags on the command line and in NODE_OPTIONS.
func nodeArgs(procfs string, pid int) map[string]bool {
	out := map[string]bool{}
	if b, err := os.ReadFile(fmt.Sprintf("%s/%d/cmdline", procfs, pid)); err == nil {
		for _, a := range strings.Split(string(b), "\x00") {
			out[strings.ReplaceAll(a, "_", "-")] = true
		}
	}
	if b, err := os.ReadFile(fmt.Sprintf("%s/%d/environ", procfs, pid)); err == nil {
		for _, kv := range strings.Split(string(b), "\x00") {
			if v, ok := strings.CutPrefix(kv, "NODE_OPTIONS="); ok {
				for _, a := range strings.Fields(v) {
					out[strings.ReplaceAll(a, "_", "-")] = true
				}
			}
		}
	}
	return out
}
