//go:build linux

// Package privilege finds out, once at start, what the profilers can do on
// this machine and as this process: the capabilities eBPF profiling needs,
// BTF and tracefs. It says what is missing and which task targets that
// disables, so that a collector without privileges reports it once instead
// of failing every task with a misleading error.
package privilege

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/contprof/contprof/internal/control/policy"
)

// Capabilities the profilers use, with why.
const (
	CapBPF           = "CAP_BPF"
	CapPerfmon       = "CAP_PERFMON"
	CapSysPtrace     = "CAP_SYS_PTRACE"
	CapDACReadSearch = "CAP_DAC_READ_SEARCH"
	// Kernel features.
	BTF     = "BTF"
	Tracefs = "tracefs"
)

// capNumbers are from include/uapi/linux/capability.h.
var capNumbers = map[string]uint{
	CapDACReadSearch: unix.CAP_DAC_READ_SEARCH,
	CapSysPtrace:     unix.CAP_SYS_PTRACE,
	CapPerfmon:       unix.CAP_PERFMON,
	CapBPF:           unix.CAP_BPF,
}

// needs lists, per target, what it cannot run without. Every target loads
// BPF programs (CAP_BPF) that read kernel memory and attach to perf events
// or tracepoints (CAP_PERFMON), compiled once against the kernel's BTF;
// network tasks attach tracepoints found through tracefs.
var needs = map[policy.Target][]string{
	policy.TargetOnCPU:   {CapBPF, CapPerfmon, BTF},
	policy.TargetOffCPU:  {CapBPF, CapPerfmon, BTF},
	policy.TargetNetwork: {CapBPF, CapPerfmon, BTF, Tracefs},
}

// degrades says what still runs, but with less, without a capability.
var degrades = map[string]string{
	CapSysPtrace:     "user-space symbols and unwinding of other users' processes",
	CapDACReadSearch: "/proc details (executable, command line, environment) of other users' processes",
}

// Status is what the process may do.
type Status struct {
	// Have maps each checked capability or feature to whether it is there.
	Have map[string]bool `json:"have"`
	// Missing lists what is not there, in a fixed order.
	Missing []string `json:"missing,omitempty"`
	// Disabled maps each target that cannot run to the reason.
	Disabled map[policy.Target]string `json:"disabled_targets,omitempty"`
	// Degraded lists what runs with less.
	Degraded []string `json:"degraded,omitempty"`
	// UID is the effective user id, to say who lacks the capabilities.
	UID int `json:"uid"`
}

// order of the checks in Missing and in texts.
var order = []string{CapBPF, CapPerfmon, CapSysPtrace, CapDACReadSearch, BTF, Tracefs}

// Probe checks the capabilities of this process (effective set), BTF and
// tracefs. sysRoot is "/sys" except in tests.
func Probe(sysRoot string) Status {
	have := map[string]bool{}
	effective, err := effectiveCaps()
	for name, n := range capNumbers {
		have[name] = err == nil && effective&(1<<n) != 0
	}
	// Before CAP_BPF and CAP_PERFMON (Linux 5.8), CAP_SYS_ADMIN granted
	// both; it still does.
	if err == nil && effective&(1<<unix.CAP_SYS_ADMIN) != 0 {
		have[CapBPF], have[CapPerfmon] = true, true
	}
	have[BTF] = readable(sysRoot + "/kernel/btf/vmlinux")
	have[Tracefs] = exists(sysRoot+"/kernel/tracing/events") || exists(sysRoot+"/kernel/debug/tracing/events")
	return newStatus(have, os.Geteuid())
}

func newStatus(have map[string]bool, uid int) Status {
	s := Status{Have: have, UID: uid, Disabled: map[policy.Target]string{}}
	for _, k := range order {
		if !have[k] {
			s.Missing = append(s.Missing, k)
			if d, ok := degrades[k]; ok {
				s.Degraded = append(s.Degraded, d+" (needs "+k+")")
			}
		}
	}
	for _, t := range policy.Targets {
		var miss []string
		for _, k := range needs[t] {
			if !have[k] {
				miss = append(miss, k)
			}
		}
		if len(miss) > 0 {
			s.Disabled[t] = fmt.Sprintf("%s profiling cannot run: %s %s missing", t, strings.Join(miss, ", "), isAre(len(miss)))
		}
	}
	return s
}

func isAre(n int) string {
	if n == 1 {
		return "is"
	}
	return "are"
}

// Admit returns the reason target cannot run, or nil.
func (s Status) Admit(target policy.Target) error {
	if r, ok := s.Disabled[target]; ok {
		return errors.New(r + s.who())
	}
	return nil
}

func (s Status) who() string {
	if s.UID == 0 {
		return " (the collector runs as root without them: check the container's or unit's capability bounding set)"
	}
	return fmt.Sprintf(" (the collector runs as uid %d; grant CAP_BPF and CAP_PERFMON, or run as root)", s.UID)
}

// Summary is the one line said at start: what is missing and what that
// disables, or "" when nothing is.
func (s Status) Summary() string {
	if len(s.Missing) == 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "missing %s", strings.Join(s.Missing, ", "))
	var off []string
	for _, t := range policy.Targets {
		if _, ok := s.Disabled[t]; ok {
			off = append(off, string(t))
		}
	}
	if len(off) > 0 {
		fmt.Fprintf(&b, "; disabled task targets: %s", strings.Join(off, ", "))
	}
	if len(s.Degraded) > 0 {
		fmt.Fprintf(&b, "; limited: %s", strings.Join(s.Degraded, "; "))
	}
	b.WriteString(s.who())
	return b.String()
}

// DisabledTargets lists the targets that cannot run, in policy.Targets order.
func (s Status) DisabledTargets() []policy.Target {
	var out []policy.Target
	for _, t := range policy.Targets {
		if _, ok := s.Disabled[t]; ok {
			out = append(out, t)
		}
	}
	return slices.Clip(out)
}

func effectiveCaps() (uint64, error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return 0, err
	}
	return uint64(data[0].Effective) | uint64(data[1].Effective)<<32, nil
}

func readable(p string) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	f.Close()
	return true
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// memlockHint is what cilium/ebpf appends to every EPERM from map or
// program creation, although since Linux 5.11 memory is accounted to the
// cgroup and a missing capability is by far the likelier cause.
const memlockHint = " (MEMLOCK may be too low, consider rlimit.RemoveMemlock)"

// Explain replaces a misleading cause in a BPF load error: a permission
// error names the missing capabilities instead of RLIMIT_MEMLOCK.
func Explain(err error) error {
	var done *permissionError
	if err == nil || errors.As(err, &done) || !(errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES)) {
		return err
	}
	msg := strings.Replace(err.Error(), memlockHint, "", 1)
	return &permissionError{msg: msg + ": permission denied loading eBPF: needs CAP_BPF and CAP_PERFMON (or root)", err: err}
}

type permissionError struct {
	msg string
	err error
}

func (e *permissionError) Error() string { return e.msg }
func (e *permissionError) Unwrap() error { return e.err }
