//go:build linux

package httpmon

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/contprof/contprof/internal/testhelper/benchenv"
)

// BenchmarkOverhead measures what monitoring costs a Go HTTP server under wrk
// keep-alive load: rounds without and with the monitor alternate, then one
// more monitored round reads the programs' own run time. It reports
// figures and asserts none. Run:
//
//	go test -run ^$ -bench Overhead -benchtime 1x -v -timeout 10m ./internal/monitor/httpmon/
//
// CONTPROF_OVERHEAD_DURATION (default 10s), CONTPROF_OVERHEAD_ROUNDS
// (default 3), CONTPROF_OVERHEAD_ATTACH (sock | tracepoint | raw_tracepoint),
// CONTPROF_OVERHEAD_WRK (default "-t2 -c50") tune it, and
// CONTPROF_OVERHEAD_IDLE=1 adds rounds with the programs attached but no
// process monitored.
func BenchmarkOverhead(b *testing.B) {
	// One measured run, however many iterations the framework asks for:
	// the figures are the report, not ns/op.
	overhead(b)
}

func overhead(t testing.TB) {
	requireEBPF(t)
	if _, err := exec.LookPath("wrk"); err != nil {
		t.Fatal("wrk not installed")
	}
	dur := benchenv.Duration(t, "CONTPROF_OVERHEAD_DURATION", 10*time.Second)
	rounds := benchenv.Int(t, "CONTPROF_OVERHEAD_ROUNDS", 3)
	wrkArgs := strings.Fields(os.Getenv("CONTPROF_OVERHEAD_WRK"))
	if len(wrkArgs) == 0 {
		wrkArgs = []string{"-t2", "-c50"}
	}
	attach := os.Getenv("CONTPROF_OVERHEAD_ATTACH")

	srv := startServer(t, goServer(t), "-sleep", "0s")
	url := srv.url + "/hello?id=1"
	runWrk := func() wrkResult {
		args := append(append([]string{}, wrkArgs...), "--latency", "-d"+dur.String(), url)
		cmd := exec.Command("wrk", args...)
		srvBefore := procCPU(t, srv.pid())
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("wrk %v: %v\n%s", args, err, out)
		}
		r := parseWrk(t, string(out))
		r.serverCPU = procCPU(t, srv.pid()) - srvBefore
		r.wrkCPU = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		return r
	}
	// monitored runs wrk with the monitor loaded and drained every second
	// as the receiver would, and returns the monitor's CPU time.
	monitored := func(withStats, addPID bool) (wrkResult, time.Duration, time.Duration, uint64) {
		m, err := Open(Options{Attach: attach})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		if addPID {
			if err := m.AddPID(srv.pid()); err != nil {
				t.Fatal(err)
			}
		}
		var (
			seen uint64
			mu   sync.Mutex
			stop = make(chan struct{})
			wg   sync.WaitGroup
		)
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				for _, ph := range m.Drain() {
					mu.Lock()
					seen += total(ph.Server)
					mu.Unlock()
				}
			}
		}()
		runBefore, countBefore := attachedRunTime(t, m)
		cpuBefore := selfCPU(t)
		r := runWrk()
		userCPU := selfCPU(t) - cpuBefore
		runAfter, countAfter := attachedRunTime(t, m)
		bpfCPU := runAfter - runBefore
		if withStats {
			t.Logf("  BPF program: %d runs (%.1f per exchange), %.0f ns per run", countAfter-countBefore,
				float64(countAfter-countBefore)/float64(max(r.requests, 1)), float64(bpfCPU)/float64(max(countAfter-countBefore, 1)))
		}
		close(stop)
		wg.Wait()
		for _, ph := range m.Drain() {
			seen += total(ph.Server)
		}
		st, _ := m.Stats()
		t.Logf("  monitor (%s): saw %d exchanges, stats %+v", m.Attachment(), seen, st)
		if addPID && seen < r.requests {
			t.Errorf("monitor saw %d exchanges, wrk completed %d", seen, r.requests)
		}
		if !withStats {
			bpfCPU = 0
		}
		return r, userCPU, bpfCPU, seen
	}

	// The idle arm has the programs attached but no PID to monitor: what
	// every process on the host pays for the syscall tracepoints alone.
	idleArm := os.Getenv("CONTPROF_OVERHEAD_IDLE") == "1"
	runWrk() // warm up
	var base, mon, idle []wrkResult
	var userCPU time.Duration
	for i := range rounds {
		b := runWrk()
		t.Logf("round %d baseline:  %.0f req/s, p99 %v, CPU %.1f µs/request", i+1, b.rps, b.p99, b.cpuPerRequest()/1e3)
		r, u, _, _ := monitored(false, true)
		t.Logf("round %d monitored: %.0f req/s, p99 %v, CPU %.1f µs/request, monitor user-space CPU %v", i+1, r.rps, r.p99, r.cpuPerRequest()/1e3, u)
		base, mon, userCPU = append(base, b), append(mon, r), userCPU+u
		if idleArm {
			r, _, _, _ := monitored(false, false)
			t.Logf("round %d idle:      %.0f req/s, p99 %v, CPU %.1f µs/request", i+1, r.rps, r.p99, r.cpuPerRequest()/1e3)
			idle = append(idle, r)
		}
	}
	if idleArm {
		t.Logf("idle (attached, no PID)/baseline median req/s: %.3f", median(idle, func(w wrkResult) float64 { return w.rps })/median(base, func(w wrkResult) float64 { return w.rps }))
	}

	// One more monitored round with kernel BPF run-time accounting on (it
	// costs a little itself, so it is kept out of the ratios).
	statsOff, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		t.Fatalf("enable BPF run-time stats: %v", err)
	}
	r, u, bpf, seen := monitored(true, true)
	statsOff.Close()

	cpuRatio := median(mon, wrkResult.cpuPerRequest) / median(base, wrkResult.cpuPerRequest)
	rpsRatio := median(mon, func(w wrkResult) float64 { return w.rps }) / median(base, func(w wrkResult) float64 { return w.rps })
	p99Ratio := median(mon, func(w wrkResult) float64 { return float64(w.p99) }) / median(base, func(w wrkResult) float64 { return float64(w.p99) })
	secs := r.duration.Seconds()
	summary := fmt.Sprintf("HTTP monitor overhead (%d rounds of %v, wrk %s, Go server):\n"+
		"  throughput monitored/baseline (median req/s): %.3f  [baseline %v / monitored %v]\n"+
		"  p99 latency monitored/baseline (median):      %.3f\n"+
		"  server+wrk CPU per request monitored/baseline (median): %.3f  [%.1f / %.1f µs]\n"+
		"  monitor CPU at %.0f req/s: user space %.2f%% of a core, BPF programs %.2f%% of a core (%.0f ns per exchange)\n"+
		"  user-space CPU over the %d monitored rounds: %.2f%% of a core",
		rounds, dur, strings.Join(wrkArgs, " "),
		rpsRatio, rpsList(base), rpsList(mon),
		p99Ratio,
		cpuRatio, median(base, wrkResult.cpuPerRequest)/1e3, median(mon, wrkResult.cpuPerRequest)/1e3,
		r.rps, 100*u.Seconds()/secs, 100*bpf.Seconds()/secs, float64(bpf.Nanoseconds())/float64(max(seen, 1)),
		rounds, 100*userCPU.Seconds()/(secs*float64(rounds)))
	t.Log("\n" + summary)
	fmt.Println(summary)
}

