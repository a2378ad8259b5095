//go:build linux

package httpmon

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/contprof/contprof/internal/testhelper/proftest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if goServerBin != "" {
		os.RemoveAll(filepath.Dir(goServerBin))
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

func requireEBPF(t testing.TB) {
	t.Helper()
	proftest.RequireEBPF(t, "the HTTP monitor")
}

func serversDir(t testing.TB) string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate source directory")
	}
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "testdata", "httpservers")
}

var (
	goServerOnce sync.Once
	goServerBin  string
	goServerErr  error
)

// goServer builds testdata/httpservers/goserver once per test binary.
func goServer(t testing.TB) string {
	t.Helper()
	goServerOnce.Do(func() {
		dir, err := os.MkdirTemp("", "httpmon-goserver-")
		if err != nil {
			goServerErr = err
			return
		}
		goServerBin = filepath.Join(dir, "goserver")
		cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", goServerBin, ".")
		cmd.Dir = filepath.Join(serversDir(t), "goserver")
		if out, err := cmd.CombinedOutput(); err != nil {
			goServerErr = fmt.Errorf("go build goserver: %v\n%s", err, out)
		}
	})
	if goServerErr != nil {
		t.Fatal(goServerErr)
	}
	return goServerBin
}

func python3(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("python3")
	if err != nil {
		t.Fatalf("python3 not found: %v", err)
	}
	return p
}

// server is a test server running as a child process.
type server struct {
	cmd *exec.Cmd
	url string // http://127.0.0.1:PORT
}

func (s *server) pid() int { return s.cmd.Process.Pid }

// startServer runs argv and waits for its "listening on URL" line.
func startServer(t testing.TB, argv ...string) *server {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %v: %v", argv, err)
	}
	// Scheduling delay on a busy machine would count as response time; a
	// raised priority keeps the measured latency the server's own.
	_ = syscall.Setpriority(syscall.PRIO_PROCESS, cmd.Process.Pid, -10)
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		if sc.Scan() {
			line <- sc.Text()
		}
		close(line)
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case l, ok := <-line:
		url, found := strings.CutPrefix(l, "listening on ")
		if !ok || !found {
			t.Fatalf("%v: unexpected first line %q", argv, l)
		}
		return &server{cmd: cmd, url: url}
	case <-time.After(20 * time.Second):
		t.Fatalf("%v: no listening line within 20s", argv)
	}
	return nil
}

func openMonitor(t testing.TB, opts Options) *Monitor {
	t.Helper()
	m, err := Open(opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return m
}

// load sends n requests to urls (round-robin) from conc keep-alive
// connections and returns the status counts seen by the client.
func load(t testing.TB, urls []string, n, conc int) map[int]int {
	counts, _ := loadTimed(t, urls, n, conc)
	return counts
}

// loadTimed is load that also returns the mean time the client waited for
// a response's headers.
func loadTimed(t testing.TB, urls []string, n, conc int) (map[int]int, time.Duration) {
	t.Helper()
	tr := &http.Transport{MaxIdleConnsPerHost: conc, MaxConnsPerHost: conc, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	var (
		mu     sync.Mutex
		counts = map[int]int{}
		next   int
		wg     sync.WaitGroup
		errs   []error
		waited time.Duration
	)
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= n {
					return
				}
				req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, urls[i%len(urls)], nil)
				t0 := time.Now()
				resp, err := client.Do(req)
				d := time.Since(t0)
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				mu.Lock()
				counts[resp.StatusCode]++
				waited += d
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("load: %d requests failed, first: %v", len(errs), errs[0])
	}
	return counts, waited / time.Duration(max(n, 1))
}

// collect drains m until pid's server+client exchanges reach want or
// timeout passes, and merges the intervals.
func collect(t testing.TB, m *Monitor, pid int, want uint64, timeout time.Duration) *ProcessHTTP {
	t.Helper()
	acc := &ProcessHTTP{PID: pid}
	deadline := time.Now().Add(timeout)
	for {
		if ph := m.Drain()[pid]; ph != nil {
			acc.Server = mergeSeries(acc.Server, ph.Server)
			acc.Client = mergeSeries(acc.Client, ph.Client)
		}
		if total(acc.Server)+total(acc.Client) >= want || time.Now().After(deadline) {
			return acc
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func mergeSeries(dst, src []Series) []Series {
	for _, s := range src {
		found := false
		for i := range dst {
			d := &dst[i]
			if d.Method == s.Method && d.Status == s.Status && d.Path == s.Path {
				d.Count += s.Count
				d.Sum += s.Sum
				d.Min = min(d.Min, s.Min)
				d.Max = max(d.Max, s.Max)
				for b := range d.BucketCounts {
					d.BucketCounts[b] += s.BucketCounts[b]
				}
				found = true
				break
			}
		}
		if !found {
			dst = append(dst, s)
		}
	}
	sortSeries(dst)
	return dst
}

func total(series []Series) uint64 {
	var n uint64
	for _, s := range series {
		n += s.Count
	}
	return n
}

// byKey sums counts per "METHOD STATUS PATH".
func byKey(series []Series) map[string]uint64 {
	out := map[string]uint64{}
	for _, s := range series {
		out[fmt.Sprintf("%s %d %s", s.Method, s.Status, s.Path)] += s.Count
	}
	return out
}

func logStats(t testing.TB, m *Monitor) Stats {
	t.Helper()
	st, err := m.Stats()
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	t.Logf("stats: %+v (attachment %s)", st, m.Attachment())
	return st
}
