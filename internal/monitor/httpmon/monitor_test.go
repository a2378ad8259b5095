//go:build linux

package httpmon

import (
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	bpfhttpmon "github.com/contprof/contprof/bpf/httpmon"
)

// errorRateScenario drives n keep-alive requests to srv's /work (which
// sleeps 30 ms and fails one in five) and checks the monitor's view in
// the terms of the http_error_rate and http_avg_response_time monitors.
func errorRateScenario(t *testing.T, m *Monitor, srv *server, n, conc int) {
	t.Helper()
	if err := m.SetPIDs([]int{srv.pid()}); err != nil {
		t.Fatal(err)
	}
	m.Drain() // start clean
	got, clientMean := loadTimed(t, []string{srv.url + "/work?user=alice&token=secret"}, n, conc)
	if got[500] != n/5 || got[200] != n-n/5 {
		t.Fatalf("client saw %v, want %d×200 and %d×500", got, n-n/5, n/5)
	}
	ph := collect(t, m, srv.pid(), uint64(n), 5*time.Second)
	st := logStats(t, m)
	t.Logf("server series: %v", byKey(ph.Server))
	if len(ph.Client) != 0 {
		t.Errorf("client series for a pure server: %v", byKey(ph.Client))
	}
	if c := total(ph.Server); c != uint64(n) {
		t.Errorf("server exchanges = %d, want %d", c, n)
	}
	for _, s := range ph.Server {
		if s.Method != "GET" || s.Path != "/work" || (s.Status != 200 && s.Status != 500) {
			t.Errorf("unexpected series %s %d %q", s.Method, s.Status, s.Path)
		}
		if strings.Contains(s.Path, "secret") {
			t.Errorf("query string leaked into url.path %q", s.Path)
		}
	}
	rate := ErrorRate(ph.Server) * 100
	mean := MeanDuration(ph.Server) * 1000
	t.Logf("error rate %.2f%%, mean %.2f ms (the client waited %.2f ms on average)", rate, mean, clientMean.Seconds()*1000)
	// The server's view cannot exceed what its client waited.
	if mean > clientMean.Seconds()*1000+0.5 {
		t.Errorf("server mean %.2f ms > client mean %v", mean, clientMean)
	}
	if math.Abs(rate-20) > 1 {
		t.Errorf("error rate = %.2f%%, want 20 ± 1", rate)
	}
	if math.Abs(mean-30) > 3 {
		t.Errorf("mean response time = %.2f ms, want 30 ± 3", mean)
	}
	// 30 ms lands in the (0.025, 0.05] bucket.
	for _, s := range ph.Server {
		if s.BucketCounts[3] < s.Count*9/10 {
			t.Errorf("%d %s: buckets %v: want ≥90%% in (0.025, 0.05]", s.Status, s.Path, s.BucketCounts)
		}
	}
	if st.Lost != 0 {
		t.Errorf("lost = %d, want 0", st.Lost)
	}
}

func TestGoServerErrorRate(t *testing.T) {
	requireEBPF(t)
	srv := startServer(t, goServer(t), "-sleep", "30ms")
	tracefs := func() bool {
		_, err := os.Stat("/sys/kernel/tracing/events/syscalls")
		return err == nil
	}
	before := tracefs()
	m := openMonitor(t, Options{})
	want := AttachRawTracepoint
	switch {
	case bpfhttpmon.HasSockTracepoints():
		want = AttachSock
	case before:
		want = AttachTracepoint
	}
	// Another test package may mount tracefs meanwhile; judge only a
	// stable state.
	if before == tracefs() && m.Attachment() != want {
		t.Errorf("auto attachment = %q, want %q", m.Attachment(), want)
	}
	for _, n := range m.Notes() {
		t.Log("note: " + n)
	}
	errorRateScenario(t, m, srv, 200, 4)
}

func TestPythonServerErrorRate(t *testing.T) {
	requireEBPF(t)
	srv := startServer(t, python3(t), serversDir(t)+"/pyserver.py", "0.03")
	m := openMonitor(t, Options{})
	errorRateScenario(t, m, srv, 200, 4)
}

