//go:build linux

package hotspot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/contprof/contprof/internal/testhelper/workload"
)

// requireJava skips (or in CI fails) when there is no JDK to run JVMs.
func requireJava(t testing.TB) {
	t.Helper()
	for _, tool := range []string{"java", "javac"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CONTPROF_REQUIRE_EBPF") == "1" {
				t.Fatalf("CONTPROF_REQUIRE_EBPF=1 but %s is missing (install openjdk-17-jdk-headless)", tool)
			}
			t.Skipf("%s not installed", tool)
		}
	}
	if os.Geteuid() != 0 {
		if os.Getenv("CONTPROF_REQUIRE_EBPF") == "1" {
			t.Fatal("CONTPROF_REQUIRE_EBPF=1 but not running as root")
		}
		t.Skip("attaching to JVMs of other users needs root")
	}
}

// startJVM runs the JSplit workload with extra JVM flags; cred, if set,
// runs it as another user.
func startJVM(t testing.TB, cred *syscall.Credential, flags ...string) *workload.Process {
	t.Helper()
	return startJava(t, "JSplit", cred, flags)
}

// startJava runs the workload class main of testdata/workloads/jit/main.java.
func startJava(t testing.TB, main string, cred *syscall.Credential, flags []string, args ...string) *workload.Process {
	t.Helper()
	cp := workload.BuildJava(t, "jit/"+main+".java")
	cmdline := append(append(append([]string{}, flags...), "-cp", cp, main), args...)
	cmd := exec.Command("java", cmdline...)
	cmd.Dir = cp
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	return workload.StartCmd(t, cmd)
}

// findJVM describes a started JVM; its perf map and attach socket are
// removed at cleanup.
func findJVM(t testing.TB, jvm *workload.Process) *Target {
	t.Helper()
	tg, err := Find(Options{}, jvm.PID())
	if err != nil {
		t.Fatalf("Find: %v", err)
	}
	cleanupJVMFiles(t, tg)
	return tg
}

func cleanupJVMFiles(t testing.TB, tg *Target) {
	t.Cleanup(func() {
		os.Remove("/tmp/" + tg.PerfMapName())
		os.Remove("/tmp/" + tg.SocketName())
	})
}

