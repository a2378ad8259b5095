//go:build linux

package httpmon

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/contprof/contprof/internal/testhelper/benchenv"
)

// BenchmarkExchangeCost measures what monitoring costs per HTTP exchange
// when both ends are traced: a hello-world Go server (testdata/httpservers/
// goserver) and a Go client (goclient) over two keep-alive connections, one
// request at a time on each. The figure is the CPU time of server plus
// client (all their threads, from /proc/PID/task/*/schedstat, so in ns)
// per exchange. In each round an unmonitored arm and a monitored arm (both
// PIDs added) run one after the other, in alternating order; then one more
// monitored arm runs with kernel BPF run-time stats on and reports the
// programs' own time per exchange. It reports figures and asserts only
// that the monitor saw every exchange on both sides. Run:
//
//	go test -run '^$' -bench ExchangeCost -benchtime 1x -v ./internal/monitor/httpmon/
//
// CONTPROF_EXCHANGE_ROUNDS (default 5), CONTPROF_EXCHANGE_DURATION (default
// 4s a arm) and CONTPROF_OVERHEAD_ATTACH (sock | tracepoint |
// raw_tracepoint) tune it; CONTPROF_EXCHANGE_IDLE=1 adds an arm with the
// programs attached but neither process monitored.
func BenchmarkExchangeCost(b *testing.B) {
	requireEBPF(b)
	rounds := benchenv.Int(b, "CONTPROF_EXCHANGE_ROUNDS", 5)
	dur := benchenv.Duration(b, "CONTPROF_EXCHANGE_DURATION", 4*time.Second)
	attach := os.Getenv("CONTPROF_OVERHEAD_ATTACH")

	srv := startServer(b, goServer(b), "-sleep", "0s")
	client := goClient(b)
	url := srv.url + "/hello?id=1"

	// arm runs the client for dur; with monitored set, under a monitor
	// that traces both processes (drained every second, as the receiver
	// does); with attached set, under a monitor that traces neither (the
	// programs run and return at the PID filter). withStats also reads the
	// programs' run time.
	arm := func(monitored, attached, withStats bool) exchangeRun {
		var m *Monitor
		if monitored || attached {
			var err error
			if m, err = Open(Options{Attach: attach}); err != nil {
				b.Fatal(err)
			}
			defer m.Close()
		}
		c := startClient(b, client, url, dur)
		defer c.close()
		var (
			seen       [2]uint64 // server, client exchanges
			stop, done = make(chan struct{}), make(chan struct{})
			mu         sync.Mutex
			runBefore  time.Duration
			cntBefore  uint64
		)
		count := func() {
			for pid, ph := range m.Drain() {
				mu.Lock()
				if pid == srv.pid() {
					seen[0] += total(ph.Server)
				} else if pid == c.pid() {
					seen[1] += total(ph.Client)
				}
				mu.Unlock()
			}
		}
		if monitored {
			for _, pid := range []int{srv.pid(), c.pid()} {
				if err := m.AddPID(pid); err != nil {
					b.Fatal(err)
				}
			}
			go func() {
				defer close(done)
				tick := time.NewTicker(time.Second)
				defer tick.Stop()
				for {
					select {
					case <-stop:
						return
					case <-tick.C:
						count()
					}
				}
			}()
		}
		if m != nil {
			runBefore, cntBefore = attachedRunTime(b, m)
		}
		// Loading the monitor (BTF parsing) leaves garbage: collect it now,
		// in every arm, rather than while the client runs.
		runtime.GC()
		self := selfCPU(b)
		cpu := threadsCPU(b, srv.pid()) + threadsCPU(b, c.pid())
		r := c.run()
		r.cpu = threadsCPU(b, srv.pid()) + threadsCPU(b, c.pid()) - cpu
		r.monitorCPU = selfCPU(b) - self
		if m != nil {
			run, cnt := attachedRunTime(b, m)
			if withStats {
				r.bpf, r.bpfRuns = run-runBefore, cnt-cntBefore
				for name, p := range m.objs.SockPrograms() {
					if rt, n := progRunTime(b, p); m.Attachment() == AttachSock {
						b.Logf("  %s: %d runs, %.0f ns total per exchange (%.0f ns per run, since load)", name, n,
							float64(rt)/float64(max(r.exchanges, 1)), float64(rt)/float64(max(n, 1)))
					}
				}
			}
		}
		if monitored {
			close(stop)
			<-done
			count()
			// A client exchange starts when the send of its request
			// returns; on loopback the server can answer, and the client's
			// reader take the response, before the sending thread's program
			// has run: then that exchange is lost (an unmatched response,
			// then an unmatched request). A few in 10⁴ at most here.
			if lost := 2*r.exchanges - min(seen[0], r.exchanges) - min(seen[1], r.exchanges); seen[0] > r.exchanges || seen[1] > r.exchanges || lost > r.exchanges/1000 {
				st, _ := m.Stats()
				b.Errorf("monitor (%s) saw %d server and %d client exchanges, the client completed %d (stats %+v)",
					m.Attachment(), seen[0], seen[1], r.exchanges, st)
			}
			r.attach = m.Attachment()
		}
		return r
	}

	idleArm := os.Getenv("CONTPROF_EXCHANGE_IDLE") == "1"
	arm(false, false, false) // warm up
	var base, mon, idle []exchangeRun
	for i := range rounds {
		var bl, mo, id exchangeRun
		if i%2 == 0 {
			bl, mo = arm(false, false, false), arm(true, false, false)
		} else {
			mo, bl = arm(true, false, false), arm(false, false, false)
		}
		b.Logf("round %d: baseline %.2f µs/exchange (%d), monitored (%s) %.2f µs/exchange (%d): %+.2f µs",
			i+1, bl.perExchange()/1e3, bl.exchanges, mo.attach, mo.perExchange()/1e3, mo.exchanges, (mo.perExchange()-bl.perExchange())/1e3)
		base, mon = append(base, bl), append(mon, mo)
		if idleArm {
			id = arm(false, true, false)
			b.Logf("round %d: attached, nothing monitored %.2f µs/exchange (%d): %+.2f µs vs baseline",
				i+1, id.perExchange()/1e3, id.exchanges, (id.perExchange()-bl.perExchange())/1e3)
			idle = append(idle, id)
		}
	}
	statsOff, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		b.Fatalf("enable BPF run-time stats: %v", err)
	}
	st := arm(true, false, true)
	statsOff.Close()

	var deltas, bl, mo []float64
	for i := range base {
		bl = append(bl, base[i].perExchange())
		mo = append(mo, mon[i].perExchange())
		deltas = append(deltas, mon[i].perExchange()-base[i].perExchange())
	}
	var monCPU time.Duration
	var monEx uint64
	for _, r := range mon {
		monCPU += r.monitorCPU
		monEx += r.exchanges
	}
	summary := fmt.Sprintf("HTTP monitor cost per exchange, both ends traced (%d rounds of %v, Go server + Go client, 2 keep-alive connections, attach %s):\n"+
		"  server+client CPU per exchange: baseline %s µs (median %.2f), monitored %s µs (median %.2f)\n"+
		"  monitored − baseline per round: %s ns (median %.0f ns, %+.2f %%)\n"+
		"  BPF programs (run-time stats round): %.0f ns per exchange, %.1f runs per exchange, %.0f ns per run\n"+
		"  monitor user space (reader, Drain): %.0f ns per exchange",
		rounds, dur, st.attach,
		floats(bl, 1e3, 2), benchenv.Median(bl)/1e3, floats(mo, 1e3, 2), benchenv.Median(mo)/1e3,
		floats(deltas, 1, 0), benchenv.Median(deltas), 100*benchenv.Median(deltas)/benchenv.Median(bl),
		float64(st.bpf)/float64(max(st.exchanges, 1)), float64(st.bpfRuns)/float64(max(st.exchanges, 1)), float64(st.bpf)/float64(max(st.bpfRuns, 1)),
		float64(monCPU)/float64(max(monEx, 1)))
	if idleArm {
		var id []float64
		for i := range idle {
			id = append(id, idle[i].perExchange()-base[i].perExchange())
		}
		summary += fmt.Sprintf("\n  attached, nothing monitored − baseline per round: %s ns (median %.0f ns)", floats(id, 1, 0), benchenv.Median(id))
	}
	b.Log("\n" + summary)
	fmt.Println(summary)
	b.ReportMetric(benchenv.Median(deltas), "ns-added/exchange")
	b.ReportMetric(float64(st.bpf)/float64(max(st.exchanges, 1)), "bpf-ns/exchange")
}

