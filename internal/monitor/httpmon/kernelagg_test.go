//go:build linux

package httpmon

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/contprof/contprof/internal/output/histogram"
)

// The histograms the kernel counts equal those built from the same
// exchanges one by one (the observer's records), on both sides, in every
// attachment flavour; a monitored process that is not observed sends no
// record but is counted all the same.
func TestKernelAggregatesMatchExchanges(t *testing.T) {
	requireEBPF(t)
	for _, attach := range []string{AttachSock, AttachTracepoint, AttachRawTracepoint} {
		t.Run("attach="+attach, func(t *testing.T) {
			// /work takes 6 ms (past the 5 ms bound) and every fifth fails.
			srv := startServer(t, goServer(t), "-sleep", "6ms")
			self := os.Getpid()
			m := openMonitor(t, Options{Attach: attach})
			var (
				mu   sync.Mutex
				perX = map[string]*histogram.Histogram{}
			)
			m.SetObserver(func(ex Exchange) {
				role := "server"
				if ex.Client {
					role = "client"
				}
				k := fmt.Sprintf("%d %s %s %d %s", ex.PID, role, ex.Method, ex.Status, ex.Path)
				mu.Lock()
				defer mu.Unlock()
				if perX[k] == nil {
					perX[k] = histogram.New(Bounds[:])
				}
				perX[k].Record(ex.Duration.Seconds())
			})
			if err := m.SetPIDs([]int{srv.pid(), self}); err != nil {
				t.Fatal(err)
			}
			if err := m.SetObservedPIDs([]int{srv.pid(), self}); err != nil {
				t.Fatal(err)
			}
			m.Drain() // start clean

			urls := []string{srv.url + "/work", srv.url + "/status/404", srv.url + "/a/b?x=1", srv.url + "/",
				srv.url + "/" + strings.Repeat("l", 150), srv.url + "/work?slow"}
			const n = 300
			load(t, urls, n, 4)
			kernel := drainAll(t, m, map[int]uint64{srv.pid(): n, self: n}, 5*time.Second)
			m.Drain() // the observer has seen everything up to here
			mu.Lock()
			defer mu.Unlock()
			if len(kernel) != len(perX) {
				t.Errorf("kernel series %v, per-exchange series %v", mapKeys(kernel), mapKeys(perX))
			}
			var count uint64
			for k, want := range perX {
				got := kernel[k]
				if got == nil {
					t.Errorf("%s: not counted in the kernel", k)
					continue
				}
				count += got.Count
				if got.Count != want.Count || got.Min != want.Min || got.Max != want.Max ||
					math.Abs(got.Sum-want.Sum) > 1e-9*float64(want.Count) || fmt.Sprint(got.BucketCounts) != fmt.Sprint(want.BucketCounts) {
					t.Errorf("%s: kernel %+v, per exchange %+v", k, *got, *want)
				}
			}
			if count < 2*n-1 { // one client exchange in ~45000 may be lost on loopback (see BenchmarkExchangeCost)
				t.Errorf("%d exchanges compared, want %d", count, 2*n)
			}
			t.Logf("%d series, %d exchanges equal", len(perX), count)

			// Not observed: counted, but no record.
			if err := m.SetObservedPIDs([]int{srv.pid()}); err != nil {
				t.Fatal(err)
			}
			clear(perX)
			mu.Unlock()
			load(t, urls[1:2], 20, 1)
			kernel = drainAll(t, m, map[int]uint64{srv.pid(): 20, self: 20}, 5*time.Second)
			m.Drain()
			mu.Lock()
			for k, h := range perX {
				if strings.HasPrefix(k, fmt.Sprint(self)+" ") {
					t.Errorf("%s: %d records of a process not observed", k, h.Count)
				}
			}
			ks := fmt.Sprintf("%d server GET 404 /status/404", srv.pid())
			kc := fmt.Sprintf("%d client GET 404 /status/404", self)
			if kernel[kc] == nil || kernel[kc].Count != 20 || kernel[ks] == nil || kernel[ks].Count != 20 || perX[ks] == nil || perX[ks].Count != 20 {
				t.Errorf("after unobserving the client: kernel %v, records %v; want 20 each side in the kernel, 20 server records", mapKeys(kernel), mapKeys(perX))
			}
		})
	}
}

// drainAll drains m until each PID's exchanges reach want or timeout
// passes, and merges the series by "PID role METHOD STATUS PATH".
func drainAll(t *testing.T, m *Monitor, want map[int]uint64, timeout time.Duration) map[string]*histogram.Histogram {
	t.Helper()
	out := map[string]*histogram.Histogram{}
	seen := map[int]uint64{}
	deadline := time.Now().Add(timeout)
	for {
		for pid, ph := range m.Drain() {
			for role, series := range map[string][]Series{"server": ph.Server, "client": ph.Client} {
				for _, s := range series {
					k := fmt.Sprintf("%d %s %s %d %s", pid, role, s.Method, s.Status, s.Path)
					if out[k] == nil {
						out[k] = histogram.New(Bounds[:])
					}
					out[k].Merge(&s.Histogram)
					seen[pid] += s.Count
				}
			}
		}
		done := true
		for pid, n := range want {
			done = done && seen[pid] >= n
		}
		if done || time.Now().After(deadline) {
			return out
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func mapKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// The socket flavour takes a TCP receive's time from the socket's clock
// cache (refreshed by that receive) instead of reading the clock: the
// durations it measures equal those of the tracepoint flavour, which reads
// the clock, on the same exchanges. A cache not refreshed by the receive
// would date the request back to the previous exchange (the client pauses
// 3 ms between requests).
func TestSockClockMatchesSyscallClock(t *testing.T) {
	requireEBPF(t)
	srv := startServer(t, goServer(t), "-sleep", "1ms")
	self := os.Getpid()
	var mu sync.Mutex
	got := map[string][]Exchange{}
	for _, attach := range []string{AttachSock, AttachTracepoint} {
		m := openMonitor(t, Options{Attach: attach})
		m.SetObserver(func(ex Exchange) {
			mu.Lock()
			got[attach] = append(got[attach], ex)
			mu.Unlock()
		})
		if err := m.SetPIDs([]int{srv.pid(), self}); err != nil {
			t.Fatal(err)
		}
		if err := m.SetObservedPIDs([]int{srv.pid(), self}); err != nil {
			t.Fatal(err)
		}
		defer m.Drain()
	}
	tr := &http.Transport{MaxConnsPerHost: 1}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	const n = 50
	for range n {
		resp, err := client.Get(srv.url + "/work")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		time.Sleep(3 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // the readers poll every 100 ms
	mu.Lock()
	defer mu.Unlock()
	for _, client := range []bool{false, true} {
		var durs [2][]time.Duration
		for i, attach := range []string{AttachSock, AttachTracepoint} {
			for _, ex := range got[attach] {
				if ex.Client == client {
					durs[i] = append(durs[i], ex.Duration)
				}
			}
		}
		if len(durs[0]) != n || len(durs[1]) != n {
			t.Fatalf("client %v: %d and %d exchanges (sock, tracepoint), want %d each", client, len(durs[0]), len(durs[1]), n)
		}
		var worst time.Duration
		for i := range n {
			worst = max(worst, (durs[0][i] - durs[1][i]).Abs())
		}
		t.Logf("client %v: largest difference %v", client, worst)
		if worst > time.Millisecond {
			t.Errorf("client %v: the flavours' durations differ by up to %v", client, worst)
		}
	}
}
