// Package agent runs the distribution the way the Helm chart's DaemonSet
// does, on this machine: the chart's rendered collector configuration, the
// node name in K8S_NODE_NAME, the policies as a ConfigMap-style mounted
// file, and exactly the DaemonSet's capabilities — as a non-root user
// (stricter than the DaemonSet's uid 0 without other capabilities: root's
// file ownership helps nothing here).
package agent

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/pdata/pprofile"
	"go.opentelemetry.io/collector/pdata/pprofile/pprofileotlp"
	"google.golang.org/grpc"
	_ "google.golang.org/grpc/encoding/gzip"

	"github.com/contprof/contprof/deploy/render"
)

type sink struct {
	pmetricotlp.UnimplementedGRPCServer
	addr     string
	mu       sync.Mutex
	metrics  []pmetric.Metrics
	profiles []pprofile.Profiles
	logs     []plog.Logs
}

type profSvc struct {
	pprofileotlp.UnimplementedGRPCServer
	s *sink
}

type logSvc struct {
	plogotlp.UnimplementedGRPCServer
	s *sink
}

func (s *sink) Export(_ context.Context, r pmetricotlp.ExportRequest) (pmetricotlp.ExportResponse, error) {
	md := pmetric.NewMetrics()
	r.Metrics().CopyTo(md)
	s.mu.Lock()
	s.metrics = append(s.metrics, md)
	s.mu.Unlock()
	return pmetricotlp.NewExportResponse(), nil
}

func (p *profSvc) Export(_ context.Context, r pprofileotlp.ExportRequest) (pprofileotlp.ExportResponse, error) {
	pd := pprofile.NewProfiles()
	r.Profiles().CopyTo(pd)
	p.s.mu.Lock()
	p.s.profiles = append(p.s.profiles, pd)
	p.s.mu.Unlock()
	return pprofileotlp.NewExportResponse(), nil
}

func (l *logSvc) Export(_ context.Context, r plogotlp.ExportRequest) (plogotlp.ExportResponse, error) {
	ld := plog.NewLogs()
	r.Logs().CopyTo(ld)
	l.s.mu.Lock()
	l.s.logs = append(l.s.logs, ld)
	l.s.mu.Unlock()
	return plogotlp.NewExportResponse(), nil
}

func startSink(t *testing.T) *sink {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &sink{addr: lis.Addr().String()}
	srv := grpc.NewServer()
	pmetricotlp.RegisterGRPCServer(srv, s)
	pprofileotlp.RegisterGRPCServer(srv, &profSvc{s: s})
	plogotlp.RegisterGRPCServer(srv, &logSvc{s: s})
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return s
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(timeout); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("%s: not within %s", what, timeout)
}

// repoRoot is the main module, where make builds bin/otelcol-contprof.
func repoRoot() string { return filepath.Join(render.ChartDir(), "..", "..", "..") }

// configMapDir writes files as the kubelet mounts a ConfigMap: the files
// are symlinks through ..data, which an update swaps atomically.
type configMapDir struct {
	dir string
	gen int
}