// exchangeRun is one arm of BenchmarkExchangeCost.
type exchangeRun struct {
	exchanges  uint64
	cpu        time.Duration // server + client
	monitorCPU time.Duration // this process (the monitor's reader)
	bpf        time.Duration // programs' run time (stats round only)
	bpfRuns    uint64
	attach     string
}

func (r exchangeRun) perExchange() float64 { return float64(r.cpu) / float64(max(r.exchanges, 1)) }

var (
	goClientOnce sync.Once
	goClientBin  string
	goClientErr  error
)

// goClient builds testdata/httpservers/goclient once per test binary, next
// to goserver (removed by TestMain).
func goClient(t testing.TB) string {
	t.Helper()
	dir := filepath.Dir(goServer(t))
	goClientOnce.Do(func() {
		goClientBin = filepath.Join(dir, "goclient")
		cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", goClientBin, ".")
		cmd.Dir = filepath.Join(serversDir(t), "goclient")
		if out, err := cmd.CombinedOutput(); err != nil {
			goClientErr = fmt.Errorf("go build goclient: %v\n%s", err, out)
		}
	})
	if goClientErr != nil {
		t.Fatal(goClientErr)
	}
	return goClientBin
}

// loadClient is a goclient process waiting for its start line.
type loadClient struct {
	t     testing.TB
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Scanner
}

