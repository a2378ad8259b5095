package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/pdata/pprofile"
	"go.opentelemetry.io/collector/pdata/pprofile/pprofileotlp"
	"google.golang.org/grpc"

	"github.com/contprof/contprof/internal/testhelper/workload"
)

// Soak bounds, stated here and in the closing note of issue 19.
const (
	// soakRSSBound is the collector's peak RSS allowed under the soak load.
	soakRSSBound = 256 << 20
	// soakGoroutineSlack is how far above its idle baseline the goroutine
	// count may stay once the load has stopped.
	soakGoroutineSlack = 10
)

// soakDuration is CONTPROF_SOAK: make soak sets it (CI: 2m). The soak
// needs the machine to itself (500 births/s, RSS and goroutine baselines),
// so it does not run inside make test next to other test packages.
func soakDuration(t *testing.T) time.Duration {
	s := os.Getenv("CONTPROF_SOAK")
	if s == "" {
		t.Skip("the soak test runs with make soak (CONTPROF_SOAK=duration); CI runs it for 2 minutes")
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatalf("CONTPROF_SOAK=%q: %v", s, err)
	}
	return d
}

// flappingSink is an OTLP backend that is down 10 s of every 20 s, on the
// same address throughout.
type flappingSink struct {
	*otlpSink
	stop chan struct{}
	wg   sync.WaitGroup
	ups  atomic.Int32
}

func startFlappingSink(t *testing.T) *flappingSink {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &flappingSink{otlpSink: &otlpSink{addr: lis.Addr().String()}, stop: make(chan struct{})}
	srv := f.serve(lis)
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			select {
			case <-f.stop:
				srv.Stop()
				return
			case <-time.After(10 * time.Second):
			}
			srv.Stop() // down
			select {
			case <-f.stop:
				return
			case <-time.After(10 * time.Second):
			}
			lis, err := net.Listen("tcp", f.addr)
			if err != nil {
				t.Errorf("backend cannot listen again on %s: %v", f.addr, err)
				return
			}
			srv = f.serve(lis)
		}
	}()
	return f
}

// steady keeps the backend up from now on.
func (f *flappingSink) steady(t *testing.T) {
	close(f.stop)
	f.wg.Wait()
	lis, err := net.Listen("tcp", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.serve(lis).Stop)
}

// serve runs the OTLP services on lis until the returned server stops.
func (f *flappingSink) serve(lis net.Listener) *grpc.Server {
	srv := grpc.NewServer()
	pmetricotlp.RegisterGRPCServer(srv, f.otlpSink)
	pprofileotlp.RegisterGRPCServer(srv, &profilesService{s: f.otlpSink})
	plogotlp.RegisterGRPCServer(srv, &logsService{s: f.otlpSink})
	go func() { _ = srv.Serve(lis) }()
	f.ups.Add(1)
	return srv
}

// taskProfiles counts the distinct profiles (task id, start) per task.
func taskProfiles(all []pprofile.Profiles) map[string]int {
	out := map[string]int{}
	for _, tasks := range hostTaskProfiles(all) {
		for id, n := range tasks {
			out[id] += n
		}
	}
	return out
}

func goroutines(t *testing.T, api string) int {
	var st struct {
		Goroutines int `json:"goroutines"`
	}
	getJSON(t, api+"/api/v1/status", http.StatusOK, &st)
	return st.Goroutines
}

// bpfObjects lists the BPF programs, maps and links pid holds, from the
// fdinfo of its descriptors ("prog_id:", "map_id:", "link_id:").
func bpfObjects(t *testing.T, pid int) map[string]bool {
	out := map[string]bool{}
	dir := fmt.Sprintf("/proc/%d/fdinfo", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return out
	}
	for _, e := range ents {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(data), "\n") {
			for _, kind := range []string{"prog", "map", "link"} {
				if v, ok := strings.CutPrefix(l, kind+"_id:"); ok {
					out[kind+" "+strings.TrimSpace(v)] = true
				}
			}
		}
	}
	return out
}

