//go:build linux

package netprof

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/contprof/contprof/internal/output/flows"
)

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestLocalTopology: a client and a server on this host (loopback). Only
// the client is covered; its flow names the server process as its peer,
// found by the server's socket inode in /proc.
func TestLocalTopology(t *testing.T) {
	requireRoot(t)
	port := freePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	server := startPeer(t, "", []string{"OTEL_SERVICE_NAME=topo-server"}, "server", addr)
	server.expect(t, "listening", 10*time.Second)
	client := startPeer(t, "", []string{"OTEL_RESOURCE_ATTRIBUTES=service.name=topo-client,deployment.environment=test"},
		"client", addr, "300000", "200000", "700ms")

	task, err := Start(Options{
		PIDs: []int{client.pid()},
		Resource: func(pid int) map[string]any {
			return map[string]any{"process.pid": int64(pid), "service.name": "topo-client"}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer task.Close()
	client.send(t, "go")
	var ps []point
	for done := false; !done; {
		select {
		case l, ok := <-client.lines:
			if !ok {
				t.Fatal("the client exited without printing done")
			}
			done = l == "done"
		case <-time.After(250 * time.Millisecond):
			md, _ := task.Collect(time.Now())
			ps = append(ps, points(md)...)
		}
	}
	client.cmd.Wait()
	md, _ := task.Collect(time.Now())
	ps = append(ps, points(md)...)

	flow := map[string]any{flows.AttrRole: "client", flows.AttrPeerAddress: "127.0.0.1", flows.AttrPeerPort: int64(port),
		flows.AttrPeerPID: int64(server.pid()), flows.AttrPeerService: "topo-server"}
	tx := sumInt(match(ps, client.pid(), flows.MetricIO, with(flow, flows.AttrDirection, "transmit")))
	rx := sumInt(match(ps, client.pid(), flows.MetricIO, with(flow, flows.AttrDirection, "receive")))
	if !within(tx, 300016, 0.05) || !within(rx, 200000, 0.05) {
		t.Errorf("flow %v: transmitted %d, received %d; want 300016 and 200000 ±5%%", flow, tx, rx)
		for _, p := range ps {
			t.Logf("%d %s %v %d", p.pid, p.metric, p.attrs, p.i)
		}
	}
	if n := sumInt(match(ps, client.pid(), flows.MetricClosed, flow)); n != 1 {
		t.Errorf("closed %d connections, want 1", n)
	}
	for _, p := range ps {
		if p.pid == int64(server.pid()) {
			t.Fatalf("the server is not covered but has a data point: %+v", p)
		}
	}
}

// httpRequest sends one request on a keep-alive connection and reads the
// whole response.
func httpRequest(t *testing.T, c net.Conn, br *bufio.Reader, path string) (status int, d time.Duration) {
	t.Helper()
	start := time.Now()
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: test\r\n\r\n", path); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, time.Since(start)
}

func connFD(t *testing.T, c net.Conn) int {
	t.Helper()
	raw, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var fd int
	raw.Control(func(f uintptr) { fd = int(f) })
	return fd
}

// serverFD finds the fd of pid's socket whose remote endpoint is peer.
func serverFD(t *testing.T, pid int, local, peer *net.TCPAddr) int {
	t.Helper()
	ns, err := netnsOf(pid)
	if err != nil {
		t.Fatal(err)
	}
	d, err := openDiag(pid, ns)
	if err != nil {
		t.Fatal(err)
	}
	defer d.close()
	// The socket has an inode once the server accepted it.
	var ino uint64
	for i := 0; ino == 0 && i < 200; i++ {
		if i > 0 {
			time.Sleep(10 * time.Millisecond)
		}
		err = d.dump(func(s *diagSock) {
			if s.Local.Port == uint16(local.Port) && s.Remote.Port == uint16(peer.Port) {
				ino = s.Inode
			}
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if ino == 0 {
		t.Fatal("the server did not accept the connection")
	}
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		fd, _ := strconv.Atoi(e.Name())
		if i, ok := fdInode(pid, fd); ok && i == ino {
			return fd
		}
	}
	t.Fatalf("no fd of pid %d holds socket %d", pid, ino)
	return 0
}

type logRec struct {
	pid   int64
	attrs map[string]any
	body  string
	sev   plog.SeverityNumber
}

func logRecords(ld plog.Logs) []logRec {
	var out []logRec
	for _, rl := range ld.ResourceLogs().All() {
		pid, _ := rl.Resource().Attributes().Get("process.pid")
		for _, sl := range rl.ScopeLogs().All() {
			for _, lr := range sl.LogRecords().All() {
				out = append(out, logRec{pid.Int(), lr.Attributes().AsRaw(), lr.Body().Str(), lr.SeverityNumber()})
			}
		}
	}
	return out
}

// TestHTTPPeersAndLogs feeds ObserveHTTP with real exchanges (both roles)
// between this test and an HTTP server process: per-peer histograms, and
// a sampled log for each 5xx exchange within the rate limit.
func TestHTTPPeersAndLogs(t *testing.T) {
	requireRoot(t)
	port := freePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	server := startPeer(t, "", []string{"OTEL_SERVICE_NAME=np-http"}, "http", addr)
	server.expect(t, "listening", 10*time.Second)
	self := os.Getpid()

	task, err := Start(Options{
		PIDs:          []int{server.pid(), self},
		Attributes:    map[string]any{"contprof.task.id": "http-1", "contprof.trigger.monitor": "http_error_rate"},
		LogBurst:      8,
		LogsPerSecond: 1e-9, // no refill during the test
		SlowThreshold: -1,   // failures only
	})
	if err != nil {
		t.Fatal(err)
	}
	defer task.Close()

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	cfd := connFD(t, c)
	sfd := serverFD(t, server.pid(), c.RemoteAddr().(*net.TCPAddr), c.LocalAddr().(*net.TCPAddr))
	clientPort := int64(c.LocalAddr().(*net.TCPAddr).Port)

	exchange := func(path string) int {
		start := time.Now()
		status, d := httpRequest(t, c, br, path)
		task.ObserveHTTP(Exchange{PID: server.pid(), FD: sfd, Role: RoleServer, Method: "GET", Status: status, Start: start, Duration: d, Path: path})
		task.ObserveHTTP(Exchange{PID: self, FD: cfd, Role: RoleClient, Method: "GET", Status: status, Start: start, Duration: d, Path: path})
		return status
	}
	// Interval 1: 3 failures (6 candidate logs, all within the burst of 8)
	// and 2 successes.
	for _, p := range []string{"/fail?user=1", "/ok", "/fail", "/ok", "/fail"} {
		exchange(p)
	}
	md, ld := task.Collect(time.Now())
	ps := points(md)

	srv := map[string]any{"contprof.task.id": "http-1", flows.AttrPeerAddress: "127.0.0.1", flows.AttrPeerPID: int64(self),
		AttrMethod: "GET", flows.AttrRole: "server", flows.AttrLocalPort: int64(port)}
	cli := map[string]any{"contprof.task.id": "http-1", flows.AttrPeerAddress: "127.0.0.1", flows.AttrPeerPort: int64(port),
		flows.AttrPeerPID: int64(server.pid()), flows.AttrPeerService: "np-http", AttrMethod: "GET", flows.AttrRole: "client"}
	for _, c := range []struct {
		pid    int
		metric string
		attrs  map[string]any
		status int64
		want   uint64
	}{
		{server.pid(), flows.MetricHTTPServer, srv, 500, 3},
		{server.pid(), flows.MetricHTTPServer, srv, 200, 2},
		{self, flows.MetricHTTPClient, cli, 500, 3},
		{self, flows.MetricHTTPClient, cli, 200, 2},
	} {
		got := match(ps, c.pid, c.metric, with(c.attrs, flows.AttrStatus, c.status))
		if len(got) != 1 || got[0].hcount != c.want {
			t.Errorf("%s of pid %d status %d: points %+v, want one with count %d", c.metric, c.pid, c.status, got, c.want)
		}
	}

	logs := logRecords(ld)
	if len(logs) != 6 {
		t.Fatalf("%d logs, want 6 (one per 5xx exchange and role): %+v", len(logs), logs)
	}
	for _, l := range logs {
		a := l.attrs
		if a[flows.AttrStatus] != int64(500) || a[AttrMethod] != "GET" || a[AttrURLPath] != "/fail" ||
			a[flows.AttrPeerAddress] != "127.0.0.1" || a["contprof.task.id"] != "http-1" || l.sev != plog.SeverityNumberError {
			t.Errorf("log %+v", l)
		}
		if !strings.HasPrefix(l.body, "GET /fail 500 ") {
			t.Errorf("log body %q", l.body)
		}
		switch l.pid {
		case int64(server.pid()):
			if a[AttrHTTPRole] != "server" || a[flows.AttrPeerPort] != clientPort || a[flows.AttrPeerPID] != int64(self) {
				t.Errorf("server log %+v", a)
			}
		case int64(self):
			if a[AttrHTTPRole] != "client" || a[flows.AttrPeerPort] != int64(port) || a[flows.AttrPeerService] != "np-http" {
				t.Errorf("client log %+v", a)
			}
		default:
			t.Errorf("log of pid %d", l.pid)
		}
	}

	// Interval 2: 3 more failures, 6 candidates, 2 tokens left.
	for range 3 {
		if s := exchange("/fail"); s != 500 {
			t.Fatalf("status %d", s)
		}
	}
	_, ld = task.Collect(time.Now())
	if n := ld.LogRecordCount(); n != 2 {
		t.Errorf("%d logs in the second interval, want 2 (the rest of the burst)", n)
	}
	st := task.Stats()
	if st.LogsSampled != 8 || st.LogsRateLimited != 4 || st.HTTPUnresolved != 0 {
		t.Errorf("stats %+v: want 8 sampled, 4 rate-limited, 0 unresolved", st)
	}
}

// TestCloseLeavesNothing: after Close no program of the task is loaded.
func TestCloseLeavesNothing(t *testing.T) {
	requireRoot(t)
	task, err := Start(Options{PIDs: []int{os.Getpid()}})
	if err != nil {
		t.Fatal(err)
	}
	if n := loadedPrograms(t); n != 4 {
		t.Errorf("%d task programs loaded while running, want 4 (two flavours of two)", n)
	}
	if err := task.Close(); err != nil {
		t.Fatal(err)
	}
	if err := task.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if n := settledPrograms(t); n != 0 {
		t.Errorf("%d task programs still loaded after Close", n)
	}
	md, ld := task.Collect(time.Now())
	if md.DataPointCount() != 0 || ld.LogRecordCount() != 0 {
		t.Error("a closed task emitted data")
	}
}

// settledPrograms counts the task's programs once they had time to go:
// the kernel frees a program after an RCU grace period once its last
// reference is gone.
func settledPrograms(t *testing.T) int {
	n := loadedPrograms(t)
	for i := 0; n != 0 && i < 50; i++ {
		time.Sleep(20 * time.Millisecond)
		n = loadedPrograms(t)
	}
	return n
}

// loadedPrograms counts the task programs this process holds (other tests
// and processes on the machine may load the same programs meanwhile).
func loadedPrograms(t *testing.T) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, fd := range fds {
		if target, _ := os.Readlink("/proc/self/fd/" + fd.Name()); target != "anon_inode:bpf-prog" {
			continue
		}
		info, err := os.ReadFile("/proc/self/fdinfo/" + fd.Name())
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(info), "\n") {
			v, ok := strings.CutPrefix(line, "prog_id:")
			if !ok {
				continue
			}
			id, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
			p, err := ebpf.NewProgramFromID(ebpf.ProgramID(id))
			if err != nil {
				continue
			}
			pi, err := p.Info()
			p.Close()
			if err == nil && (pi.Name == "tcp_set_state" || pi.Name == "tcp_retransmit" ||
				pi.Name == "btf_set_state" || pi.Name == "btf_retransmit") {
				n++
			}
		}
	}
	return n
}

func TestOptionsErrors(t *testing.T) {
	for _, c := range []struct {
		opts Options
		want string
	}{
		{Options{PIDs: []int{-5}}, "pids: -5"},
		{Options{LogBurst: -1}, "log_burst: -1"},
		{Options{LogsPerSecond: -2}, "logs_per_second: -2"},
		{Options{MaxConnections: 3}, "max_connections: 3"},
		{Options{FDCacheTTL: -time.Second}, "fd_cache_ttl: -1s"},
		{Options{Attach: "kprobe"}, `attach: "kprobe"`},
		{Options{}, "pids: no process to cover"},
	} {
		if c.opts.PIDs == nil && c.want != "pids: no process to cover" {
			c.opts.PIDs = []int{os.Getpid()}
		}
		_, err := Start(c.opts)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Start(%+v) = %v, want an error naming %q", c.opts, err, c.want)
		}
	}
}

// TestStartGonePIDs: a task whose processes are all gone does not start.
func TestStartGonePIDs(t *testing.T) {
	requireRoot(t)
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	_, err := Start(Options{PIDs: []int{cmd.Process.Pid}})
	if err == nil || !strings.Contains(err.Error(), "is running") {
		t.Fatalf("Start on an exited pid = %v, want an error saying none is running", err)
	}
	if n := settledPrograms(t); n != 0 {
		t.Errorf("%d programs left loaded after a failed Start", n)
	}
}
