//go:build linux

package jit

import (
	"bufio"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/contprof/contprof/internal/profiler/hotspot"
)

// hotspotFrames gives the unwinder the frame size of every compiled Java
// method of one JVM (unwind.JITFrames), so that stacks go on through
// compiled frames of a JVM without -XX:+PreserveFramePointer. It is
// rebuilt from the perf map after each Compiler.perfmap.
type hotspotFrames struct {
	tg  *hotspot.Target
	vms hotspot.VMStructs
	// methods names interpreter frames; nil when the JVM's metadata
	// cannot be read.
	methods *hotspot.Methods

	mu     sync.RWMutex
	frames []hotspot.CompiledFrame // sorted by Start
	interp [2]uint64               // the Interpreter blob's code
}

// InterpretedMethod implements unwind.JITInterpreter: a frame in the
// interpreter holds its Method* at rbp-24.
func (h *hotspotFrames) InterpretedMethod(pc, bp uint64, read func(uint64) (uint64, bool)) (uint64, bool) {
	if h.methods == nil || bp < 24 {
		return 0, false
	}
	h.mu.RLock()
	in := pc >= h.interp[0] && pc < h.interp[1]
	h.mu.RUnlock()
	if !in {
		return 0, false
	}
	m, ok := read(bp - 24)
	if !ok {
		return 0, false
	}
	if _, ok := h.methods.Name(m); !ok {
		return 0, false
	}
	return m, true
}

// name is the symbolizer's namer for the method addresses that
// InterpretedMethod put in stacks (looked up as addr-1 when a caller).
func (h *hotspotFrames) name(addr uint64) (string, bool) {
	if n, ok := h.methods.Known(addr); ok {
		return n, true
	}
	return h.methods.Known(addr + 1)
}

// FrameSize implements unwind.JITFrames.
func (h *hotspotFrames) FrameSize(pc uint64) (uint64, bool) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	i := sort.Search(len(h.frames), func(i int) bool { return h.frames[i].End > pc })
	if i < len(h.frames) && h.frames[i].Start <= pc {
		return h.frames[i].Size, true
	}
	return 0, false
}

// update reads the compiled methods from the perf map at path and finds
// the frame sizes of the ones not seen before.
func (h *hotspotFrames) update(path string) error {
	code, interp, err := compiledMethods(path)
	if err != nil {
		return err
	}
	h.mu.RLock()
	known := make(map[[2]uint64]uint64, len(h.frames))
	for _, f := range h.frames {
		known[[2]uint64{f.Start, f.End}] = f.Size
	}
	h.mu.RUnlock()
	var next, unknown []hotspot.CompiledFrame
	for _, c := range code {
		if size, ok := known[[2]uint64{c.Start, c.End}]; ok {
			c.Size = size
			next = append(next, c)
		} else {
			unknown = append(unknown, c)
		}
	}
	found, err := hotspot.CompiledFrames(h.tg, h.vms, unknown)
	if err != nil {
		return err
	}
	next = append(next, found...)
	sort.Slice(next, func(i, j int) bool { return next[i].Start < next[j].Start })
	h.mu.Lock()
	h.frames, h.interp = next, interp
	h.mu.Unlock()
	return nil
}

// compiledMethods lists the Java methods of a HotSpot perf map ("0xSTART
// 0xSIZE void JSplit.javaAlpha(long)") and the Interpreter's code range;
// other code blobs (stubs: no parenthesis) are left out: they keep frame
// pointers.
func compiledMethods(path string) (out []hotspot.CompiledFrame, interp [2]uint64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, interp, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		fields := strings.SplitN(sc.Text(), " ", 3)
		if len(fields) != 3 {
			continue
		}
		start, err1 := strconv.ParseUint(strings.TrimPrefix(fields[0], "0x"), 16, 64)
		size, err2 := strconv.ParseUint(strings.TrimPrefix(fields[1], "0x"), 16, 64)
		if err1 != nil || err2 != nil || size == 0 {
			continue
		}
		switch {
		case fields[2] == "Interpreter":
			interp = [2]uint64{start, start + size}
		case strings.Contains(fields[2], "("):
			out = append(out, hotspot.CompiledFrame{Start: start, End: start + size})
		}
	}
	return out, interp, sc.Err()
}