// bpfDescribe is bpftool's one-line description of obj, for messages.
func bpfDescribe(obj string) string {
	kind, id, _ := strings.Cut(obj, " ")
	out, _ := exec.Command("bpftool", kind, "show", "id", id).Output()
	return strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
}

func bpfExists(t *testing.T, obj string) bool {
	kind, id, _ := strings.Cut(obj, " ")
	return exec.Command("bpftool", kind, "show", "id", id).Run() == nil
}

// TestSoak runs the built collector under everything at once: ≥ 500
// process births/s, a backend down 10 s of every 20 s, the policy file
// rewritten every 5 s, 16 API clients without pause, tasks starting and
// ending. Afterwards the goroutines are back at their baseline, the RSS
// stayed under soakRSSBound, every profile a task emitted reached the
// backend, and no BPF program, map or link of the collector is left.
func TestSoak(t *testing.T) {
	requireRoot(t)
	if _, err := exec.LookPath("bpftool"); err != nil {
		t.Fatal("bpftool is needed to check BPF objects")
	}
	dur := soakDuration(t)
	sink := startFlappingSink(t)
	hot := startBusy(t, workload.BuildC(t, "hotcpu.c"), "contprof-soak")
	churnBin := workload.BuildC(t, "churn.c")

	dir := t.TempDir()
	policyFile := filepath.Join(dir, "policies.yaml")
	writePolicies := func(i int) {
		doc := fmt.Sprintf(`policies:
  - name: soak-cpu
    selector: { process.executable.name: contprof-soak }
    target: on_cpu
    duration: 6s
    silence: 1s
    items:
      - { monitor: process_cpu, threshold: %d, period: 3, count: 2 }
`, 1+i%3)
		if err := os.WriteFile(policyFile+".tmp", []byte(doc), 0o600); err != nil {
			t.Error(err)
		}
		if err := os.Rename(policyFile+".tmp", policyFile); err != nil {
			t.Error(err)
		}
	}
	writePolicies(0)
	port := freePort(t)
	api := apiURL(port)
	cfg := writeConfig(t, testConfig{
		APIPort:   port,
		Policy:    "policy_file: " + policyFile,
		Receiver:  "profiling: { report_interval: 2s }",
		Processor: "refused_retry_interval: 1s",
		OTLP:      sink.addr,
		Signals:   []string{"profiles"},
	}.yaml())
	c := startCollector(t, cfg)
	c.waitFor("Everything is ready", time.Minute)
	pid := c.cmd.Process.Pid
	time.Sleep(5 * time.Second)
	baseline := goroutines(t, api)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	every := func(d time.Duration, fn func(i int)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 1; ; i++ {
				select {
				case <-stop:
					return
				case <-time.After(d):
					fn(i)
				}
			}
		}()
	}
	// Four spawners at a raised priority: one alone does not keep 500/s
	// on a busy 2-core host.
	var churn []*workload.Process
	for range 4 {
		w := workload.Start(t, churnBin, "150")
		_ = syscall.Setpriority(syscall.PRIO_PROCESS, w.PID(), -10)
		churn = append(churn, w)
	}
	every(5*time.Second, writePolicies)
	var apiCalls, apiErrors atomic.Int64
	client := &http.Client{Timeout: 10 * time.Second}
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			paths := []string{"/api/v1/tasks", "/api/v1/processes", "/api/v1/policies", "/api/v1/status"}
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := client.Get(api + paths[(g+i)%len(paths)])
				apiCalls.Add(1)
				if err != nil || resp.StatusCode >= 500 {
					apiErrors.Add(1)
				}
				if resp != nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		}()
	}
	var peakRSS atomic.Int64
	var bpf sync.Map
	every(time.Second, func(i int) {
		r := procRSS(pid)
		if r > peakRSS.Load() {
			peakRSS.Store(r)
		}
		if i%15 == 0 {
			t.Logf("%3ds: RSS %d MiB", i, r>>20)
		}
	})
	every(2*time.Second, func(int) {
		for o := range bpfObjects(t, pid) {
			bpf.Store(o, true)
		}
	})
	births0 := procBirths(t)
	start := time.Now()
	time.Sleep(dur)
	births := float64(procBirths(t)-births0) / time.Since(start).Seconds()
	close(stop)
	wg.Wait()
	for _, c := range churn {
		c.Stop()
	}
	sink.steady(t)

	// Let the last tasks end and the exporter's queue drain.
	waitUntil(t, 2*time.Minute, "all tasks ended", func() bool {
		for _, x := range getTasks(t, api) {
			if x.State == "pending" || x.State == "running" {
				return false
			}
		}
		return true
	})
	tasks := getTasks(t, api)
	var emitted int
	want := map[string]int{}
	for _, x := range tasks {
		if x.Profile != nil {
			want[x.ID] = x.Profile.Profiles
			emitted += x.Profile.Profiles
		}
	}
	var got map[string]int
	waitUntil(t, 2*time.Minute, "every emitted profile at the backend", func() bool {
		sink.mu.Lock()
		got = taskProfiles(sink.profiles)
		sink.mu.Unlock()
		for id, n := range want {
			if got[id] < n {
				return false
			}
		}
		return true
	})
	time.Sleep(3 * time.Second)
	final := goroutines(t, api)

	var objs []string
	bpf.Range(func(k, _ any) bool { objs = append(objs, k.(string)); return true })
	if exited, err := c.stop(30 * time.Second); !exited || err != nil {
		t.Fatalf("collector did not stop cleanly: exited %v, %v", exited, err)
	}
	// The kernel drops some references after the process is gone, from a
	// work queue or after an RCU grace period (a program's maps, an array
	// of maps' inner maps): an object still there is looked at again for a
	// few seconds. What a leak keeps alive (a pinned or attached object)
	// stays.
	var left []string
	deadline := time.Now().Add(5 * time.Second)
	for _, o := range objs {
		for bpfExists(t, o) && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		if bpfExists(t, o) {
			left = append(left, o+" ("+bpfDescribe(o)+")")
		}
	}

	t.Logf("soak %v: %.0f process births/s; %d tasks, %d profiles emitted and received; backend up %d times; %d API calls (%d errors); peak RSS %d MiB (bound %d MiB); goroutines %d -> %d; %d BPF objects seen, %d left after exit",
		dur, births, len(tasks), emitted, sink.ups.Load(), apiCalls.Load(), apiErrors.Load(),
		peakRSS.Load()>>20, soakRSSBound>>20, baseline, final, len(objs), len(left))
	if births < 500 {
		t.Errorf("process churn %.0f births/s, want at least 500", births)
	}
	if len(tasks) < 3 || emitted == 0 {
		t.Errorf("only %d tasks and %d profiles: the load did not exercise tasks", len(tasks), emitted)
	}
	if apiErrors.Load() > 0 {
		t.Errorf("%d API errors under load", apiErrors.Load())
	}
	if peakRSS.Load() > soakRSSBound {
		t.Errorf("peak RSS %d MiB over the bound %d MiB", peakRSS.Load()>>20, soakRSSBound>>20)
	}
	if final > baseline+soakGoroutineSlack {
		t.Errorf("goroutines %d after the load, baseline %d: a leak", final, baseline)
	}
	if len(objs) == 0 {
		t.Errorf("no BPF object of the collector was ever seen: did tasks run?")
	}
	if len(left) > 0 {
		t.Errorf("BPF objects left after the collector exited: %v", left)
	}
	_ = hot
}

// procBirths is the kernel's count of forks since boot.
func procBirths(t *testing.T) int64 {
	f, err := os.Open("/proc/stat")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "processes "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	t.Fatal("no processes line in /proc/stat")
	return 0
}
