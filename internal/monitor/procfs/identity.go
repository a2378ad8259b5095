//go:build linux

package procfs

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// StartTime returns field 22 of /proc/PID/stat (start time in clock ticks
// since boot), which with the PID identifies a process across PID reuse. A
// zombie counts as exited.
func StartTime(pid int) (string, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", errors.New("no such process")
		}
		return "", err
	}
	var st statFields
	if err := parseStat(b, &st); err != nil {
		return "", err
	}
	if st.exited() {
		return "", errors.New("process has exited")
	}
	return strconv.FormatUint(st.startTicks, 10), nil
}

// procPIDInitIno is the inode of the initial PID namespace
// (PROC_PID_INIT_INO in include/linux/proc_ns.h).
const procPIDInitIno = 0xEFFFFFFC

// PIDNamespace identifies the PID namespace this process runs in; init is
// true for the initial namespace, where the kernel's PIDs are ours. BPF
// programs given dev and ino translate PIDs into it
// (bpf_get_ns_current_pid_tgid).
func PIDNamespace() (dev, ino uint64, init bool, err error) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/ns/pid", &st); err != nil {
		return 0, 0, false, fmt.Errorf("identify pid namespace: %w", err)
	}
	return st.Dev, st.Ino, st.Ino == procPIDInitIno, nil
}

// PIDMax is the kernel's pid_max: every PID is below it.
func PIDMax() (uint32, error) {
	b, err := os.ReadFile("/proc/sys/kernel/pid_max")
	if err != nil {
		return 0, fmt.Errorf("read pid_max: %w", err)
	}
	s := strings.TrimSpace(string(b))
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == 0 || n > 1<<22 {
		return 0, fmt.Errorf("/proc/sys/kernel/pid_max: %q is not a PID limit", s)
	}
	return uint32(n), nil
}
