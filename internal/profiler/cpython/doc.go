// Package cpython finds the CPython interpreter in a process and turns the
// Python frames that the BPF samplers record (code object address and
// instruction offset, walked from the thread state in bpf/headers/cpython.h)
// into frames with the function's qualified name, file and line.
//
// Detection reads the ELF that holds _PyRuntime (the executable, or
// libpython for shared builds): the version from Py_Version (3.11+) or the
// file name, the struct offsets from a per-minor-version table (3.8 to
// 3.13; 3.13 builds also carry them in _PyRuntime.debug_offsets). An
// unknown version yields an error that the task reports, and the process
// is profiled with native frames only: never with wrong names.
//
// Code objects are read from /proc/PID/mem, cached per address, and
// re-validated (type and fields) once per drain, since a freed code
// object's memory may be reused.
package cpython
