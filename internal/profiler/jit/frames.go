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

	mu     sync.RWMutex
	frames []hotspot.CompiledFrame // sorted by Start
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
	code, err := compiledMethods(path)
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
	h.frames = next
	h.mu.Unlock()
	return nil
}

// compiledMethods lists the Java methods of a HotSpot perf map ("0xSTART
// 0xSIZE void JSplit.javaAlpha(long)"); code blobs such as Interpreter or
// stubs (no parenthesis) are left out: they keep frame pointers.
func compiledMethods(path string) ([]hotspot.CompiledFrame, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []hotspot.CompiledFrame
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		fields := strings.SplitN(sc.Text(), " ", 3)
		if len(fields) != 3 || !strings.Contains(fields[2], "(") {
			continue
		}
		start, err1 := strconv.ParseUint(strings.TrimPrefix(fields[0], "0x"), 16, 64)
		size, err2 := strconv.ParseUint(strings.TrimPrefix(fields[1], "0x"), 16, 64)
		if err1 != nil || err2 != nil || size == 0 {
			continue
		}
		out = append(out, hotspot.CompiledFrame{Start: start, End: start + size})
	}
	return out, sc.Err()
}
