// Package workload builds and runs the test workloads of
// testdata/workloads for tests that profile real processes.
package workload

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Dir is the absolute path of testdata/workloads.
func Dir(t testing.TB) string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("workload: cannot locate source directory")
	}
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "testdata", "workloads")
}

// BuildC compiles testdata/workloads/<name> with gcc -O2
// -fno-omit-frame-pointer plus extra flags, into a temporary directory.
func BuildC(t testing.TB, name string, extra ...string) string {
	t.Helper()
	src := filepath.Join(Dir(t), name)
	out := filepath.Join(t.TempDir(), strings.TrimSuffix(filepath.Base(name), filepath.Ext(name)))
	args := append([]string{"-O2", "-fno-omit-frame-pointer"}, extra...)
	args = append(args, "-o", out, src)
	run(t, exec.Command(compiler(name), args...))
	return out
}

func compiler(name string) string {
	if strings.HasSuffix(name, ".cc") || strings.HasSuffix(name, ".cpp") {
		return "g++"
	}
	return "gcc"
}

// BuildJava compiles testdata/workloads/<name> (a .java file) with javac
// into a world-readable temporary directory (so that a JVM run as another
// user can load it) and returns that directory, the class path.
func BuildJava(t testing.TB, name string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "contprof-java-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, exec.Command("javac", "-d", dir, filepath.Join(Dir(t), name)))
	return dir
}

// BuildGo builds the Go program in testdata/workloads/<dir> with extra go
// build flags (e.g. "-ldflags=-s -w") into a temporary directory.
func BuildGo(t testing.TB, dir string, extra ...string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), filepath.Base(dir))
	args := append([]string{"build", "-o", out}, extra...)
	args = append(args, ".")
	cmd := exec.Command(goTool(), args...)
	cmd.Dir = filepath.Join(Dir(t), dir)
	run(t, cmd)
	return out
}

func goTool() string {
	if p := filepath.Join(runtime.GOROOT(), "bin", "go"); fileExists(p) {
		return p
	}
	return "go"
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func run(t testing.TB, cmd *exec.Cmd) {
	t.Helper()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
	}
}

// Process is a running workload.
type Process struct {
	Cmd *exec.Cmd
	// Addrs are the "name=0xADDR" pairs the workload printed first.
	Addrs map[string]uint64

	once    sync.Once
	waitErr error
}

// PID of the process.
func (p *Process) PID() int { return p.Cmd.Process.Pid }

// Start runs bin with args and reads the address line it prints first. The
// process is killed at test cleanup.
func Start(t testing.TB, bin string, args ...string) *Process {
	t.Helper()
	return StartCmd(t, exec.Command(bin, args...))
}

// StartCmd is Start for a prepared command (credentials, environment).
func StartCmd(t testing.TB, cmd *exec.Cmd) *Process {
	t.Helper()
	bin := cmd.Path
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	p := &Process{Cmd: cmd, Addrs: map[string]uint64{}}
	t.Cleanup(func() { p.Stop() })

	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			line <- sc.Text()
		}
		close(line)
		for sc.Scan() { // drain so the workload never blocks on stdout
		}
	}()
	select {
	case l, ok := <-line:
		if !ok {
			t.Fatalf("%s printed nothing", bin)
		}
		for _, f := range strings.Fields(l) {
			name, val, ok := strings.Cut(f, "=")
			if !ok {
				continue
			}
			if a, err := strconv.ParseUint(strings.TrimPrefix(val, "0x"), 16, 64); err == nil {
				p.Addrs[name] = a
			}
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("%s printed no address line within 10s", bin)
	}
	return p
}

// Stop kills the process (if still running) and reaps it.
func (p *Process) Stop() {
	_ = p.Cmd.Process.Kill() // fails harmlessly once reaped
	_ = p.Wait()
}

// Wait waits for the process to exit; it may be called from several
// goroutines and more than once.
func (p *Process) Wait() error {
	p.once.Do(func() { p.waitErr = p.Cmd.Wait() })
	return p.waitErr
}

// String describes the process for messages.
func (p *Process) String() string {
	return fmt.Sprintf("%s (pid %d)", filepath.Base(p.Cmd.Path), p.PID())
}

// DebianPython is Debian's (stripped) CPython 3.11, the interpreter the
// Python profiling tests run.
const DebianPython = "/usr/bin/python3.11"

// RequirePython skips the test without DebianPython, or fails it when
// CONTPROF_REQUIRE_EBPF=1 (CI installs python3).
func RequirePython(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(DebianPython); err != nil {
		if os.Getenv("CONTPROF_REQUIRE_EBPF") == "1" {
			t.Fatalf("%s is needed (apt-get install python3.11): %v", DebianPython, err)
		}
		t.Skipf("%s not installed", DebianPython)
	}
}
