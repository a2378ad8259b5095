package procfs

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"golang.org/x/sys/unix"
)

// The test binary doubles as the helper programs the tests watch: with
// helperEnv set it runs the named helper instead of the tests.
const helperEnv = "CONTPROF_PROCFS_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "":
	case "busy":
		busyHelper()
		return
	case "sleep":
		time.Sleep(time.Hour)
		return
	case "scan-as-user":
		scanAsUserHelper()
		return
	case "thread-churn":
		threadChurnHelper()
		return
	default:
		fmt.Fprintln(os.Stderr, "unknown helper", os.Getenv(helperEnv))
		os.Exit(2)
	}
	// Every test runs once per source: /proc, then the BPF task iterator
	// (benchmarks choose their sources themselves and run once).
	testSource = SourceProc
	code := m.Run()
	if code == 0 {
		code = runWithIterator(m)
	}
	stopBenchChildren()
	os.Exit(code)
}

// testSource is the Source newScanner gives scanners whose Config leaves
// it unset.
var testSource Source

// runWithIterator runs the tests again with the BPF task iterator. Without
// root (or where the iterator does not load) that pass is skipped, unless
// CONTPROF_REQUIRE_EBPF=1 makes it a failure.
func runWithIterator(m *testing.M) int {
	required := os.Getenv("CONTPROF_REQUIRE_EBPF") == "1"
	why := ""
	if os.Geteuid() != 0 {
		why = "not root"
	} else if s, err := New(Config{Source: SourceBPF}); err != nil {
		why = err.Error()
	} else {
		s.Close()
	}
	if why != "" {
		fmt.Fprintf(os.Stderr, "procfs: not running the tests with the BPF task iterator: %s\n", why)
		if required {
			fmt.Fprintln(os.Stderr, "CONTPROF_REQUIRE_EBPF=1: failing")
			return 1
		}
		return 0
	}
	fmt.Fprintln(os.Stderr, "procfs: running the tests again with the BPF task iterator")
	testSource = SourceBPF
	flag.Set("test.bench", "")
	return m.Run()
}

// busyHelper burns half of one core: it spins while its CPU time is below
// half of the elapsed wall time and sleeps otherwise. Regulating on CPU
// time rather than on a fixed spin/sleep schedule keeps the duty cycle at
// 50% even when other work on the machine delays it; a debt of more than
// 100 ms is forgiven so a long stall does not turn into a burst above 50%.
// With CONTPROF_PIN=1 it first pins all its threads to one CPU.
//
// Its threads run at nice -20 (when allowed) and it sleeps with a raw
// nanosleep, woken by the kernel rather than by a Go timer on another
// thread, so that other work on a shared machine cannot starve it below
// its 50%: the test is about how the scanner measures a known load, not
// about the machine's spare capacity.
func busyHelper() {
	runtime.LockOSThread()
	forEachThread(func(tid int) { unix.Setpriority(unix.PRIO_PROCESS, tid, -20) })
	// With autogroup scheduling, nice only ranks threads within a session;
	// the helper runs in its own session (see helper), whose group gets the
	// same boost.
	os.WriteFile("/proc/self/autogroup", []byte("-20"), 0)
	if os.Getenv("CONTPROF_PIN") == "1" {
		pinSelf()
	}
	fmt.Println("ready")
	cpu := func() time.Duration {
		var ts unix.Timespec
		unix.ClockGettime(unix.CLOCK_PROCESS_CPUTIME_ID, &ts)
		return time.Duration(ts.Nano())
	}
	start, c0 := time.Now(), cpu()
	for {
		el := time.Since(start)
		used := cpu() - c0
		switch {
		case used < el/2-100*time.Millisecond:
			start, c0 = time.Now(), cpu()
		case used < el/2:
			for t := time.Now(); time.Since(t) < time.Millisecond; {
			}
		default:
			unix.Nanosleep(&unix.Timespec{Nsec: int64(time.Millisecond)}, nil)
		}
	}
}

// pinSelf sets the affinity of every thread of this process to the first
// CPU it may use; threads created later inherit it.
func pinSelf() {
	var cur, one unix.CPUSet
	unix.SchedGetaffinity(0, &cur)
	for i := 0; i < 1024; i++ {
		if cur.IsSet(i) {
			one.Set(i)
			break
		}
	}
	forEachThread(func(tid int) { unix.SchedSetaffinity(tid, &one) })
}

// forEachThread applies fn to every thread of this process, three times
// over to catch threads the runtime starts meanwhile (they inherit the
// setting from their creator afterwards).
func forEachThread(fn func(tid int)) {
	for range 3 {
		ents, _ := os.ReadDir("/proc/self/task")
		for _, e := range ents {
			if tid, err := strconv.Atoi(e.Name()); err == nil {
				fn(tid)
			}
		}
	}
}

