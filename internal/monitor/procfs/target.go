package procfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// NotProfilableError says why a process cannot be a profiling target.
type NotProfilableError struct {
	PID    int
	Comm   string
	Reason string
}

func (e *NotProfilableError) Error() string {
	return fmt.Sprintf("process %d (%s) %s", e.PID, e.Comm, e.Reason)
}

// CheckTarget reads root/PID/stat and returns a *NotProfilableError for a
// kernel thread (no user space: an on- or off-CPU task would end without a
// profile) or a zombie (it has exited; only its parent's wait is pending).
// Other read errors are returned as they are (os.ErrNotExist for a process
// that is gone).
func CheckTarget(root string, pid int) error {
	b, err := os.ReadFile(filepath.Join(root, strconv.Itoa(pid), "stat"))
	if err != nil {
		return err
	}
	var st statFields
	if err := parseStat(b, &st); err != nil {
		return fmt.Errorf("%s/%d/stat: %w", root, pid, err)
	}
	comm := string(st.comm)
	switch {
	case st.flags&pfKthread != 0:
		return &NotProfilableError{PID: pid, Comm: comm, Reason: "is a kernel thread: it has no user space to profile"}
	case st.exited():
		return &NotProfilableError{PID: pid, Comm: comm, Reason: "is a zombie: it has exited and waits for its parent to reap it"}
	}
	return nil
}

// IsNotProfilable reports whether err is a *NotProfilableError.
func IsNotProfilable(err error) bool {
	var np *NotProfilableError
	return errors.As(err, &np)
}
