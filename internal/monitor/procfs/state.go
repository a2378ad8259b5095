//go:build linux

package procfs

import "math/bits"

// Task state bits (include/linux/sched.h, 5.14+) that /proc reports.
const (
	taskReport       = 0x7f   // RUNNING..PARKED: the bits a state letter shows
	taskIdle         = 0x402  // TASK_UNINTERRUPTIBLE | TASK_NOLOAD
	taskReportIdle   = 0x80   // TASK_REPORT_IDLE
	taskRTLockWait   = 0x1000 // TASK_RTLOCK_WAIT
	taskUninterrupt  = 0x2
	taskStateLetters = "RSDTtXZPI"
)

// stateLetter is the state letter of /proc/PID/stat for a task's __state
// and exit_state (the kernel's __task_state_index and task_state_array).
func stateLetter(state, exitState uint32) byte {
	s := (state | exitState) & taskReport
	switch state {
	case taskIdle:
		s = taskReportIdle
	case taskRTLockWait:
		s = taskUninterrupt
	}
	return taskStateLetters[bits.Len32(s)]
}
