package workload

import (
	"bytes"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// StartSleeper runs `sleep 1000` with PATH and env as its whole environment,
// kills it at test cleanup and returns once WaitSettled says it has
// finished exec'ing.
func StartSleeper(t testing.TB, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "1000")
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	WaitSettled(t, cmd.Process.Pid)
	return cmd
}

// WaitSettled waits until pid has finished exec'ing and sleeps, as /proc
// shows it to a scraper: exec.Cmd.Start returns when the close-on-exec pipe
// closes, which the kernel does before it has set up the new program's
// argument area (/proc/PID/cmdline reads empty) and before the per-CPU RSS
// counters of kernel 6.2+ are folded into the total (/proc/PID/stat reads
// RSS 0). Tests that compare what two reads of the same process say would
// otherwise race the exec.
func WaitSettled(t testing.TB, pid int) {
	t.Helper()
	dir := "/proc/" + strconv.Itoa(pid)
	deadline := time.Now().Add(5 * time.Second)
	for {
		stat, err := os.ReadFile(dir + "/stat")
		cmdline, _ := os.ReadFile(dir + "/cmdline")
		if err == nil && len(cmdline) > 0 {
			f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
			if len(f) > 21 && f[0] == "S" && f[21] != "0" {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d did not settle after exec: stat %q cmdline %q: %v", pid, stat, cmdline, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
