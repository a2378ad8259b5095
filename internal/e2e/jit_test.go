package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/contprof/contprof/internal/testhelper/workload"
)

// A policy selects one of two busy JVMs: only that one is attached to, and
// its Java methods are named in the task's profile, which says so
// (contprof.jit.*); the JVM that is merely monitored gets no attach file,
// no attach socket and no perf map.
func TestJVMAttachOnlyForTask(t *testing.T) {
	requireRoot(t)
	if _, err := exec.LookPath("javac"); err != nil {
		if os.Getenv("CONTPROF_REQUIRE_EBPF") == "1" {
			t.Fatal("CONTPROF_REQUIRE_EBPF=1 but javac is missing (openjdk-17-jdk-headless)")
		}
		t.Skip("javac not installed")
	}
	cp := workload.BuildJava(t, "jit/JSplit.java")
	startJVM := func(role string, flags ...string) *workload.Process {
		args := append(append([]string{}, flags...), "-cp", cp, "JSplit", role)
		w := workload.StartCmd(t, exec.Command("java", args...))
		_ = syscall.Setpriority(syscall.PRIO_PROCESS, w.PID(), -10)
		t.Cleanup(func() {
			for _, f := range []string{".java_pid%d", ".attach_pid%d", "perf-%d.map"} {
				os.Remove(fmt.Sprintf("/tmp/"+f, w.PID()))
			}
		})
		return w
	}
	selected := startJVM("selected", "-XX:+PreserveFramePointer")
	monitored := startJVM("monitored")

	port := freePort(t)
	api := apiURL(port)
	// A low threshold: on a loaded test machine a spinning JVM may get
	// only a few percent of the CPUs.
	cfg := testConfig{
		Policies: `
- name: jvm-cpu
  selector: { process.command_line: { regex: "JSplit selected$" } }
  target: on_cpu
  duration: 10s
  items:
    - { monitor: process_cpu, threshold: 3, period: 5, count: 3 }`,
		APIPort:  port,
		Receiver: "include: { executables: [java] }\nprofiling: { report_interval: 3s }",
		Signals:  []string{"profiles"},
	}.yaml()
	c := startCollector(t, writeConfig(t, cfg))
	c.waitFor("Everything is ready", time.Minute)

	task := waitTask(t, api, 120*time.Second, func(x apiTask) bool {
		return len(x.Processes) == 1 && x.Processes[0].PID == selected.PID() && !x.Started.IsZero()
	})
	waitTask(t, api, 60*time.Second, func(x apiTask) bool { return x.ID == task.ID && x.State == "finished" })
	raw := downloadProfile(t, api, task.ID)
	top := pprofTop(t, raw)
	for _, want := range []string{"void JSplit.javaAlpha(long)", "long JSplit.spin(long)", "contprof.jit.runtime=hotspot", "contprof.jit.status=ok"} {
		if !strings.Contains(top, want) {
			t.Errorf("go tool pprof -top lacks %q", want)
		}
	}
	if !strings.Contains(c.output.String(), "JVM perf map written through the attach mechanism") {
		t.Error("the collector did not log the attach")
	}
	if _, err := os.Stat(fmt.Sprintf("/tmp/.java_pid%d", selected.PID())); err != nil {
		t.Errorf("the task's JVM has no attach socket: %v", err)
	}
	// The monitored JVM was left alone.
	for _, f := range []string{".java_pid%d", ".attach_pid%d", "perf-%d.map"} {
		p := fmt.Sprintf("/tmp/"+f, monitored.PID())
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s of the monitored JVM exists (%v)", p, err)
		}
	}
	for _, x := range getTasks(t, api) {
		for _, p := range x.Processes {
			if p.PID == monitored.PID() {
				t.Errorf("task %s profiles the monitored JVM", x.ID)
			}
		}
	}
}
