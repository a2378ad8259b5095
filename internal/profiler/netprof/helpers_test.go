//go:build linux

package netprof

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.uber.org/goleak"

	"github.com/contprof/contprof/internal/testhelper/proftest"
)

var peerBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "netprof-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	peerBin = filepath.Join(dir, "peer")
	build := exec.Command("go", "build", "-o", peerBin, "./testdata/peer")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build test peer:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goroutine leak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// requireRoot skips (or, with CONTPROF_REQUIRE_EBPF=1, fails) without root.
func requireRoot(t testing.TB) {
	t.Helper()
	proftest.RequireEBPF(t, "a network task (eBPF programs, network namespaces)")
}

func run(t testing.TB, args ...string) {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func randSuffix() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// vethPair is two network namespaces joined by a veth pair: the client
// side 10.x.y.1 and the server side 10.x.y.2.
type vethPair struct {
	client, server     string // namespace names
	clientIf, serverIf string
	clientIP, serverIP string
}

func newVethPair(t testing.TB) *vethPair {
	t.Helper()
	s := randSuffix()
	v := &vethPair{
		client: "npc" + s, server: "nps" + s,
		clientIf: "vc" + s, serverIf: "vs" + s,
		clientIP: "10.213.7.1", serverIP: "10.213.7.2",
	}
	t.Cleanup(func() {
		// Deleting the namespaces deletes the veth pair too.
		exec.Command("ip", "netns", "del", v.client).Run()
		exec.Command("ip", "netns", "del", v.server).Run()
	})
	run(t, "ip", "netns", "add", v.client)
	run(t, "ip", "netns", "add", v.server)
	run(t, "ip", "link", "add", v.clientIf, "netns", v.client, "type", "veth", "peer", "name", v.serverIf, "netns", v.server)
	run(t, "ip", "-n", v.client, "addr", "add", v.clientIP+"/24", "dev", v.clientIf)
	run(t, "ip", "-n", v.server, "addr", "add", v.serverIP+"/24", "dev", v.serverIf)
	for _, ns := range []string{v.client, v.server} {
		run(t, "ip", "-n", ns, "link", "set", "lo", "up")
	}
	// Tail loss probes retransmit whenever an ACK is late, which on a
	// busy two-core machine happens without any loss: off, so that a
	// clean link has no retransmits at all.
	for _, ns := range []string{v.client, v.server} {
		run(t, "ip", "netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv4.tcp_early_retrans=0")
	}
	run(t, "ip", "-n", v.client, "link", "set", v.clientIf, "up")
	run(t, "ip", "-n", v.server, "link", "set", v.serverIf, "up")
	return v
}

// child is a running peer process.
type child struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string
	before [2]int64 // test bookkeeping
}

// startPeer starts the peer program (in namespace ns when not empty) and
// kills it at cleanup.
func startPeer(t testing.TB, ns string, env []string, args ...string) *child {
	t.Helper()
	argv := append([]string{peerBin}, args...)
	if ns != "" {
		// In a namespace, on one CPU: the veth delivers a sender's packets
		// on the CPU it runs on, so a sender that migrates reorders its own
		// stream, and TCP answers reordering with (real) retransmits.
		argv = append([]string{"ip", "netns", "exec", ns, "taskset", "-c", "0"}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, stdin: stdin, lines: make(chan string, 16)}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return c
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// expect waits for a line on the child's stdout.
func (c *child) expect(t testing.TB, want string, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case l, ok := <-c.lines:
			if !ok {
				t.Fatalf("peer %d exited before printing %q", c.pid(), want)
			}
			if l == want {
				return
			}
		case <-deadline:
			t.Fatalf("peer %d did not print %q within %v", c.pid(), want, timeout)
		}
	}
}

func (c *child) send(t testing.TB, line string) {
	t.Helper()
	if _, err := io.WriteString(c.stdin, line+"\n"); err != nil {
		t.Fatal(err)
	}
}

// point is one data point, flattened.
type point struct {
	pid    int64
	metric string
	attrs  map[string]any
	i      int64
	d      float64
	hcount uint64
	hsum   float64
}

func points(md pmetric.Metrics) []point {
	var out []point
	for _, rm := range md.ResourceMetrics().All() {
		pidv, _ := rm.Resource().Attributes().Get("process.pid")
		pid := pidv.Int()
		for _, sm := range rm.ScopeMetrics().All() {
			for _, m := range sm.Metrics().All() {
				add := func(attrs pcommon.Map, p point) {
					p.pid, p.metric, p.attrs = pid, m.Name(), attrs.AsRaw()
					out = append(out, p)
				}
				switch m.Type() {
				case pmetric.MetricTypeSum:
					for _, dp := range m.Sum().DataPoints().All() {
						add(dp.Attributes(), point{i: dp.IntValue()})
					}
				case pmetric.MetricTypeGauge:
					for _, dp := range m.Gauge().DataPoints().All() {
						add(dp.Attributes(), point{i: dp.IntValue(), d: dp.DoubleValue()})
					}
				case pmetric.MetricTypeHistogram:
					for _, dp := range m.Histogram().DataPoints().All() {
						add(dp.Attributes(), point{hcount: dp.Count(), hsum: dp.Sum()})
					}
				}
			}
		}
	}
	return out
}

// match selects points of one metric and process whose attributes include
// all of want.
func match(ps []point, pid int, metric string, want map[string]any) []point {
	var out []point
	for _, p := range ps {
		if p.pid != int64(pid) || p.metric != metric {
			continue
		}
		ok := true
		for k, v := range want {
			if p.attrs[k] != v {
				ok = false
				break
			}
		}
		if ok {
			out = append(out, p)
		}
	}
	return out
}

func sumInt(ps []point) (n int64) {
	for _, p := range ps {
		n += p.i
	}
	return n
}

func within(got, want int64, frac float64) bool {
	d := float64(got - want)
	if d < 0 {
		d = -d
	}
	return d <= frac*float64(want)
}