func (c *configMapDir) write(t *testing.T, files map[string]string) {
	t.Helper()
	c.gen++
	ts := filepath.Join(c.dir, fmt.Sprintf("..gen_%d", c.gen))
	if err := os.Mkdir(ts, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(ts, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		link := filepath.Join(c.dir, name)
		if _, err := os.Lstat(link); err != nil {
			if err := os.Symlink(filepath.Join("..data", name), link); err != nil {
				t.Fatal(err)
			}
		}
	}
	tmp := filepath.Join(c.dir, "..data_tmp")
	if err := os.Symlink(filepath.Base(ts), tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(c.dir, "..data")); err != nil {
		t.Fatal(err)
	}
}

func TestDaemonSetCapabilities(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CONTPROF_REQUIRE_EBPF") == "1" {
			t.Fatal("CONTPROF_REQUIRE_EBPF=1 but not root")
		}
		t.Skip("needs root to drop to the DaemonSet's capability set")
	}
	if out, err := exec.Command("make", "-C", repoRoot(), "collector").CombinedOutput(); err != nil {
		t.Fatalf("make collector: %v\n%s", err, out)
	}
	bin := filepath.Join(repoRoot(), "bin", "otelcol-contprof")

	// The chart, rendered with the sink as exporter endpoint.
	s := startSink(t)
	docs, err := render.Manifests(map[string]any{"exporter": map[string]any{"endpoint": s.addr}})
	if err != nil {
		t.Fatal(err)
	}
	objs, err := render.Decode(docs)
	if err != nil {
		t.Fatal(err)
	}
	ds := objs.DaemonSets[0]
	c := ds.Spec.Template.Spec.Containers[0]
	caps := render.SetprivCaps(render.Capabilities(c))
	cfg := render.CollectorConfig(t, objs)

	// The pod's paths, on this machine: a directory nobody can read for
	// the config and policies, one nobody can write for the data.
	root, err := os.MkdirTemp("", "contprof-agent")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	os.Chmod(root, 0o755)
	data := filepath.Join(root, "data")
	os.Mkdir(data, 0o755)
	os.Chown(data, 65534, 65534)
	policies := &configMapDir{dir: filepath.Join(root, "policies")}
	os.Mkdir(policies.dir, 0o755)
	policyDoc := func(name string) string {
		return fmt.Sprintf("policies:\n  - name: %s\n    target: on_cpu\n    items:\n      - { monitor: process_cpu, threshold: 99, period: 10, count: 10 }\n", name)
	}
	policies.write(t, map[string]string{"policies.yaml": policyDoc("from-configmap")})

	api, health, telemetry := freePort(t), freePort(t), freePort(t)
	for old, repl := range map[string]string{
		"/etc/contprof/policies/policies.yaml": filepath.Join(policies.dir, "policies.yaml"),
		"directory: /var/lib/contprof":         "directory: " + data,
		"endpoint: localhost:7733":             fmt.Sprintf("endpoint: 127.0.0.1:%d", api),
		"0.0.0.0:13133":                        fmt.Sprintf("127.0.0.1:%d", health),
		"port: 8888":                           fmt.Sprintf("port: %d", telemetry),
	} {
		if !strings.Contains(cfg, old) {
			t.Fatalf("rendered config lacks %q", old)
		}
		cfg = strings.ReplaceAll(cfg, old, repl)
	}
	cfgPath := filepath.Join(root, "config.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}

	// A busy process to profile.
	busy := exec.Command("sh", "-c", "while :; do :; done")
	if err := busy.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { busy.Process.Kill(); busy.Wait() })
	pid := busy.Process.Pid

	args := []string{"--reuid=65534", "--regid=65534", "--clear-groups",
		"--inh-caps=-all," + caps, "--ambient-caps=-all," + caps, "--bounding-set=-all," + caps, bin}
	args = append(args, c.Args...)
	args[len(args)-len(c.Args)] = "--config=" + cfgPath // the chart's first argument names the config
	cmd := exec.Command("setpriv", args...)
	cmd.Env = append(os.Environ(), "K8S_NODE_NAME=node-under-test", "GOMEMLIMIT=192MiB")
	var out strings.Builder
	var outMu sync.Mutex
	w := writerFunc(func(p []byte) (int, error) { outMu.Lock(); defer outMu.Unlock(); return out.Write(p) })
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			outMu.Lock()
			t.Logf("collector output:\n%s", out.String())
			outMu.Unlock()
		}
	})
	t.Logf("setpriv %s", strings.Join(args, " "))

	waitUntil(t, 90*time.Second, "health check ready", func() bool {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", health))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	outMu.Lock()
	startup := out.String()
	outMu.Unlock()
	if !strings.Contains(startup, "every privilege and kernel feature is present") {
		t.Fatalf("the receiver misses a privilege with the DaemonSet's capabilities:\n%s", startup)
	}

	// Metrics of the busy process, named with the node.
	waitUntil(t, 30*time.Second, "metrics of the busy process with host.name node-under-test", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, md := range s.metrics {
			for i := 0; i < md.ResourceMetrics().Len(); i++ {
				a := md.ResourceMetrics().At(i).Resource().Attributes()
				p, _ := a.Get("process.pid")
				h, _ := a.Get("host.name")
				if p.Int() == int64(pid) && h.Str() == "node-under-test" {
					return true
				}
			}
		}
		return false
	})

	// An on-CPU task of the busy process: its profile arrives.
	resp, err := http.Post(fmt.Sprintf("http://127.0.0.1:%d/api/v1/tasks", api), "application/json",
		strings.NewReader(fmt.Sprintf(`{"target":"on_cpu","pid":%d,"duration":"3s"}`, pid)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /api/v1/tasks: %s", resp.Status)
	}
	var samples int
	waitUntil(t, 30*time.Second, "an on-CPU profile of the busy process", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		samples = 0
		for _, pd := range s.profiles {
			for i := 0; i < pd.ResourceProfiles().Len(); i++ {
				rp := pd.ResourceProfiles().At(i)
				if p, _ := rp.Resource().Attributes().Get("process.pid"); p.Int() != int64(pid) {
					continue
				}
				for j := 0; j < rp.ScopeProfiles().Len(); j++ {
					ps := rp.ScopeProfiles().At(j).Profiles()
					for k := 0; k < ps.Len(); k++ {
						samples += ps.At(k).Samples().Len()
					}
				}
			}
		}
		return samples > 0
	})
	waitUntil(t, 30*time.Second, "task events (logs) started and finished", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		seen := map[string]bool{}
		for _, ld := range s.logs {
			for i := 0; i < ld.ResourceLogs().Len(); i++ {
				sl := ld.ResourceLogs().At(i).ScopeLogs()
				for j := 0; j < sl.Len(); j++ {
					for k := 0; k < sl.At(j).LogRecords().Len(); k++ {
						seen[sl.At(j).LogRecords().At(k).EventName()] = true
					}
				}
			}
		}
		return seen["contprof.task.started"] && seen["contprof.task.finished"]
	})

	// A ConfigMap update (the kubelet's ..data swap) is live without a
	// restart.
	policies.write(t, map[string]string{"policies.yaml": policyDoc("updated-in-place")})
	waitUntil(t, 10*time.Second, "the updated policy in force", func() bool {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/api/v1/policies", api))
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var b strings.Builder
		buf := make([]byte, 4096)
		for {
			n, err := resp.Body.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		return strings.Contains(b.String(), "updated-in-place") && !strings.Contains(b.String(), "from-configmap")
	})
	t.Logf("with %s as uid 65534: metrics, an on-CPU profile (%d samples), task events, a live policy update", caps, samples)
	// What the agent cost on this node so far (a figure for the notes,
	// not a bound: the machine is shared).
	if cpu, rss, err := cost(cmd.Process.Pid); err == nil {
		t.Logf("agent cost: %.2f CPU s over %s, RSS %d MiB", cpu, time.Since(started).Round(time.Second), rss>>20)
	}
}

// cost reads a process's CPU seconds and resident memory from /proc. pid
// is setpriv's, which execs the collector.
func cost(pid int) (cpu float64, rss int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	var ut, st, pages int64
	fmt.Sscan(f[11], &ut)
	fmt.Sscan(f[12], &st)
	fmt.Sscan(f[21], &pages)
	return float64(ut+st) / 100, pages * int64(os.Getpagesize()), nil
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