func startClient(t testing.TB, bin, url string, dur time.Duration) *loadClient {
	t.Helper()
	cmd := exec.Command(bin, "-url", url, "-conns", "2", "-duration", dur.String())
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
		t.Fatalf("start goclient: %v", err)
	}
	c := &loadClient{t: t, cmd: cmd, stdin: stdin, out: bufio.NewScanner(stdout)}
	if !c.out.Scan() || c.out.Text() != "ready" {
		c.close()
		t.Fatalf("goclient: expected \"ready\", got %q (%v)", c.out.Text(), c.out.Err())
	}
	return c
}

func (c *loadClient) pid() int { return c.cmd.Process.Pid }

// run starts the requests and waits for the client's count.
func (c *loadClient) run() exchangeRun {
	if _, err := io.WriteString(c.stdin, "go\n"); err != nil {
		c.t.Fatal(err)
	}
	if !c.out.Scan() {
		c.t.Fatalf("goclient: no result line (%v)", c.out.Err())
	}
	var r exchangeRun
	var errs uint64
	if _, err := fmt.Sscanf(c.out.Text(), "requests %d errors %d", &r.exchanges, &errs); err != nil {
		c.t.Fatalf("goclient: result line %q: %v", c.out.Text(), err)
	}
	if errs > 0 || r.exchanges == 0 {
		c.t.Fatalf("goclient: %q", c.out.Text())
	}
	return r
}

func (c *loadClient) close() {
	c.stdin.Close()
	if err := c.cmd.Wait(); err != nil {
		c.t.Errorf("goclient: %v", err)
	}
}

// threadsCPU is the time all of pid's current threads have run, from
// /proc/PID/task/*/schedstat (ns; /proc/PID/stat counts 10 ms ticks). A
// thread that exits between two reads takes its time with it: Go keeps its
// threads.
func threadsCPU(t testing.TB, pid int) time.Duration {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var sum time.Duration
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name(), "schedstat"))
		if err != nil {
			continue // exited meanwhile
		}
		f := strings.Fields(string(b))
		if len(f) < 1 {
			t.Fatalf("%s/%s/schedstat: %q", dir, e.Name(), b)
		}
		ns, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			t.Fatalf("%s/%s/schedstat: %v", dir, e.Name(), err)
		}
		sum += time.Duration(ns)
	}
	return sum
}

// floats lists v divided by unit, sorted, with prec decimals.
func floats(v []float64, unit float64, prec int) string {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	out := make([]string, len(s))
	for i, x := range s {
		out[i] = strconv.FormatFloat(x/unit, 'f', prec, 64)
	}
	return strings.Join(out, " ")
}
