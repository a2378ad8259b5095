//go:build linux

package jit

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/contprof/contprof/internal/output/profiles"
	"github.com/contprof/contprof/internal/profiler/oncpu"
	"github.com/contprof/contprof/internal/profiler/symbolize"
	"github.com/contprof/contprof/internal/testhelper/workload"
)

// require skips (or, with CONTPROF_REQUIRE_EBPF=1 as in CI, fails) when the
// test cannot run: eBPF needs root, and the workloads need their tools.
func require(t *testing.T, tools ...string) {
	t.Helper()
	fail := func(format string, args ...any) {
		if os.Getenv("CONTPROF_REQUIRE_EBPF") == "1" {
			t.Fatalf("CONTPROF_REQUIRE_EBPF=1 but "+format, args...)
		}
		t.Skipf(format, args...)
	}
	if os.Geteuid() != 0 {
		fail("not root: the on-CPU sampler needs root (or CAP_BPF+CAP_PERFMON)")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			fail("%s is not installed", tool)
		}
	}
}

const (
	sampleFreq = 499
	perfFreq   = 199
)

// measured is one process profiled at the same time by a task (through
// the session, as the receiver does) and by perf record -g.
type measured struct {
	profile *profiles.Profile
	session *Session
	// perf holds, per sample, the symbol names perf script shows, leaf
	// first.
	perf [][]string
}

// measure runs a session and an on-CPU task on pid for d while perf
// records the same process. The session stays open until the test ends
// (perf script needs the JVM's perf map).
func measure(t *testing.T, pid int, d time.Duration) *measured {
	t.Helper()
	sym := symbolize.New(symbolize.Options{})
	jm := NewManager(Options{Symbolizer: sym, RefreshInterval: 2 * time.Second})
	sess := jm.Start(pid)
	t.Cleanup(func() { sess.Close(); jm.Wait() })
	waitSettled(t, sess)

	mgr, err := oncpu.NewManager(oncpu.Options{Frequency: sampleFreq})
	if err != nil {
		t.Fatal(err)
	}
	defer mgr.Close()
	run, err := mgr.StartTask(sym, oncpu.Task{PID: pid, Duration: d, ReportInterval: 2 * time.Second})
	if err != nil {
		t.Fatalf("start task: %v", err)
	}
	out := filepath.Join(t.TempDir(), "perf.data")
	perf := exec.Command("perf", "record", "-q", "-g", "-F", strconv.Itoa(perfFreq), "-p", strconv.Itoa(pid), "-o", out, "--", "sleep", strconv.Itoa(int(d.Seconds())))
	var perfErr bytes.Buffer
	perf.Stderr = &perfErr
	if err := perf.Start(); err != nil {
		t.Fatalf("perf record: %v", err)
	}

	var mu sync.Mutex
	var merged *profiles.Profile
	err = run.Run(context.Background(), func(p *profiles.Profile) {
		sess.Annotate(p)
		mu.Lock()
		defer mu.Unlock()
		if merged == nil {
			merged = p
			return
		}
		merged.Samples = append(merged.Samples, p.Samples...)
		merged.End = p.End
		merged.Attributes = p.Attributes
	})
	if err != nil {
		t.Fatalf("task: %v", err)
	}
	if err := perf.Wait(); err != nil {
		t.Fatalf("perf record: %v\n%s", err, perfErr.String())
	}
	if merged == nil {
		t.Fatal("the task emitted no profile")
	}
	t.Logf("%d samples in %v", merged.Total(), merged.End.Sub(merged.Start).Round(time.Millisecond))
	if merged.Total() < int64(d.Seconds()*sampleFreq/8) {
		t.Fatalf("too few samples: %d", merged.Total())
	}
	return &measured{profile: merged, session: sess, perf: perfScript(t, out)}
}

// waitSettled waits for the session to finish its first step (a JVM's
// first perf map, or the detection of another runtime).
func waitSettled(t *testing.T, s *Session) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		if _, status, _ := s.Status(); status != "" && status != StatusPending {
			return
		}
		select {
		case <-s.done:
			return
		case <-deadline:
			t.Fatal("session did not settle within 30s")
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// perfScript returns the symbol names of every sample perf recorded.
func perfScript(t *testing.T, data string) [][]string {
	t.Helper()
	out, err := exec.Command("perf", "script", "-i", data, "-F", "ip,sym").Output()
	if err != nil {
		t.Fatalf("perf script: %v", err)
	}
	var samples [][]string
	var cur []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			if len(cur) > 0 {
				samples = append(samples, cur)
				cur = nil
			}
			continue
		}
		_, name, _ := strings.Cut(line, " ")
		cur = append(cur, name)
	}
	if len(cur) > 0 {
		samples = append(samples, cur)
	}
	if len(samples) == 0 {
		t.Fatal("perf recorded no samples")
	}
	return samples
}

