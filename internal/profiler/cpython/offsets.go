package cpython

import "fmt"

// Version is a CPython version as major, minor and micro numbers.
type Version struct{ Major, Minor, Micro int }

func (v Version) String() string {
	if v.Micro < 0 {
		return fmt.Sprintf("%d.%d", v.Major, v.Minor)
	}
	return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Micro)
}

// hex is the version as PY_VERSION_HEX without the release level.
func (v Version) hex() uint32 { return uint32(v.Major)<<24 | uint32(v.Minor)<<16 }

// How the frame records where it is executing.
const (
	instrLastiBytes = iota // int f_lasti, a byte offset (3.8, 3.9)
	instrLastiUnits        // int f_lasti, in code units (3.10)
	instrPointer           // pointer into co_code_adaptive (3.11+)
)

// How the frames of one _PyEval_EvalFrameDefault invocation are told apart.
const (
	entryEveryFrame = iota // one eval call per PyFrameObject (before 3.11)
	entryFlag              // _PyInterpreterFrame.is_entry (3.11)
	entryShim              // a frame owned by the C stack ends the group (3.12+)
)

// Line table formats of code objects.
const (
	linesLnotab   = iota // co_lnotab (3.8, 3.9)
	linesLinetab         // co_linetable, PEP 626 pairs (3.10)
	linesLocation        // co_linetable, location table (3.11+)
)

// none marks a field a version does not have.
const none = ^uint32(0)

// Offsets are the byte offsets of the interpreter's structures that the
// BPF walker and the code-object reader use, for one minor version on
// x86-64 (LP64). The field names follow CPython's.
type Offsets struct {
	// _PyRuntime.interpreters.head
	RuntimeInterpHead uint32
	// PyInterpreterState.tstate_head (before 3.11) / .threads.head
	InterpTstateHead uint32
	// PyThreadState.next, .thread_id (pthread_self()),
	ThreadNext, ThreadID uint32
	// PyThreadState.frame (before 3.11), .cframe (3.11, 3.12) or
	// .current_frame (3.13)
	ThreadFrame uint32
	// _PyCFrame.current_frame; none when ThreadFrame is the frame itself.
	CFrameCurrent uint32
	// Frame (PyFrameObject before 3.11, _PyInterpreterFrame since):
	// code object, caller, instruction (f_lasti, prev_instr or instr_ptr),
	// is_entry (3.11) and owner (3.11+).
	FrameCode, FrameBack, FrameInstr, FrameIsEntry, FrameOwner uint32
	// PyCodeObject fields.
	CodeFilename, CodeName, CodeQualname, CodeFirstLineno, CodeLineTable, CodeAdaptive uint32
	// Size of PyASCIIObject and PyCompactUnicodeObject: where the
	// characters of compact strings start.
	UnicodeASCIISize, UnicodeCompactSize uint32
	// PyBytesObject.ob_size and .ob_sval.
	BytesSize, BytesData uint32

	instrKind, entryKind, linesKind uint8
}

// Common to every version: PyObject.ob_type, PyUnicodeObject's length and
// state bits (interned:2, kind:3, compact:1, ascii:1).
const (
	objectType         = 8
	unicodeLength      = 16
	unicodeState       = 32
	frameOwnedByCStack = 3
)

