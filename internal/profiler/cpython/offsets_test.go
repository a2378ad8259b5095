package cpython

import (
	"debug/dwarf"
	"debug/elf"
	"path/filepath"
	"strings"
	"testing"
)

// libpythons are pyenv's shared builds (with DWARF) by minor version,
// where present.
func libpythons(t *testing.T) map[int]string {
	out := map[int]string{}
	for minor := range offsetTable {
		m, _ := filepath.Glob(filepath.Join("/root/.pyenv/versions", "3."+itoa(minor)+".*", "lib", "libpython3."+itoa(minor)+".so.1.0"))
		if len(m) > 0 {
			out[minor] = m[0]
		}
	}
	if len(out) == 0 {
		t.Skip("no CPython build with DWARF (pyenv) on this machine")
	}
	return out
}

// structs indexes the complete struct types of d by name (typedef names
// too).
func structs(d *dwarf.Data) map[string]*dwarf.StructType {
	out := map[string]*dwarf.StructType{}
	r := d.Reader()
	for {
		e, err := r.Next()
		if err != nil || e == nil {
			return out
		}
		if e.Tag != dwarf.TagStructType && e.Tag != dwarf.TagTypedef {
			continue
		}
		name, _ := e.Val(dwarf.AttrName).(string)
		if name == "" || out[name] != nil {
			continue
		}
		typ, err := d.Type(e.Offset)
		if err != nil {
			continue
		}
		for {
			td, ok := typ.(*dwarf.TypedefType)
			if !ok {
				break
			}
			typ = td.Type
		}
		if st, ok := typ.(*dwarf.StructType); ok && !st.Incomplete {
			out[name] = st
		}
	}
}

// offsetOf resolves "struct.field.field" in the DWARF structs.
func offsetOf(t *testing.T, all map[string]*dwarf.StructType, path string) (uint32, bool) {
	parts := strings.Split(path, ".")
	st := all[parts[0]]
	var off int64
	for _, name := range parts[1:] {
		if st == nil {
			return 0, false
		}
		var next *dwarf.StructType
		found := false
		for _, f := range st.Field {
			if f.Name != name {
				continue
			}
			off += f.ByteOffset
			found = true
			typ := f.Type
			for {
				if td, ok := typ.(*dwarf.TypedefType); ok {
					typ = td.Type
					continue
				}
				break
			}
			next, _ = typ.(*dwarf.StructType)
		}
		if !found {
			return 0, false
		}
		st = next
	}
	return uint32(off), true
}

// The offset table equals the layout in the DWARF of real builds of each
// minor version (pyenv's, where present; the Debian build has no DWARF
// and is checked by the profiling tests instead).
func TestOffsetsMatchDWARF(t *testing.T) {
	for minor, lib := range libpythons(t) {
		f, err := elf.Open(lib)
		if err != nil {
			t.Fatal(err)
		}
		d, err := f.DWARF()
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", lib, err)
		}
		all := structs(d)
		o := offsetTable[minor]
		frame := "_PyInterpreterFrame"
		if minor < 11 {
			frame = "_frame"
		}
		code := map[bool]string{true: "f_code", false: "f_executable"}[minor < 13]
		instr := map[int]string{8: "f_lasti", 9: "f_lasti", 10: "f_lasti", 11: "prev_instr", 12: "prev_instr", 13: "instr_ptr"}[minor]
		tstateFrame := map[int]string{8: "frame", 9: "frame", 10: "frame", 11: "cframe", 12: "cframe", 13: "current_frame"}[minor]
		threads := "_is.threads.head"
		if minor < 11 {
			threads = "_is.tstate_head"
		}
		lines := "co_linetable"
		if minor < 10 {
			lines = "co_lnotab"
		}
		checks := []struct {
			path string
			got  uint32
		}{
			{"pyruntimestate.interpreters.head", o.RuntimeInterpHead},
			{threads, o.InterpTstateHead},
			{"_ts.next", o.ThreadNext},
			{"_ts.thread_id", o.ThreadID},
			{"_ts." + tstateFrame, o.ThreadFrame},
			{frame + "." + code, o.FrameCode},
			{frame + ".f_back", o.FrameBack},
			{frame + "." + instr, o.FrameInstr},
			{"PyCodeObject.co_filename", o.CodeFilename},
			{"PyCodeObject.co_name", o.CodeName},
			{"PyCodeObject.co_firstlineno", o.CodeFirstLineno},
			{"PyCodeObject." + lines, o.CodeLineTable},
			{"PyVarObject.ob_size", o.BytesSize},
			{"PyBytesObject.ob_sval", o.BytesData},
			{"PyObject.ob_type", objectType},
			{"PyASCIIObject.length", unicodeLength},
			{"PyASCIIObject.state", unicodeState},
		}
		if minor < 11 {
			checks[5].path, checks[6].path = "_frame.f_code", "_frame.f_back"
		} else {
			checks[6].path = frame + ".previous"
			checks = append(checks,
				struct {
					path string
					got  uint32
				}{"PyCodeObject.co_qualname", o.CodeQualname},
				struct {
					path string
					got  uint32
				}{"PyCodeObject.co_code_adaptive", o.CodeAdaptive},
				struct {
					path string
					got  uint32
				}{frame + ".owner", o.FrameOwner})
		}
		if minor == 11 {
			checks = append(checks, struct {
				path string
				got  uint32
			}{frame + ".is_entry", o.FrameIsEntry})
		}
		if minor == 11 || minor == 12 {
			checks = append(checks, struct {
				path string
				got  uint32
			}{"_PyCFrame.current_frame", o.CFrameCurrent})
		}
		for _, c := range checks {
			want, ok := offsetOf(t, all, c.path)
			if !ok {
				t.Errorf("3.%d: %s not in the DWARF of %s", minor, c.path, lib)
				continue
			}
			if c.got != want {
				t.Errorf("3.%d: %s: table says %d, DWARF %d", minor, c.path, c.got, want)
			}
		}
		t.Logf("3.%d (%s): %d offsets checked", minor, lib, len(checks)+2)
		if st := all["PyASCIIObject"]; st == nil || uint32(st.ByteSize) != o.UnicodeASCIISize {
			t.Errorf("3.%d: PyASCIIObject size != %d", minor, o.UnicodeASCIISize)
		}
		if st := all["PyCompactUnicodeObject"]; st == nil || uint32(st.ByteSize) != o.UnicodeCompactSize {
			t.Errorf("3.%d: PyCompactUnicodeObject size != %d", minor, o.UnicodeCompactSize)
		}
	}
}