// share is the fraction of samples with a frame matching re on the stack.
func (m *measured) share(re *regexp.Regexp) float64 {
	var hit int64
	for _, s := range m.profile.Samples {
		for _, f := range s.Frames {
			if re.MatchString(f.Function) {
				hit += s.Value
				break
			}
		}
	}
	return float64(hit) / float64(m.profile.Total())
}

func (m *measured) perfShare(re *regexp.Regexp) float64 {
	hit := 0
	for _, s := range m.perf {
		for _, name := range s {
			if re.MatchString(name) {
				hit++
				break
			}
		}
	}
	return float64(hit) / float64(len(m.perf))
}

// frameType is the type of the first frame matching re.
func (m *measured) frameType(re *regexp.Regexp) profiles.FrameType {
	for _, s := range m.profile.Samples {
		for _, f := range s.Frames {
			if re.MatchString(f.Function) {
				return f.Type
			}
		}
	}
	return ""
}

// checkShares compares the share of each function with the known split
// (when want is set) and with perf record -g on the same process.
func (m *measured) checkShares(t *testing.T, names []string, want []float64, vsPerf bool) {
	t.Helper()
	for i, name := range names {
		re := regexp.MustCompile(name)
		got, perf := m.share(re), m.perfShare(re)
		t.Logf("%-40s contprof %5.1f%%  perf %5.1f%%  (split %.0f%%)", name, 100*got, 100*perf, 100*want[i])
		if want[i] >= 0 && math.Abs(got-want[i]) > 0.05 {
			t.Errorf("%s: %.1f%% of the samples, want %.0f%% ± 5 points", name, 100*got, 100*want[i])
		}
		if vsPerf && math.Abs(got-perf) > 0.05 {
			t.Errorf("%s: %.1f%% of the samples, perf record -g: %.1f%% (want ± 5 points)", name, 100*got, 100*perf)
		}
	}
}

func startJVM(t *testing.T, flags ...string) *workload.Process {
	t.Helper()
	cp := workload.BuildJava(t, "jit/JSplit.java")
	args := append(append([]string{}, flags...), "-cp", cp, "JSplit")
	w := workload.StartCmd(t, exec.Command("java", args...))
	t.Cleanup(func() {
		// The listener's socket outlives an attach; the JVM is gone now.
		os.Remove(fmt.Sprintf("/tmp/.java_pid%d", w.PID()))
	})
	_ = syscall.Setpriority(syscall.PRIO_PROCESS, w.PID(), -10)
	return w
}

var javaMethods = []string{`^void JSplit\.javaAlpha\(long\)$`, `^void JSplit\.javaBeta\(long\)$`, `^void JSplit\.javaGamma\(long\)$`}

func TestHotSpotPreserveFramePointer(t *testing.T) {
	require(t, "java", "javac", "perf")
	jvm := startJVM(t, "-XX:+PreserveFramePointer")
	m := measure(t, jvm.PID(), 8*time.Second)
	m.checkShares(t, javaMethods, []float64{0.6, 0.3, 0.1}, true)
	m.checkShares(t, []string{`^long JSplit\.spin\(long\)$`}, []float64{1}, true)
	// main runs in the interpreter: perf sees the Interpreter blob, the
	// unwinder the method the interpreter frame runs.
	m.checkShares(t, []string{`^void JSplit\.main\(java\.lang\.String\[\]\)$`, `^Interpreter$`}, []float64{1, 0}, false)
	if ft := m.frameType(regexp.MustCompile(javaMethods[0])); ft != profiles.FrameJVM {
		t.Errorf("frame type of javaAlpha: %q, want jvm", ft)
	}
	rt, status, note := m.session.Status()
	if rt != RuntimeHotSpot || status != StatusOK || strings.Contains(note, "without -XX:+PreserveFramePointer") {
		t.Errorf("session: %s %s %q", rt, status, note)
	}
	if m.profile.Attributes[AttrStatus] != StatusOK || m.profile.Attributes[AttrRuntime] != RuntimeHotSpot {
		t.Errorf("profile attributes: %v", m.profile.Attributes)
	}
}