// offsetTable holds the offsets per minor version, taken from CPython's
// headers at the release tags (Include/cpython/{pystate,code,frameobject,
// unicodeobject}.h, Include/internal/pycore_{runtime,interp,frame}.h) and
// checked against the DWARF of real builds (offsets_test.go). 3.13 builds
// also carry them in _PyRuntime.debug_offsets, which win when present.
// Verified with running interpreters: Debian's 3.11.2 (CI) and 3.8.18,
// 3.9.18, 3.10.13, 3.11.7, 3.12.1, 3.13.0 builds where present.
var offsetTable = map[int]Offsets{
	8: {
		RuntimeInterpHead: 32, InterpTstateHead: 8,
		ThreadNext: 8, ThreadID: 176, ThreadFrame: 24, CFrameCurrent: none,
		FrameCode: 32, FrameBack: 24, FrameInstr: 104, FrameIsEntry: none, FrameOwner: none,
		CodeFilename: 104, CodeName: 112, CodeQualname: none, CodeFirstLineno: 40, CodeLineTable: 120, CodeAdaptive: none,
		UnicodeASCIISize: 48, UnicodeCompactSize: 72, BytesSize: 16, BytesData: 32,
		instrKind: instrLastiBytes, entryKind: entryEveryFrame, linesKind: linesLnotab,
	},
	10: {
		RuntimeInterpHead: 32, InterpTstateHead: 8,
		ThreadNext: 8, ThreadID: 176, ThreadFrame: 24, CFrameCurrent: none,
		FrameCode: 32, FrameBack: 24, FrameInstr: 96, FrameIsEntry: none, FrameOwner: none,
		CodeFilename: 104, CodeName: 112, CodeQualname: none, CodeFirstLineno: 40, CodeLineTable: 120, CodeAdaptive: none,
		UnicodeASCIISize: 48, UnicodeCompactSize: 72, BytesSize: 16, BytesData: 32,
		instrKind: instrLastiUnits, entryKind: entryEveryFrame, linesKind: linesLinetab,
	},
	11: {
		RuntimeInterpHead: 40, InterpTstateHead: 16,
		ThreadNext: 8, ThreadID: 152, ThreadFrame: 56, CFrameCurrent: 8,
		FrameCode: 32, FrameBack: 48, FrameInstr: 56, FrameIsEntry: 68, FrameOwner: 69,
		CodeFilename: 112, CodeName: 120, CodeQualname: 128, CodeFirstLineno: 72, CodeLineTable: 136, CodeAdaptive: 184,
		UnicodeASCIISize: 48, UnicodeCompactSize: 72, BytesSize: 16, BytesData: 32,
		instrKind: instrPointer, entryKind: entryFlag, linesKind: linesLocation,
	},
	12: {
		RuntimeInterpHead: 40, InterpTstateHead: 72,
		ThreadNext: 8, ThreadID: 136, ThreadFrame: 56, CFrameCurrent: 0,
		FrameCode: 0, FrameBack: 8, FrameInstr: 56, FrameIsEntry: none, FrameOwner: 70,
		CodeFilename: 112, CodeName: 120, CodeQualname: 128, CodeFirstLineno: 68, CodeLineTable: 136, CodeAdaptive: 192,
		UnicodeASCIISize: 40, UnicodeCompactSize: 56, BytesSize: 16, BytesData: 32,
		instrKind: instrPointer, entryKind: entryShim, linesKind: linesLocation,
	},
	13: {
		RuntimeInterpHead: 632, InterpTstateHead: 7344,
		ThreadNext: 8, ThreadID: 152, ThreadFrame: 72, CFrameCurrent: none,
		FrameCode: 0, FrameBack: 8, FrameInstr: 56, FrameIsEntry: none, FrameOwner: 70,
		CodeFilename: 112, CodeName: 120, CodeQualname: 128, CodeFirstLineno: 68, CodeLineTable: 136, CodeAdaptive: 200,
		UnicodeASCIISize: 40, UnicodeCompactSize: 56, BytesSize: 16, BytesData: 32,
		instrKind: instrPointer, entryKind: entryShim, linesKind: linesLocation,
	},
}

func init() {
	// 3.9 changed none of the fields read here.
	offsetTable[9] = offsetTable[8]
}

// OffsetsFor returns the offsets of a CPython version, or an error saying
// that the version is not supported.
func OffsetsFor(v Version) (Offsets, error) {
	if v.Major == 3 {
		if o, ok := offsetTable[v.Minor]; ok {
			return o, nil
		}
	}
	return Offsets{}, fmt.Errorf("cpython: no struct offsets for Python %s (supported: 3.8 to 3.13)", v)
}
