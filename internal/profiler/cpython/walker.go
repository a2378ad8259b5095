//go:build linux

package cpython

import (
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/cilium/ebpf"

	"github.com/contprof/contprof/internal/output/profiles"
)

// Maps are the maps of bpf/headers/cpython.h in one loaded BPF collection.
type Maps struct {
	// Procs is py_procs (tgid → struct py_config), Stacks is py_stacks
	// (id → struct py_stack), Stats is py_stats.
	Procs, Stacks, Stats *ebpf.Map
}

// Config is struct py_config of cpython.h.
type Config struct {
	Runtime           uint64
	Version           uint32
	RuntimeInterpHead uint32
	InterpTstateHead  uint32
	ThreadNext        uint32
	ThreadID          uint32
	ThreadFrame       uint32
	CFrameCurrent     uint32
	FrameCode         uint32
	FrameBack         uint32
	FrameInstr        uint32
	FrameFlag         uint32
	_                 uint32
}

// MaxFrames is PY_MAX_FRAMES of cpython.h.
const MaxFrames = 64

// Flags of struct py_stack.
const (
	stackTruncated = 1
	stackReadFail  = 2
)

// RawFrame is struct py_frame: a code object and the raw instruction
// field (f_lasti, prev_instr or instr_ptr) and flag byte (is_entry or
// owner) of the frame, interpreted in user space per version.
type RawFrame struct {
	Code  uint64
	Instr uint64
	Flag  uint8
	_     [7]uint8
}

// RawStack is struct py_stack.
type RawStack struct {
	Len    uint32
	Flags  uint32
	Frames [MaxFrames]RawFrame
}

// Config is the walker configuration for t.
func (t *Target) Config() Config {
	o := &t.Offsets
	flag := none
	switch o.entryKind {
	case entryFlag:
		flag = o.FrameIsEntry
	case entryShim:
		flag = o.FrameOwner
	}
	return Config{
		Runtime: t.Runtime, Version: t.Version.hex(),
		RuntimeInterpHead: o.RuntimeInterpHead, InterpTstateHead: o.InterpTstateHead,
		ThreadNext: o.ThreadNext, ThreadID: o.ThreadID, ThreadFrame: o.ThreadFrame, CFrameCurrent: o.CFrameCurrent,
		FrameCode: o.FrameCode, FrameBack: o.FrameBack, FrameInstr: o.FrameInstr, FrameFlag: flag,
	}
}

// Process is one Python process whose frames a BPF program walks.
type Process struct {
	maps   Maps
	key    uint32
	mu     sync.Mutex // guards reader: tasks on one process drain concurrently
	reader *Reader
}

// Attach detects the interpreter of process pid (key: its tgid as the BPF
// program sees it) and configures the walker for it. It returns an error
// wrapping ErrNotPython for processes without CPython, and an error that
// says why otherwise (an unsupported version): the caller keeps profiling
// with native frames and reports the error as a note.
func Attach(maps Maps, procfs string, pid int, key uint32) (*Process, error) {
	t, err := Detect(procfs, pid)
	if err == nil && runtime.GOARCH != "amd64" {
		// cpython.h matches threads by the x86-64 thread pointer.
		err = fmt.Errorf("cpython: Python %s found, but Python frames are walked on amd64 only (this is %s)", t.Version, runtime.GOARCH)
	}
	if err != nil {
		return nil, err
	}
	r, err := NewReader(procfs, t)
	if err != nil {
		return nil, err
	}
	if err := maps.Procs.Update(key, t.Config(), ebpf.UpdateAny); err != nil {
		r.Close()
		return nil, fmt.Errorf("cpython: configure the walker for pid %d: %w", pid, err)
	}
	return &Process{maps: maps, key: key, reader: r}, nil
}

// Target is the interpreter found.
func (p *Process) Target() *Target { return p.reader.t }

