//go:build linux

package netprof

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestOverhead measures what a running network task costs a Go HTTP
// server under wrk load: rounds without and with the task alternate (the
// task collecting every second, ten times its default pace). It reports
// the throughput ratio and asserts nothing. Run:
//
//	CONTPROF_OVERHEAD=1 go test -run TestOverhead -v -timeout 10m ./internal/netprof/
//
// CONTPROF_OVERHEAD_DURATION (default 10s) and CONTPROF_OVERHEAD_ROUNDS
// (default 3) tune it. Besides keep-alive load it runs the worst case for
// the tracepoints, a new connection per request ("Connection: close").
func TestOverhead(t *testing.T) {
	if os.Getenv("CONTPROF_OVERHEAD") != "1" {
		t.Skip("set CONTPROF_OVERHEAD=1 to run the overhead benchmark")
	}
	requireRoot(t)
	if _, err := exec.LookPath("wrk"); err != nil {
		t.Fatal("wrk is not installed")
	}
	dur := 10 * time.Second
	if v := os.Getenv("CONTPROF_OVERHEAD_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("CONTPROF_OVERHEAD_DURATION: %v", err)
		}
		dur = d
	}
	rounds := 3
	if v := os.Getenv("CONTPROF_OVERHEAD_ROUNDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("CONTPROF_OVERHEAD_ROUNDS: %q is not a positive integer", v)
		}
		rounds = n
	}
	port := freePort(t)
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	server := startPeer(t, "", nil, "http", "127.0.0.1:"+strconv.Itoa(port))
	server.expect(t, "listening", 10*time.Second)

	for _, load := range []struct {
		name string
		args []string
	}{
		{"keep-alive", []string{"-t2", "-c50"}},
		{"connection per request", []string{"-t2", "-c50", "-H", "Connection: close"}},
	} {
		var base, with []float64
		var collects []time.Duration
		var stats Stats
		for r := 0; r < rounds; r++ {
			base = append(base, wrk(t, load.args, dur, url))
			task, err := Start(Options{PIDs: []int{server.pid()}})
			if err != nil {
				t.Fatal(err)
			}
			stop := make(chan struct{})
			var wg sync.WaitGroup
			var mu sync.Mutex
			wg.Go(func() {
				tick := time.NewTicker(time.Second)
				defer tick.Stop()
				for {
					select {
					case <-stop:
						return
					case <-tick.C:
						s := time.Now()
						task.Collect(s)
						mu.Lock()
						collects = append(collects, time.Since(s))
						mu.Unlock()
					}
				}
			})
			with = append(with, wrk(t, load.args, dur, url))
			close(stop)
			wg.Wait()
			stats = task.Stats()
			if err := task.Close(); err != nil {
				t.Fatal(err)
			}
		}
		sort.Slice(collects, func(i, j int) bool { return collects[i] < collects[j] })
		var p50 time.Duration
		if len(collects) > 0 {
			p50 = collects[len(collects)/2]
		}
		t.Logf("%s: requests/s without task %v, with task %v; ratio of medians %.3f; Collect p50 %v; last round %d opens, %d closes, %d events lost",
			load.name, fmtRates(base), fmtRates(with), median(with)/median(base), p50, stats.Opens, stats.Closes, stats.EventsLost)
	}
}

var wrkRate = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)

func wrk(t *testing.T, args []string, d time.Duration, url string) float64 {
	t.Helper()
	argv := append(append([]string{}, args...), "-d", strconv.Itoa(int(d.Seconds()))+"s", url)
	out, err := exec.Command("wrk", argv...).CombinedOutput()
	if err != nil {
		t.Fatalf("wrk %s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	m := wrkRate.FindSubmatch(out)
	if m == nil {
		t.Fatalf("wrk output has no Requests/sec:\n%s", out)
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

func fmtRates(v []float64) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = strconv.FormatFloat(x, 'f', 0, 64)
	}
	return "[" + strings.Join(parts, " ") + "]"
}
