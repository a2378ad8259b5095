package cpython

import "github.com/contprof/contprof/internal/output/profiles"

// PyFrame is one symbolized Python frame of a sample, leaf first.
// Entry marks the first frame (the root-most) that one invocation of
// _PyEval_EvalFrameDefault executed.
type PyFrame struct {
	Frame profiles.Frame
	Entry bool
}

// evalFunction is the interpreter loop; one native frame of it runs the
// Python frames up to the next entry frame.
const evalFunction = "_PyEval_EvalFrameDefault"

// Merge interleaves the Python frames of a sample with its symbolized
// native frames (kernel frames first, then user frames, leaf first, as
// symbolize.Stack returns them): each native _PyEval_EvalFrameDefault frame
// is replaced by the Python frames it was running, so that C functions
// (extensions, the interpreter's own work) stay under their Python caller,
// the way py-spy --native shows them.
//
// When the native stack holds fewer eval frames than the Python stack has
// invocations (native unwinding stopped early, e.g. in an interpreter
// built without frame pointers), the native frames are kept up to the
// first frame in the interpreter's own binary (interp, its path) and the
// remaining Python frames go under them: the leaf stays exact, the
// unreliable native callers are left out.
func Merge(native []profiles.Frame, py []PyFrame, interp string) []profiles.Frame {
	if len(py) == 0 {
		return native
	}
	evals := 0
	for i := range native {
		if native[i].Type != profiles.FrameKernel && native[i].Function == evalFunction {
			evals++
		}
	}
	invocations := 0
	for i, f := range py {
		if f.Entry || i == len(py)-1 {
			invocations++
		}
	}
	out := make([]profiles.Frame, 0, len(native)+len(py))
	if evals < invocations {
		cut := len(native)
		for i := range native {
			f := &native[i]
			if f.Type == profiles.FrameKernel {
				continue
			}
			if f.Function == evalFunction || (f.Mapping != nil && f.Mapping.File == interp) {
				cut = i
				if f.Function != evalFunction {
					cut++ // keep the interpreter's leaf function itself
				}
				break
			}
		}
		out = append(out, native[:cut]...)
		for _, f := range py {
			out = append(out, f.Frame)
		}
		return out
	}
	pi := 0
	for _, f := range native {
		if f.Type == profiles.FrameKernel || f.Function != evalFunction || pi == len(py) {
			out = append(out, f)
			continue
		}
		for pi < len(py) {
			e := py[pi].Entry
			out = append(out, py[pi].Frame)
			pi++
			if e {
				break
			}
		}
	}
	return out
}
