package procfs

import "fmt"

// Source is how a Scanner lists and samples processes.
type Source int

const (
	// SourceAuto uses SourceBPF when the task iterator loads (root or
	// CAP_BPF with CAP_PERFMON, a 5.17+ kernel with BTF, ProcRoot showing
	// the initial PID namespace) and SourceProc otherwise; New logs which
	// one and why.
	SourceAuto Source = iota
	// SourceProc lists /proc and reads /proc/PID/stat of every process.
	SourceProc
	// SourceBPF runs a BPF task iterator that reports every process in
	// one read; /proc is read only when a process is first seen (or
	// execs). New fails when the iterator is unavailable.
	SourceBPF
)

func (s Source) String() string {
	switch s {
	case SourceAuto:
		return "auto"
	case SourceProc:
		return "proc"
	case SourceBPF:
		return "bpf"
	}
	return fmt.Sprintf("Source(%d)", int(s))
}