// The syscall tracepoint flavour (kernels before 6.3) sees the same.
func TestTracepointAttachment(t *testing.T) {
	requireEBPF(t)
	if _, err := os.Stat("/sys/kernel/tracing/events/syscalls"); err != nil {
		t.Skip("tracefs is not mounted")
	}
	srv := startServer(t, goServer(t), "-sleep", "30ms")
	m := openMonitor(t, Options{Attach: AttachTracepoint})
	if m.Attachment() != AttachTracepoint {
		t.Fatalf("attachment = %q", m.Attachment())
	}
	errorRateScenario(t, m, srv, 100, 2)
}

// The raw-tracepoint flavour (used when tracefs is missing) sees the same.
func TestRawTracepointAttachment(t *testing.T) {
	requireEBPF(t)
	srv := startServer(t, goServer(t), "-sleep", "30ms")
	m := openMonitor(t, Options{Attach: AttachRawTracepoint})
	if m.Attachment() != AttachRawTracepoint {
		t.Fatalf("attachment = %q", m.Attachment())
	}
	errorRateScenario(t, m, srv, 100, 2)
}

// curl against the python server: separate processes, one request each,
// and several URLs over one keep-alive connection; methods and statuses.
func TestPythonServerCurl(t *testing.T) {
	requireEBPF(t)
	srv := startServer(t, python3(t), serversDir(t)+"/pyserver.py", "0")
	m := openMonitor(t, Options{})
	if err := m.AddPID(srv.pid()); err != nil {
		t.Fatal(err)
	}
	curl := func(args ...string) {
		t.Helper()
		out, err := exec.Command("curl", append([]string{"-sS", "-o", "/dev/null"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("curl %v: %v\n%s", args, err, out)
		}
	}
	curl(srv.url + "/a/b?q=1")
	curl("-X", "POST", "-d", "name=x", srv.url+"/submit")
	curl("-X", "DELETE", srv.url+"/items/7")
	curl("-I", srv.url+"/head")
	// one connection, three requests
	curl(srv.url+"/status/404", "-o", "/dev/null", srv.url+"/status/503", "-o", "/dev/null", srv.url+"/status/201")
	ph := collect(t, m, srv.pid(), 7, 5*time.Second)
	logStats(t, m)
	want := map[string]uint64{
		"GET 200 /a/b":        1,
		"POST 200 /submit":    1,
		"DELETE 200 /items/7": 1,
		"HEAD 200 /head":      1,
		"GET 404 /status/404": 1,
		"GET 503 /status/503": 1,
		"GET 201 /status/201": 1,
	}
	got := byKey(ph.Server)
	if len(got) != len(want) {
		t.Errorf("series = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: count %d, want %d (all: %v)", k, got[k], v, got)
		}
	}
}

// startHeld starts argv through a shell that waits for a line on stdin and
// then execs it, so the PID can be monitored before the first request.
func startHeld(t *testing.T, argv ...string) (pid int, release func() (string, error)) {
	t.Helper()
	cmd := exec.Command("sh", append([]string{"-c", `read _ && exec "$@"`, "sh"}, argv...)...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd.Process.Pid, func() (string, error) {
		t.Helper()
		if _, err := stdin.Write([]byte("go\n")); err != nil {
			t.Fatal(err)
		}
		err := cmd.Wait()
		if err != nil {
			err = fmt.Errorf("%v: %w\n%s", argv, err, out.String())
		}
		return out.String(), err
	}
}

// The monitored process is the client: curl making keep-alive requests.
func TestClientSideCurl(t *testing.T) {
	requireEBPF(t)
	srv := startServer(t, goServer(t), "-sleep", "30ms")
	m := openMonitor(t, Options{})
	args := []string{"curl", "-sS"}
	for range 10 {
		args = append(args, "-o", "/dev/null", srv.url+"/work?session=abc")
	}
	pid, run := startHeld(t, args...)
	if err := m.SetPIDs([]int{pid}); err != nil {
		t.Fatal(err)
	}
	if _, err := run(); err != nil {
		t.Fatal(err)
	}
	ph := collect(t, m, pid, 10, 5*time.Second)
	logStats(t, m)
	if len(ph.Server) != 0 {
		t.Errorf("server series for a pure client: %v", byKey(ph.Server))
	}
	got := byKey(ph.Client)
	if got["GET 200 /work"] != 8 || got["GET 500 /work"] != 2 || len(got) != 2 {
		t.Errorf("client series = %v, want 8×GET 200 /work and 2×GET 500 /work", got)
	}
	if mean := MeanDuration(ph.Client) * 1000; mean < 29 || mean > 40 {
		t.Errorf("client mean = %.2f ms, want about 30 (server sleep + loopback)", mean)
	}
	if _, ok := m.Drain()[srv.pid()]; ok {
		t.Error("data for the unmonitored server")
	}
}

var wrkRequests = regexp.MustCompile(`(\d+) requests in`)

func wrkCount(t *testing.T, out string) uint64 {
	t.Helper()
	mm := wrkRequests.FindStringSubmatch(out)
	if mm == nil {
		t.Fatalf("no request count in wrk output:\n%s", out)
	}
	n, _ := strconv.ParseUint(mm[1], 10, 64)
	return n
}

// wrk as the monitored keep-alive client, then the Go server under wrk:
// every exchange wrk completes is seen, in both roles.
func TestWrkKeepAlive(t *testing.T) {
	requireEBPF(t)
	if _, err := exec.LookPath("wrk"); err != nil {
		if os.Getenv("CONTPROF_REQUIRE_EBPF") == "1" {
			t.Fatal("wrk is not installed (.ci/run installs it)")
		}
		t.Skip("wrk not installed")
	}
	srv := startServer(t, goServer(t))
	m := openMonitor(t, Options{})
	const conns = 4

	t.Run("client", func(t *testing.T) {
		pid, run := startHeld(t, "wrk", "-t1", "-c"+strconv.Itoa(conns), "-d1s", srv.url+"/hello?x=1")
		if err := m.SetPIDs([]int{pid}); err != nil {
			t.Fatal(err)
		}
		out, err := run()
		if err != nil {
			t.Fatal(err)
		}
		n := wrkCount(t, out)
		ph := collect(t, m, pid, n, 5*time.Second)
		st := logStats(t, m)
		got := total(ph.Client)
		t.Logf("wrk completed %d, monitor saw %d", n, got)
		if got < n || got > n+conns {
			t.Errorf("client exchanges = %d, want %d..%d", got, n, n+conns)
		}
		if k := byKey(ph.Client); len(k) != 1 || k["GET 200 /hello"] != got {
			t.Errorf("client series = %v", k)
		}
		if st.Lost != 0 {
			t.Errorf("lost %d", st.Lost)
		}
	})
	t.Run("server", func(t *testing.T) {
		if err := m.SetPIDs([]int{srv.pid()}); err != nil {
			t.Fatal(err)
		}
		m.Drain()
		before := logStats(t, m)
		out, err := exec.Command("wrk", "-t1", "-c"+strconv.Itoa(conns), "-d1s", srv.url+"/hello").CombinedOutput()
		if err != nil {
			t.Fatalf("wrk: %v\n%s", err, out)
		}
		n := wrkCount(t, string(out))
		ph := collect(t, m, srv.pid(), n, 5*time.Second)
		after := logStats(t, m)
		got := total(ph.Server)
		t.Logf("wrk completed %d, monitor saw %d", n, got)
		if got < n || got > n+conns {
			t.Errorf("server exchanges = %d, want %d..%d", got, n, n+conns)
		}
		if d := after.UnmatchedResponses - before.UnmatchedResponses; d != 0 {
			t.Errorf("%d unmatched responses", d)
		}
	})
}

func TestPathCapAndLongPath(t *testing.T) {
	requireEBPF(t)
	srv := startServer(t, goServer(t))
	m := openMonitor(t, Options{MaxPathsPerProcess: 3})
	if err := m.AddPID(srv.pid()); err != nil {
		t.Fatal(err)
	}
	var urls []string
	for i := 1; i <= 6; i++ {
		urls = append(urls, fmt.Sprintf("%s/p/%d?i=%d", srv.url, i, i))
	}
	load(t, urls, 12, 1) // in order: /p/1../p/6 twice
	ph := collect(t, m, srv.pid(), 12, 5*time.Second)
	want := map[string]uint64{"GET 200 /p/1": 2, "GET 200 /p/2": 2, "GET 200 /p/3": 2, "GET 200 " + OtherPath: 6}
	if got := byKey(ph.Server); !maps.Equal(got, want) {
		t.Errorf("series = %v, want %v", got, want)
	}
	// The cap holds across intervals: known paths stay, new ones overflow.
	long := "/" + strings.Repeat("x", 300)
	load(t, []string{srv.url + "/p/2", srv.url + "/p/7", srv.url + long}, 3, 1)
	ph = collect(t, m, srv.pid(), 3, 5*time.Second)
	want = map[string]uint64{"GET 200 /p/2": 1, "GET 200 " + OtherPath: 2}
	if got := byKey(ph.Server); !maps.Equal(got, want) {
		t.Errorf("second interval series = %v, want %v", got, want)
	}

	// Without a tight cap the path is its first 128 bytes.
	m2 := openMonitor(t, Options{})
	if err := m2.AddPID(srv.pid()); err != nil {
		t.Fatal(err)
	}
	load(t, []string{srv.url + long + "?q=1"}, 1, 1)
	ph = collect(t, m2, srv.pid(), 1, 5*time.Second)
	if len(ph.Server) != 1 || ph.Server[0].Path != long[:128] {
		t.Errorf("long path series = %v, want path %q", byKey(ph.Server), long[:128])
	}

	// Records of paths up to bpfhttpmon.ShortPathLen bytes are shorter:
	// both sides of the boundary come out whole.
	short, over := "/"+strings.Repeat("s", bpfhttpmon.ShortPathLen-1), "/"+strings.Repeat("o", bpfhttpmon.ShortPathLen)
	load(t, []string{srv.url + short + "?q=1", srv.url + over + "#f", srv.url + over[:bpfhttpmon.ShortPathLen-2]}, 3, 1)
	ph = collect(t, m2, srv.pid(), 3, 5*time.Second)
	want = map[string]uint64{"GET 200 " + short: 1, "GET 200 " + over: 1, "GET 200 " + over[:bpfhttpmon.ShortPathLen-2]: 1}
	if got := byKey(ph.Server); !maps.Equal(got, want) {
		t.Errorf("short record series = %v, want %v", got, want)
	}
}

func TestPIDFilter(t *testing.T) {
	requireEBPF(t)
	a := startServer(t, goServer(t))
	b := startServer(t, goServer(t))
	m := openMonitor(t, Options{})
	if err := m.SetPIDs([]int{a.pid()}); err != nil {
		t.Fatal(err)
	}
	load(t, []string{a.url + "/x", b.url + "/y"}, 20, 2)
	ph := collect(t, m, a.pid(), 10, 5*time.Second)
	if got := byKey(ph.Server); got["GET 200 /x"] != 10 || len(got) != 1 {
		t.Errorf("a: series = %v, want 10×GET 200 /x", got)
	}
	if d := m.Drain(); len(d) != 0 {
		t.Errorf("data for unmonitored processes: %v", d)
	}

	// Swap: only b now.
	if err := m.SetPIDs([]int{b.pid()}); err != nil {
		t.Fatal(err)
	}
	if got := m.PIDs(); !slices.Equal(got, []int{b.pid()}) {
		t.Errorf("PIDs = %v", got)
	}
	load(t, []string{a.url + "/x", b.url + "/y"}, 20, 2)
	ph = collect(t, m, b.pid(), 10, 5*time.Second)
	if got := byKey(ph.Server); got["GET 200 /y"] != 10 || len(got) != 1 {
		t.Errorf("b: series = %v, want 10×GET 200 /y", got)
	}
	if err := m.RemovePID(b.pid()); err != nil {
		t.Fatal(err)
	}
	load(t, []string{b.url + "/y"}, 5, 1)
	time.Sleep(200 * time.Millisecond)
	if d := m.Drain(); len(d) != 0 {
		t.Errorf("data after RemovePID: %v", d)
	}
	// A process removed before any Drain saw it: its exchanges are in the
	// kernel's series and the next Drain reports them once.
	if err := m.AddPID(a.pid()); err != nil {
		t.Fatal(err)
	}
	load(t, []string{a.url + "/z"}, 5, 1)
	time.Sleep(200 * time.Millisecond)
	if err := m.RemovePID(a.pid()); err != nil {
		t.Fatal(err)
	}
	var got map[string]uint64
	if ph := m.Drain()[a.pid()]; ph != nil {
		got = byKey(ph.Server)
	}
	if got["GET 200 /z"] != 5 {
		t.Errorf("a removed before a Drain: series = %v, want 5×GET 200 /z", got)
	}
	if d := m.Drain(); len(d) != 0 {
		t.Errorf("data after the removed process was reported: %v", d)
	}
	for _, bad := range []int{0, -1} {
		if err := m.AddPID(bad); err == nil || !strings.Contains(err.Error(), strconv.Itoa(bad)) {
			t.Errorf("AddPID(%d) = %v, want an error naming it", bad, err)
		}
	}
}

// A request whose first byte arrives in a 1-byte read (Go's net/http
// background read) is still recognised.
func TestOneByteReadAhead(t *testing.T) {
	requireEBPF(t)
	srv := startServer(t, python3(t), serversDir(t)+"/onebyte.py")
	m := openMonitor(t, Options{})
	if err := m.AddPID(srv.pid()); err != nil {
		t.Fatal(err)
	}
	load(t, []string{srv.url + "/first", srv.url + "/second", srv.url + "/third"}, 6, 1)
	ph := collect(t, m, srv.pid(), 6, 5*time.Second)
	st := logStats(t, m)
	want := map[string]uint64{"GET 200 /first": 2, "GET 200 /second": 2, "GET 200 /third": 2}
	if got := byKey(ph.Server); !maps.Equal(got, want) {
		t.Errorf("series = %v, want %v", got, want)
	}
	if st.UnmatchedResponses != 0 {
		t.Errorf("%d unmatched responses", st.UnmatchedResponses)
	}
}

// A client that gives up closes its connection with the request pending:
// no exchange, one unmatched request, counted at close.
func TestClientTimeoutIsUnmatched(t *testing.T) {
	requireEBPF(t)
	srv := startServer(t, goServer(t), "-sleep", "2s")
	for _, attach := range []string{AttachAuto, AttachTracepoint, AttachRawTracepoint} {
		t.Run("attach="+attach, func(t *testing.T) {
			if _, err := os.Stat("/sys/kernel/tracing/events/syscalls"); err != nil && attach == AttachTracepoint {
				t.Skip("tracefs is not mounted")
			}
			m := openMonitor(t, Options{Attach: attach})
			pid, run := startHeld(t, "curl", "-sS", "-m", "0.3", srv.url+"/work")
			if err := m.SetPIDs([]int{pid}); err != nil {
				t.Fatal(err)
			}
			if _, err := run(); err == nil {
				t.Fatal("curl did not time out")
			}
			st := logStats(t, m)
			if st.Exchanges != 0 || st.UnmatchedRequests != 1 {
				t.Errorf("stats = %+v, want no exchange and one unmatched request", st)
			}
			if d := m.Drain(); len(d) != 0 {
				t.Errorf("Drain = %v, want nothing", d)
			}
		})
	}
}

// An observer sees every exchange of an observed process with its PID, FD,
// role and status, as network tasks need to attribute exchanges to peers.
func TestObserverSeesExchanges(t *testing.T) {
	requireEBPF(t)
	srv := startServer(t, goServer(t), "-sleep", "1ms")
	m := openMonitor(t, Options{})
	if err := m.SetObservedPIDs([]int{srv.pid()}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var seen []Exchange
	m.SetObserver(func(ex Exchange) {
		mu.Lock()
		seen = append(seen, ex)
		mu.Unlock()
	})
	if err := m.AddPID(srv.pid()); err != nil {
		t.Fatal(err)
	}
	client := &http.Client{}
	for _, p := range []string{"/status/503?x=1", "/status/200", "/status/503"} {
		resp, err := client.Get(srv.url + p)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	m.Drain() // flushes the ring buffer through the reader
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 3 {
		t.Fatalf("observer saw %d exchanges, want 3: %+v", len(seen), seen)
	}
	for i, want := range []int{503, 200, 503} {
		ex := seen[i]
		if ex.PID != srv.pid() || ex.FD <= 2 || ex.Client || ex.Method != "GET" || ex.Status != want {
			t.Errorf("exchange %d = %+v, want server GET %d of pid %d", i, ex, want, srv.pid())
		}
		if time.Since(ex.Start) > time.Minute || ex.Start.After(time.Now()) {
			t.Errorf("exchange %d start %v is not recent", i, ex.Start)
		}
	}
	if seen[0].Path != "/status/503" {
		t.Errorf("path %q: want the query string removed", seen[0].Path)
	}
}
