package procfs

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestStartTimeAndNamespace(t *testing.T) {
	st, err := StartTime(os.Getpid())
	if err != nil || st == "" || strings.ContainsAny(st, " )") {
		t.Fatalf("StartTime(self) = %q, %v", st, err)
	}
	if _, err := StartTime(1 << 22); err == nil || err.Error() != "no such process" {
		t.Errorf("StartTime of a missing process: %v, want no such process", err)
	}
	if _, ino, _, err := PIDNamespace(); err != nil || ino == 0 {
		t.Errorf("PIDNamespace: ino %d, %v", ino, err)
	}
	if n, err := PIDMax(); err != nil || n < 300 {
		t.Errorf("PIDMax: %d, %v", n, err)
	}
}

// StartTime and CheckTarget agree on what has exited: a zombie leader
// whose other thread runs is alive to both, a zombie to neither.
func TestExitedAgreesWithCheckTarget(t *testing.T) {
	leader := startChild(t, exec.Command(buildProgram(t, "zombieleader.c", "zombieleader")), true)
	zombie := startChild(t, sleepCmd(), false)
	_ = zombie.cmd.Process.Signal(unix.SIGKILL) // not waited for: stays a zombie
	for _, c := range []struct {
		pid   int32
		alive bool
	}{{leader.pid, true}, {zombie.pid, false}} {
		var st string
		var err error
		for i := 0; i < 200; i++ { // SIGKILL is asynchronous
			if st, err = StartTime(int(c.pid)); (err == nil) == c.alive {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		checkErr := CheckTarget("/proc", int(c.pid))
		if (err == nil) != c.alive || (checkErr == nil) != c.alive {
			t.Errorf("pid %d (alive %v): StartTime = %q, %v; CheckTarget = %v", c.pid, c.alive, st, err, checkErr)
		}
	}
}