// scanAsUserHelper runs as an unprivileged user: it scans three times and
// prints, per PID, how many log entries named it.
func scanAsUserHelper() {
	core, logs := observer.New(zapcore.DebugLevel)
	s, err := New(Config{Logger: zap.New(core)})
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	defer s.Close()
	for range 3 {
		if _, err := s.Scan(time.Now()); err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		time.Sleep(20 * time.Millisecond)
	}
	perPID := map[int32]int{}
	warns := 0
	var warnText []string
	for _, e := range logs.All() {
		if e.Level == zapcore.WarnLevel {
			warns++
			warnText = append(warnText, e.Message)
		}
		if pid, ok := e.ContextMap()["pid"]; ok {
			perPID[int32(pid.(int32))]++
		}
	}
	json.NewEncoder(os.Stdout).Encode(map[string]any{"per_pid": perPID, "warns": warns, "warn_text": warnText, "uid": os.Getuid()})
}

// child is a started helper process.
type child struct {
	cmd *exec.Cmd
	pid int32
}

func (c *child) stop() {
	if c.cmd.ProcessState == nil {
		c.cmd.Process.Kill()
		c.cmd.Wait()
	}
}

// startChild starts cmd, waits for "ready" on stdout when wantReady, and
// registers its cleanup.
func startChild(t testing.TB, cmd *exec.Cmd, wantReady bool) *child {
	t.Helper()
	var out *bufio.Reader
	if wantReady {
		p, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		out = bufio.NewReader(p)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, pid: int32(cmd.Process.Pid)}
	t.Cleanup(c.stop)
	// Start returns once execve has passed the point of no return, before
	// the kernel has written the new argv; wait for it so that tests see
	// the finished process (the scanner retries such processes itself).
	for i := 0; i < 200; i++ {
		if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", c.pid)); len(b) > 0 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if wantReady {
		line, err := out.ReadString('\n')
		if err != nil || strings.TrimSpace(line) != "ready" {
			t.Fatalf("child %v: %q %v", cmd.Args, line, err)
		}
	}
	return c
}

// helper returns a command running this test binary as the named helper,
// in a session of its own.
func helper(name string, extraEnv ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), helperEnv+"="+name), extraEnv...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	return cmd
}

func sleepCmd(extraEnv ...string) *exec.Cmd {
	cmd := exec.Command("sleep", "1000")
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, extraEnv...)
	return cmd
}

func newScanner(t testing.TB, cfg Config) *Scanner {
	t.Helper()
	if cfg.Source == SourceAuto {
		cfg.Source = testSource
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func scan(t testing.TB, s *Scanner) Snapshot {
	t.Helper()
	snap, err := s.Scan(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

// find returns a copy of pid's sample (the next Scan reuses the slice).
func find(snap Snapshot, pid int32) *Sample {
	for i := range snap.Samples {
		if snap.Samples[i].Info.PID == pid {
			smp := snap.Samples[i]
			return &smp
		}
	}
	return nil
}

// buildThreadsProgram compiles testdata/threads.c.
func buildThreadsProgram(t *testing.T) string {
	return buildProgram(t, "threads.c", "threads17")
}

// buildProgram compiles testdata/src into a program called name.
func buildProgram(t *testing.T, src, name string) string {
	t.Helper()
	cc, err := exec.LookPath("cc")
	if err != nil {
		t.Skip("no C compiler (cc) to build testdata/" + src)
	}
	out := filepath.Join(t.TempDir(), name)
	if b, err := exec.Command(cc, "-O1", "-pthread", "-o", out, "testdata/"+src).CombinedOutput(); err != nil {
		t.Fatalf("cc: %v\n%s", err, b)
	}
	return out
}

// threadChurnHelper burns CPU on threads that keep exiting: each burst
// runs on a goroutine locked to its thread that returns without
// unlocking, which makes the Go runtime end the thread. The CPU time of
// the process moves from live threads to the process's total of exited
// threads all the time.
func threadChurnHelper() {
	fmt.Println("ready")
	for {
		done := make(chan struct{})
		for range 2 {
			go func() {
				runtime.LockOSThread()
				for end := time.Now().Add(2 * time.Millisecond); time.Now().Before(end); {
				}
				done <- struct{}{}
			}()
		}
		<-done
		<-done
		time.Sleep(time.Millisecond)
	}
}

// runAs runs cmd with the given uid/gid.
func runAs(cmd *exec.Cmd, uid, gid uint32) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid}}
}
