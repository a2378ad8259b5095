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

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// BenchmarkOverhead measures what a running network task costs a Go HTTP
// server under wrk load: rounds without and with the task alternate. It
// reports
// the throughput ratio and asserts nothing. Run:
//
//	go test -run ^$ -bench Overhead -benchtime 1x -v -timeout 10m ./internal/profiler/netprof/
//
// CONTPROF_OVERHEAD_DURATION (default 10s) and CONTPROF_OVERHEAD_ROUNDS
// (default 3) and CONTPROF_OVERHEAD_COLLECT (how often the task collects,
// default 1s: ten times the receiver's default pace) tune it. Besides throughput it reports the CPU the task
// used in user space and the run time of its BPF programs (kernel
// statistics), which are steadier figures on a shared machine. Besides keep-alive load it runs the worst case for
// the tracepoints, a new connection per request ("Connection: close").
func BenchmarkOverhead(b *testing.B) {
	// One measured run, however many iterations the framework asks for:
	// the figures are the report, not ns/op.
	overhead(b)
}

func overhead(t testing.TB) {
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
	every := time.Second
	if v := os.Getenv("CONTPROF_OVERHEAD_COLLECT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("CONTPROF_OVERHEAD_COLLECT: %q is not a positive duration", v)
		}
		every = d
	}
	port := freePort(t)
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	server := startPeer(t, "", nil, "http", "127.0.0.1:"+strconv.Itoa(port))
	server.expect(t, "listening", 10*time.Second)

	// Kernel run-time statistics of the programs, while this test runs.
	statsOn, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		t.Logf("no BPF run-time statistics: %v", err)
	} else {
		defer statsOn.Close()
	}
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
		var cpu, wall time.Duration
		var progTime time.Duration
		var progRuns uint64
		for r := 0; r < rounds; r++ {
			base = append(base, wrk(t, load.args, dur, url))
			cpu0, wall0 := selfCPU(), time.Now()
			task, err := Start(Options{PIDs: []int{server.pid()}})
			if err != nil {
				t.Fatal(err)
			}
			stop := make(chan struct{})
			var wg sync.WaitGroup
			var mu sync.Mutex
			wg.Go(func() {
				tick := time.NewTicker(every)
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
			for _, p := range []*ebpf.Program{task.objs.TcpSetState, task.objs.TcpRetransmit, task.objs.BtfSetState, task.objs.BtfRetransmit} {
				if st, err := p.Stats(); err == nil {
					progTime += st.Runtime
					progRuns += st.RunCount
				}
			}
			if err := task.Close(); err != nil {
				t.Fatal(err)
			}
			cpu += selfCPU() - cpu0
			wall += time.Since(wall0)
		}
		sort.Slice(collects, func(i, j int) bool { return collects[i] < collects[j] })
		var p50 time.Duration
		if len(collects) > 0 {
			p50 = collects[len(collects)/2]
		}
		perRun := time.Duration(0)
		if progRuns > 0 {
			perRun = progTime / time.Duration(progRuns)
		}
		t.Logf("%s: requests/s without task %v, with task %v; ratio of medians %.3f, of means %.3f",
			load.name, fmtRates(base), fmtRates(with), median(with)/median(base), mean(with)/mean(base))
		t.Logf("%s: task CPU in user space %.1f%% of one CPU (Collect every %v, p50 %v); BPF programs ran %d times, %v each, %.2f%% of one CPU; last round %d opens, %d closes, %d events lost",
			load.name, 100*cpu.Seconds()/wall.Seconds(), every, p50, progRuns, perRun, 100*progTime.Seconds()/wall.Seconds(), stats.Opens, stats.Closes, stats.EventsLost)
	}
}

// selfCPU is the CPU time this process used so far.
func selfCPU() time.Duration {
	var ru unix.Rusage
	_ = unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func mean(v []float64) float64 {
	var s float64
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

var wrkRate = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)

func wrk(t testing.TB, args []string, d time.Duration, url string) float64 {
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
