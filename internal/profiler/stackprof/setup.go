//go:build linux

package stackprof

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/contprof/contprof/bpf/load"
	"github.com/contprof/contprof/internal/monitor/procfs"
)

// Setup is what a source needs before it loads its programs.
type Setup struct {
	// PIDMax is the kernel's pid_max.
	PIDMax uint32
	// Common has the target_pids bitmap sized to cover every PID below
	// PIDMax, and the PID namespace; a source adds its map sizes.
	load.Common
}

// NewSetup reads pid_max and the PID namespace; name prefixes errors.
// forceNamespace sets the namespace even in the initial one (tests of the
// translation path).
func NewSetup(name string, forceNamespace bool) (Setup, error) {
	pidMax, err := procfs.PIDMax()
	if err != nil {
		return Setup{}, fmt.Errorf("%s: %w", name, err)
	}
	s := Setup{PIDMax: pidMax, Common: load.Common{FilterWords: (pidMax + 63) / 64}}
	dev, ino, init, err := procfs.PIDNamespace()
	if err != nil {
		return Setup{}, fmt.Errorf("%s: %w", name, err)
	}
	if !init || forceNamespace {
		s.PIDNamespaceDev, s.PIDNamespaceIno = dev, ino
	}
	return s, nil
}

// PrivilegeHint names what is missing when the kernel refuses; what is the
// feature ("on-CPU profiling").
func PrivilegeHint(err error, what string) error {
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		return fmt.Errorf("%w (%s needs root or CAP_BPF+CAP_PERFMON)", err, what)
	}
	return err
}

// Load is the setup's load.Common completed with a source's map sizes and
// how it takes user stacks.
func (s Setup) Load(stackEntries, countEntries int, u UnwindOptions) load.Common {
	c := s.Common
	c.StackEntries, c.CountEntries = uint32(stackEntries), uint32(countEntries)
	c.Unwind, c.EventBytes = !u.FramePointersOnly, uint32(u.EventBytes)
	return c
}