// Without -XX:+PreserveFramePointer compiled Java code uses rbp as a
// general register: a frame-pointer walk (perf record -g) names the leaf
// (spin) and stops there. The on-CPU unwinder goes on through compiled
// frames with the frame sizes the JVM publishes, and reaches the callers.
func TestHotSpotWithoutFlags(t *testing.T) {
	require(t, "java", "javac", "perf")
	jvm := startJVM(t)
	m := measure(t, jvm.PID(), 8*time.Second)
	m.checkShares(t, []string{`^long JSplit\.spin\(long\)$`}, []float64{1}, true)
	m.checkShares(t, javaMethods, []float64{0.6, 0.3, 0.1}, false)
	m.checkShares(t, []string{`^void JSplit\.main\(java\.lang\.String\[\]\)$`}, []float64{1}, false)
	rt, status, note := m.session.Status()
	if rt != RuntimeHotSpot || status != StatusOK || !strings.Contains(note, "without -XX:+PreserveFramePointer") {
		t.Errorf("session: %s %s %q", rt, status, note)
	}
	if note, _ := m.profile.Attributes[AttrNote].(string); !strings.Contains(note, "frame sizes HotSpot publishes") {
		t.Errorf("profile note %q", note)
	}
}

// A JVM that refuses attach keeps its native frames and says why its Java
// frames have no names. (With frame pointers preserved, so that the walk
// reaches the native frames below the Java ones.)
func TestHotSpotAttachDisabled(t *testing.T) {
	require(t, "java", "javac", "perf")
	jvm := startJVM(t, "-XX:+DisableAttachMechanism", "-XX:+PreserveFramePointer")
	m := measure(t, jvm.PID(), 8*time.Second)
	rt, status, note := m.session.Status()
	if rt != RuntimeHotSpot || status != StatusAttachDisabled || !strings.Contains(note, "-XX:+DisableAttachMechanism") {
		t.Errorf("session: %s %s %q", rt, status, note)
	}
	if m.profile.Attributes[AttrStatus] != StatusAttachDisabled {
		t.Errorf("profile attributes: %v", m.profile.Attributes)
	}
	m.checkShares(t, []string{`^JavaCalls::call_helper`, `^jni_invoke_static`}, []float64{1, 1}, true)
	m.checkShares(t, []string{`JSplit`}, []float64{0}, false)
	for _, name := range []string{".java_pid", ".attach_pid"} {
		if _, err := os.Stat(fmt.Sprintf("/tmp/%s%d", name, jvm.PID())); !os.IsNotExist(err) {
			t.Errorf("%s%d exists: %v", name, jvm.PID(), err)
		}
	}
}

// Node's interpreted callers of an optimized function are named (through
// --interpreted-frames-native-stack) as perf names them.
func TestNodeInterpretedCallers(t *testing.T) {
	require(t, "node", "perf")
	script := filepath.Join(workload.Dir(t), "jit", "split.js")
	cmd := exec.Command(mustLookPath(t, "node"), "--perf-basic-prof", "--interpreted-frames-native-stack", script)
	cmd.Dir = t.TempDir() // V8 may leave an isolate log in its directory
	w := workload.StartCmd(t, cmd)
	_ = syscall.Setpriority(syscall.PRIO_PROCESS, w.PID(), -10)
	t.Cleanup(func() { os.Remove(fmt.Sprintf("/tmp/perf-%d.map", w.PID())) })
	m := measure(t, w.PID(), 8*time.Second)
	callers := []string{`^JS:[~^+*]?js_alpha .*split\.js`, `^JS:[~^+*]?js_beta .*split\.js`, `^JS:[~^+*]?js_gamma .*split\.js`}
	m.checkShares(t, callers, []float64{0.6, 0.3, 0.1}, true)
	m.checkShares(t, []string{`^JS:[~^+*]?spin .*split\.js`}, []float64{1}, true)
	if ft := m.frameType(regexp.MustCompile(callers[0])); ft != profiles.FrameV8JS {
		t.Errorf("frame type of js_alpha: %q, want v8js", ft)
	}
	if rt, status, _ := m.session.Status(); rt != RuntimeV8 || status != StatusOK {
		t.Errorf("session: %s %s", rt, status)
	}
}

// Any runtime that writes /tmp/perf-PID.map goes through the same path:
// here one whose JIT code lives in a memfd mapping (as .NET's does).
func TestOwnPerfMapRuntime(t *testing.T) {
	require(t, "gcc", "perf")
	bin := workload.BuildC(t, "jit/jitmap.c")
	w := workload.Start(t, bin)
	_ = syscall.Setpriority(syscall.PRIO_PROCESS, w.PID(), -10)
	t.Cleanup(func() { os.Remove(fmt.Sprintf("/tmp/perf-%d.map", w.PID())) })
	m := measure(t, w.PID(), 5*time.Second)
	m.checkShares(t, []string{`^jit_hot$`, `^jit_cold$`, `^run_hot$`, `^run_cold$`, `^main$`}, []float64{0.75, 0.25, 0.75, 0.25, 1}, false)
	if rt, status, _ := m.session.Status(); rt != RuntimePerfMap || status != StatusOK {
		t.Errorf("session: %s %s", rt, status)
	}
}

func mustLookPath(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
