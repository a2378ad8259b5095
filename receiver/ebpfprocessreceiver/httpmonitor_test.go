package ebpfprocessreceiver

import (
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/contprof/contprof/internal/monitor/httpmon"
	"github.com/contprof/contprof/internal/testhelper/proftest"
	"github.com/contprof/contprof/internal/testhelper/workload"
)

func requireEBPF(t testing.TB) {
	t.Helper()
	proftest.RequireEBPF(t, "the HTTP monitor")
}

func newTestHTTPMonitor(cfg HTTPConfig, hub *exchangeHub) *httpMonitor {
	return &httpMonitor{cfg: cfg, logger: zap.NewNop(), hub: hub, reportErr: func(error) {}}
}

// startHTTPServer runs the Go test server on a free port and returns its
// PID and base URL.
func startHTTPServer(t *testing.T) (int, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	p := workload.Start(t, workload.BuildGo(t, "../httpservers/goserver"), "-addr", addr, "-sleep", "1ms")
	return p.PID(), "http://" + addr
}

// A network task gets the HTTP monitor for its processes whatever
// triggered it (no policy uses HTTP here): loaded at the first acquire,
// the exchanges of the task's process reach the hub, and it is unloaded
// when the last task releases it; the scraper's processes get no HTTP
// metrics from it meanwhile.
func TestHTTPMonitorForNetworkTasks(t *testing.T) {
	requireEBPF(t)
	pid, url := startHTTPServer(t)
	var hub exchangeHub
	seen := make(chan httpmon.Exchange, 1000)
	defer hub.subscribe(func(ex httpmon.Exchange) {
		select {
		case seen <- ex:
		default:
		}
	})()
	h := newTestHTTPMonitor(HTTPConfig{Monitor: HTTPMonitorAuto, MaxPathsPerProcess: 100}, &hub)
	defer h.close()

	if byPID := h.sync(time.Now(), nil, []int{pid}); byPID != nil || h.mon != nil {
		t.Fatal("monitor loaded with no HTTP policy and no network task")
	}
	release1 := h.acquire([]int{pid})
	release2 := h.acquire([]int{pid})
	if h.mon == nil {
		t.Fatal("monitor not loaded for a network task")
	}
	if got := h.mon.PIDs(); len(got) != 1 || got[0] != pid {
		t.Fatalf("monitored PIDs %v, want [%d]", got, pid)
	}

	deadline := time.Now().Add(10 * time.Second)
	for found := false; !found; {
		if time.Now().After(deadline) {
			t.Fatal("no exchange of the task's process reached the hub within 10s")
		}
		resp, err := http.Get(url + "/work")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		select {
		case ex := <-seen:
			found = ex.PID == pid && ex.Path == "/work" && !ex.Client
		case <-time.After(200 * time.Millisecond):
		}
	}
	// The scraper's cycle keeps it loaded for the tasks but hands it no
	// HTTP metrics: no policy asked for them.
	if byPID := h.sync(time.Now(), nil, []int{pid, os.Getpid()}); byPID != nil || h.mon == nil {
		t.Fatalf("scrape during a network task: %d processes with HTTP metrics, loaded %v; want none, loaded", len(byPID), h.mon != nil)
	}
	if got := h.mon.PIDs(); len(got) != 1 || got[0] != pid {
		t.Fatalf("monitored PIDs %v during the scrape, want only the task's [%d]", got, pid)
	}

	release1()
	release1() // twice is fine
	if h.mon == nil {
		t.Fatal("monitor unloaded while a network task still holds it")
	}
	release2()
	if h.mon != nil {
		t.Fatal("monitor still loaded after the last network task released it")
	}
}

// http.monitor "never" keeps the monitor unloaded for network tasks too.
func TestHTTPMonitorNeverForNetworkTasks(t *testing.T) {
	h := newTestHTTPMonitor(HTTPConfig{Monitor: HTTPMonitorNever, MaxPathsPerProcess: 100}, nil)
	defer h.close()
	release := h.acquire([]int{os.Getpid()})
	defer release()
	if h.mon != nil {
		t.Fatal(`monitor loaded for a network task under http.monitor "never"`)
	}
}

// Only the network tasks' processes send their exchanges one by one (to
// the hub, for per-peer attribution); every monitored process gets its
// histograms, counted in the kernel, and a task's process keeps them while
// observed and after the task ends.
func TestHTTPMonitorObservesOnlyTaskProcesses(t *testing.T) {
	requireEBPF(t)
	taskPID, taskURL := startHTTPServer(t)
	otherPID, otherURL := startHTTPServer(t)
	var hub exchangeHub
	var mu sync.Mutex
	seen := map[int]int{}
	defer hub.subscribe(func(ex httpmon.Exchange) {
		mu.Lock()
		seen[ex.PID]++
		mu.Unlock()
	})()
	h := newTestHTTPMonitor(HTTPConfig{Monitor: HTTPMonitorAlways, MaxPathsPerProcess: 100}, &hub)
	defer h.close()
	pids := []int{min(taskPID, otherPID), max(taskPID, otherPID)}
	h.sync(time.Now(), nil, pids)
	release := h.acquire([]int{taskPID})

	get := func(url string, n int) {
		for range n {
			resp, err := http.Get(url + "/work")
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	counted := func() map[int]uint64 {
		out := map[int]uint64{}
		for pid, ph := range h.sync(time.Now(), nil, pids) {
			for _, s := range ph.Server {
				out[pid] += s.Count
			}
		}
		return out
	}
	get(taskURL, 10)
	get(otherURL, 10)
	got := counted()
	mu.Lock()
	observed := maps.Clone(seen)
	mu.Unlock()
	if got[taskPID] != 10 || got[otherPID] != 10 {
		t.Errorf("histogram counts %v, want 10 for the task's process %d and 10 for the other %d", got, taskPID, otherPID)
	}
	if observed[taskPID] != 10 || observed[otherPID] != 0 {
		t.Errorf("exchanges at the hub %v, want 10 of the task's process %d and none of %d", observed, taskPID, otherPID)
	}

	release()
	get(taskURL, 5)
	got = counted()
	mu.Lock()
	defer mu.Unlock()
	if got[taskPID] != 5 || seen[taskPID] != 10 {
		t.Errorf("after the task: histogram count %d (want 5), exchanges at the hub %d (want still 10)", got[taskPID], seen[taskPID])
	}
}