func TestDumpPerfMap(t *testing.T) {
	requireJava(t)
	for _, c := range []struct {
		name string
		cred *syscall.Credential
	}{
		{"root", nil},
		// The JVM accepts only its own uid/gid (or root) on its socket and
		// as the attach file's owner.
		{"nobody", &syscall.Credential{Uid: 65534, Gid: 65534}},
	} {
		t.Run(c.name, func(t *testing.T) {
			jvm := startJVM(t, c.cred)
			tg := findJVM(t, jvm)
			if tg.NSPID != jvm.PID() || !strings.HasSuffix(tg.LibJVM, "/libjvm.so") {
				t.Errorf("target %+v", tg)
			}
			if c.cred != nil && (tg.UID != 65534 || tg.GID != 65534) {
				t.Errorf("uid/gid %d/%d, want 65534/65534", tg.UID, tg.GID)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			start := time.Now()
			if err := DumpPerfMap(ctx, Options{}, tg); err != nil {
				t.Fatalf("DumpPerfMap: %v", err)
			}
			t.Logf("attach + Compiler.perfmap took %v", time.Since(start))
			b, err := os.ReadFile(tg.TmpPath(tg.PerfMapName()))
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{" long JSplit.spin(long)\n", " void JSplit.javaAlpha(long)\n", " Interpreter\n"} {
				if !strings.Contains(string(b), want) {
					t.Errorf("perf map lacks %q", want)
				}
			}
			// The attach file is gone; the listener stays for the next time.
			if _, err := os.Stat(fmt.Sprintf("/tmp/.attach_pid%d", tg.NSPID)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("attach file left behind: %v", err)
			}
			if err := DumpPerfMap(ctx, Options{}, tg); err != nil {
				t.Fatalf("second DumpPerfMap: %v", err)
			}
		})
	}
}

func TestUnknownCommandIsTooOld(t *testing.T) {
	requireJava(t)
	tg := findJVM(t, startJVM(t, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// What a JDK 11 answers to Compiler.perfmap.
	res, err := Jcmd(ctx, Options{}, tg, "Compiler.noSuchCommand")
	if err != nil {
		t.Fatal(err)
	}
	err = checkResult(res, "Compiler.noSuchCommand")
	if !errors.Is(err, ErrTooOld) || !strings.Contains(err.Error(), "Unknown diagnostic command") {
		t.Errorf("answer %+v gave %v, want ErrTooOld", res, err)
	}
}

func TestAttachDisabled(t *testing.T) {
	requireJava(t)
	jvm := startJVM(t, nil, "-XX:+DisableAttachMechanism")
	tg := findJVM(t, jvm)
	err := DumpPerfMap(context.Background(), Options{}, tg)
	if !errors.Is(err, ErrAttachDisabled) {
		t.Fatalf("DumpPerfMap: %v, want ErrAttachDisabled", err)
	}
	for _, name := range []string{tg.SocketName(), fmt.Sprintf(".attach_pid%d", tg.NSPID)} {
		if _, err := os.Stat(tg.TmpPath(name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s exists: %v", name, err)
		}
	}
}

// A JVM whose flag we cannot see (here it comes from a JDK_JAVA_OPTIONS
// the launcher read, then the JVM's environment was not the source):
// SIGQUIT starts no listener, and the wait ends with ErrNoListener.
func TestNoListener(t *testing.T) {
	requireJava(t)
	cp := workload.BuildJava(t, "jit/JSplit.java")
	// An @argfile hides the flag from /proc/PID/cmdline and environ.
	argfile := cp + "/args"
	if err := os.WriteFile(argfile, []byte("-XX:+DisableAttachMechanism\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	jvm := workload.StartCmd(t, exec.Command("java", "@"+argfile, "-cp", cp, "JSplit"))
	tg := findJVM(t, jvm)
	err := DumpPerfMap(context.Background(), Options{ListenerTimeout: 2 * time.Second}, tg)
	if !errors.Is(err, ErrNoListener) {
		t.Fatalf("DumpPerfMap: %v, want ErrNoListener", err)
	}
	if _, err := os.Stat(fmt.Sprintf("/tmp/.attach_pid%d", tg.NSPID)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("attach file left behind: %v", err)
	}
}

func TestFindNotJVM(t *testing.T) {
	if _, err := Find(Options{}, os.Getpid()); !errors.Is(err, ErrNotJVM) {
		t.Errorf("Find(self): %v, want ErrNotJVM", err)
	}
	if _, err := Find(Options{}, 1<<22); err == nil || errors.Is(err, ErrNotJVM) {
		t.Errorf("Find(missing pid): %v", err)
	}
}

func TestParseAnswer(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Result
		err  string
	}{
		{"0\n", Result{Code: 0, Output: ""}, ""},
		{"0\nsome output\nmore\n", Result{Code: 0, Output: "some output\nmore\n"}, ""},
		{"-1\njava.lang.IllegalArgumentException: Unknown diagnostic command\n", Result{Code: -1, Output: "java.lang.IllegalArgumentException: Unknown diagnostic command\n"}, ""},
		{"x\n", Result{}, `attach answer: bad result code "x"`},
	} {
		got, err := parseAnswer([]byte(c.in))
		if c.err != "" {
			if err == nil || err.Error() != c.err {
				t.Errorf("parseAnswer(%q): %v, want %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("parseAnswer(%q) = %+v, %v", c.in, got, err)
		}
	}
}

// javaMethod matches a perf-map name of a compiled Java method: a return
// type, then Class.method(arguments).
var javaMethod = regexp.MustCompile(`^\S+ \S+\.[^.\s(]+\(`)

func TestCompiledFrames(t *testing.T) {
	requireJava(t)
	tg := findJVM(t, startJVM(t, nil))
	vms, err := ReadVMStructs(tg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d VM struct fields; CodeBlob::_frame_size at %d", len(vms), vms["CodeBlob::_frame_size"])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := DumpPerfMap(ctx, Options{}, tg); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(tg.TmpPath(tg.PerfMapName()))
	if err != nil {
		t.Fatal(err)
	}
	var code []CompiledFrame
	spin := map[uint64]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.SplitN(line, " ", 3)
		// Java methods only ("void JSplit.javaAlpha(long)"): stubs such as
		// "StubRoutines (1)" have no frame of their own, and with ~12
		// compiled methods two of them would decide the 90 % below.
		if len(f) < 3 || !javaMethod.MatchString(f[2]) {
			continue
		}
		a, _ := strconv.ParseUint(strings.TrimPrefix(f[0], "0x"), 16, 64)
		n, _ := strconv.ParseUint(strings.TrimPrefix(f[1], "0x"), 16, 64)
		code = append(code, CompiledFrame{Start: a, End: a + n})
		if strings.Contains(f[2], "JSplit.spin") {
			spin[a] = true
		}
	}
	frames, err := CompiledFrames(tg, vms, code)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("frame sizes of %d of %d compiled methods", len(frames), len(code))
	if len(frames) < len(code)*9/10 {
		t.Errorf("found %d of %d", len(frames), len(code))
	}
	nspin := 0
	for _, f := range frames {
		if spin[f.Start] {
			t.Logf("spin: %#x-%#x frame %d bytes", f.Start, f.End, f.Size)
			nspin++
		}
		if f.Size < 16 || f.Size > 4096 || f.Size%8 != 0 {
			t.Errorf("implausible frame size %d at %#x", f.Size, f.Start)
		}
	}
	if nspin == 0 {
		t.Error("no frame size for JSplit.spin")
	}
}

func TestJavaName(t *testing.T) {
	for _, c := range []struct{ class, name, sig, want string }{
		{"JSplit", "javaAlpha", "(J)V", "void JSplit.javaAlpha(long)"},
		{"JSplit", "main", "([Ljava/lang/String;)V", "void JSplit.main(java.lang.String[])"},
		{"a.B", "f", "(IZ[[DLjava/util/Map;)Ljava/lang/Object;", "java.lang.Object a.B.f(int, boolean, double[][], java.util.Map)"},
	} {
		got, err := javaName(c.class, c.name, c.sig)
		if err != nil || got != c.want {
			t.Errorf("javaName(%q, %q, %q) = %q, %v; want %q", c.class, c.name, c.sig, got, err, c.want)
		}
	}
	for _, sig := range []string{"J)V", "(Q)V", "(Ljava/lang/String)V", "(J)"} {
		if got, err := javaName("C", "m", sig); err == nil {
			t.Errorf("javaName(%q) = %q, want an error", sig, got)
		}
	}
}

// A JVM in its own PID namespace (as in a container) is pid 1 there: its
// attach files, socket and perf map carry that number.
func TestPIDNamespace(t *testing.T) {
	requireJava(t)
	cp := workload.BuildJava(t, "jit/JSplit.java")
	outer := workload.StartCmd(t, exec.Command("unshare", "--pid", "--fork", "--kill-child", "java", "-cp", cp, "JSplit"))
	children, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", outer.PID(), outer.PID()))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(children)))
	if err != nil {
		t.Fatalf("children of unshare: %q", children)
	}
	tg, err := Find(Options{}, pid)
	if err != nil {
		t.Fatal(err)
	}
	cleanupJVMFiles(t, tg)
	if tg.NSPID != 1 || tg.PID != pid {
		t.Fatalf("target %+v: want NSPID 1", tg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := DumpPerfMap(ctx, Options{}, tg); err != nil {
		t.Fatalf("DumpPerfMap: %v", err)
	}
	b, err := os.ReadFile(tg.TmpPath("perf-1.map"))
	if err != nil || !strings.Contains(string(b), "JSplit.spin") {
		t.Fatalf("perf-1.map: %v", err)
	}
}