type wrkResult struct {
	rps      float64
	p99      time.Duration
	requests uint64
	duration time.Duration
	// CPU time the server and wrk used: per request it is less disturbed
	// by other load on the host than throughput is.
	serverCPU, wrkCPU time.Duration
}

// cpuPerRequest is server plus wrk CPU time per completed request.
func (w wrkResult) cpuPerRequest() float64 {
	return float64(w.serverCPU+w.wrkCPU) / float64(max(w.requests, 1))
}

var (
	wrkRPS     = regexp.MustCompile(`Requests/sec:\s+([\d.]+)`)
	wrkP99     = regexp.MustCompile(`\s99%\s+([\d.]+)(us|ms|s)\b`)
	wrkTotal   = regexp.MustCompile(`(\d+) requests in ([\d.]+)(us|ms|s|m)\b`)
	wrkSockErr = regexp.MustCompile(`Socket errors|Non-2xx`)
)

func parseWrk(t testing.TB, out string) wrkResult {
	t.Helper()
	rps, p99, tot := wrkRPS.FindStringSubmatch(out), wrkP99.FindStringSubmatch(out), wrkTotal.FindStringSubmatch(out)
	if rps == nil || p99 == nil || tot == nil {
		t.Fatalf("cannot parse wrk output:\n%s", out)
	}
	if wrkSockErr.MatchString(out) {
		t.Logf("wrk reported errors:\n%s", out)
	}
	var r wrkResult
	r.rps, _ = strconv.ParseFloat(rps[1], 64)
	r.p99 = unitDuration(t, p99[1], p99[2])
	r.requests, _ = strconv.ParseUint(tot[1], 10, 64)
	r.duration = unitDuration(t, tot[2], tot[3])
	return r
}

func unitDuration(t testing.TB, v, unit string) time.Duration {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		t.Fatalf("wrk number %q: %v", v, err)
	}
	switch unit {
	case "us":
		f *= 1e3
	case "ms":
		f *= 1e6
	case "s":
		f *= 1e9
	case "m":
		f *= 60e9
	}
	return time.Duration(f)
}

func median(rs []wrkResult, f func(wrkResult) float64) float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	return benchenv.Median(v)
}

func rpsList(rs []wrkResult) string {
	var s []string
	for _, r := range rs {
		s = append(s, strconv.FormatFloat(r.rps, 'f', 0, 64))
	}
	return strings.Join(s, " ")
}

// selfCPU is this process's user+system CPU time (threads included,
// children not): the monitor's reader and Drain calls.
func selfCPU(t testing.TB) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procCPU is the user+system CPU time pid has used.
func procCPU(t testing.TB, pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the parenthesised command: state is field 3, utime 14.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	const ticks = 100 // USER_HZ
	return time.Duration(ut+st) * time.Second / ticks
}

// progRunTime is the program's cumulative run time and run count; zero
// unless BPF run-time stats are enabled.
func progRunTime(t testing.TB, p *ebpf.Program) (time.Duration, uint64) {
	st, err := p.Stats()
	if err != nil {
		t.Fatal(err)
	}
	return st.Runtime, st.RunCount
}

// attachedRunTime sums the run time and run count of the programs of the
// monitor's attachment flavour.
func attachedRunTime(t testing.TB, m *Monitor) (time.Duration, uint64) {
	progs := []*ebpf.Program{m.objs.Program(m.Attachment() == AttachRawTracepoint)}
	if m.Attachment() == AttachSock {
		progs = progs[:0]
		for _, p := range m.objs.SockPrograms() {
			progs = append(progs, p)
		}
	}
	var run time.Duration
	var n uint64
	for _, p := range progs {
		r, c := progRunTime(t, p)
		run += r
		n += c
	}
	return run, n
}