// Stack reads stack id from py_stacks (before the LRU can evict it: call
// it when draining the counts that name it). ok is false when the stack
// is gone.
func (p *Process) Stack(id uint64) (RawStack, bool) {
	var st RawStack
	if id == 0 || p.maps.Stacks.Lookup(id, &st) != nil || st.Len > MaxFrames {
		return RawStack{}, false
	}
	return st, true
}

// Begin starts symbolizing one drain (see Reader.Begin).
func (p *Process) Begin() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.reader.Begin()
}

// Frames symbolizes a raw stack, leaf first; a truncated stack ends with
// a marker frame.
func (p *Process) Frames(st RawStack) []PyFrame {
	p.mu.Lock()
	defer p.mu.Unlock()
	o := &p.reader.t.Offsets
	out := make([]PyFrame, 0, st.Len+1)
	for _, f := range st.Frames[:min(st.Len, MaxFrames)] {
		entry := true
		switch o.entryKind {
		case entryFlag:
			entry = f.Flag != 0
		case entryShim:
			if f.Flag == frameOwnedByCStack {
				// The eval call's own frame: the frame before it (leaf
				// side) was the first that call ran.
				if len(out) > 0 {
					out[len(out)-1].Entry = true
				}
				continue
			}
			entry = false
		}
		fr, _ := p.reader.Frame(f.Code, instrOffset(o, f))
		out = append(out, PyFrame{Frame: fr, Entry: entry})
	}
	if st.Flags&(stackTruncated|stackReadFail) != 0 {
		out = append(out, PyFrame{Frame: profiles.Frame{Function: "[truncated python stack]", Type: profiles.FrameCPython}, Entry: true})
	}
	return out
}

// instrOffset is the byte offset of the frame's instruction in its code,
// -1 when unknown.
func instrOffset(o *Offsets, f RawFrame) int {
	switch o.instrKind {
	case instrLastiBytes, instrLastiUnits:
		lasti := int(int32(uint32(f.Instr)))
		if lasti < 0 {
			return -1
		}
		if o.instrKind == instrLastiUnits {
			lasti *= 2
		}
		return lasti
	default:
		base := f.Code + uint64(o.CodeAdaptive)
		if f.Instr < base || f.Instr-base > 1<<30 {
			return -1
		}
		return int(f.Instr - base)
	}
}

// Close stops walking the process and releases its memory file.
func (p *Process) Close() error {
	err := p.maps.Procs.Delete(p.key)
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		err = nil
	}
	return errors.Join(err, p.reader.Close())
}

// Note is what a task says about Python frames of its process: the
// interpreter walked, or why Python frames are not shown. Empty for
// processes that are not Python.
func Note(p *Process, attachErr error) string {
	switch {
	case p != nil:
		return fmt.Sprintf("Python %s frames from %s", p.Target().Version, p.Target().Path)
	case attachErr == nil || errors.Is(attachErr, ErrNotPython):
		return ""
	default:
		return fmt.Sprintf("Python frames not shown (native frames only): %v", attachErr)
	}
}

// AttrNote is the profile attribute that carries Note.
const AttrNote = "contprof.cpython"

// NoteAttributes returns attrs with the note added (a copy; attrs is
// shared by every profile of a task).
func NoteAttributes(attrs map[string]any, note string) map[string]any {
	if note == "" {
		return attrs
	}
	out := make(map[string]any, len(attrs)+1)
	for k, v := range attrs {
		out[k] = v
	}
	out[AttrNote] = note
	return out
}

// Symbolizer symbolizes and interleaves the Python stacks of one drain.
type Symbolizer struct{ p *Process }

// NewSymbolizer starts a drain of p's samples; p may be nil (not Python).
func NewSymbolizer(p *Process) Symbolizer {
	if p != nil {
		p.Begin()
	}
	return Symbolizer{p}
}

// Merge returns native (as symbolize.Stack returns it) with the Python
// stack st interleaved; native alone when there is none.
func (s Symbolizer) Merge(native []profiles.Frame, st *RawStack) []profiles.Frame {
	if s.p == nil || st == nil {
		return native
	}
	return Merge(native, s.p.Frames(*st), s.p.Target().Path)
}
