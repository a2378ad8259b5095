package e2e

import (
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/contprof/contprof/internal/testhelper/workload"
)

// startGoServer runs testdata/httpservers/goserver as name on port.
func startGoServer(t *testing.T, bin, name string, port int) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(copyAs(t, bin, name), "-addr", fmt.Sprintf("127.0.0.1:%d", port), "-sleep", "30ms")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	// Scheduling delay on a loaded machine would count as response time.
	_ = syscall.Setpriority(syscall.PRIO_PROCESS, cmd.Process.Pid, -10)
	waitUntil(t, 10*time.Second, name+" listening", func() bool {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return cmd
}

// drive sends keep-alive requests to each URL from its own goroutine
// until stop is closed.
func drive(stop <-chan struct{}, wg *sync.WaitGroup, urls ...string) {
	for _, u := range urls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Timeout: 5 * time.Second}
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := client.Get(u)
				if err != nil {
					time.Sleep(50 * time.Millisecond)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
}

func mean(xs []float64) float64 {
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

// HTTP monitoring end to end: the eBPF HTTP monitor is loaded because
// policies use HTTP monitors, the processor computes per-second error rate
// and mean latency from the receiver's histograms, URI filters pick the
// paths, and tasks carry the values.
func TestHTTPMonitorsTriggerThroughCollector(t *testing.T) {
	requireRoot(t)
	bin := workload.BuildGo(t, "../httpservers/goserver")
	webPort, web2Port, apiPort := freePort(t), freePort(t), freePort(t)
	web := startGoServer(t, bin, "contprof-web", webPort)
	web2 := startGoServer(t, bin, "contprof-web2", web2Port)
	api := apiURL(apiPort)

	cfg := testConfig{
		Policies: `
- name: web-errors
  selector: { process.executable.name: contprof-web }
  target: on_cpu
  duration: 5s
  items:
    - { monitor: http_error_rate, threshold: 10, period: 5, count: 3, uri_list: [/work] }
- name: web2-latency
  selector: { process.executable.name: contprof-web2 }
  target: on_cpu
  duration: 5s
  items:
    - { monitor: http_avg_response_time, threshold: 20, period: 5, count: 3, uri_regex: "^/wor" }
# /fast answers at once: it must never cross 20 ms.
- name: web2-fast
  selector: { process.executable.name: contprof-web2 }
  target: on_cpu
  duration: 5s
  items:
    - { monitor: http_avg_response_time, threshold: 20, period: 5, count: 1, uri_list: [/fast] }`,
		APIPort:  apiPort,
		Receiver: "include: { executables: [contprof-web, contprof-web2] }",
		Signals:  []string{"profiles"},
	}.yaml()
	c := startCollector(t, writeConfig(t, cfg))
	c.waitFor("Everything is ready", time.Minute)
	c.waitFor("HTTP monitor loaded", 30*time.Second)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	drive(stop, &wg,
		fmt.Sprintf("http://127.0.0.1:%d/work", webPort),
		fmt.Sprintf("http://127.0.0.1:%d/fast", webPort),
		fmt.Sprintf("http://127.0.0.1:%d/work", web2Port),
		fmt.Sprintf("http://127.0.0.1:%d/fast", web2Port),
	)
	defer func() { close(stop); wg.Wait() }()

	errTask := waitTask(t, api, 60*time.Second, func(x apiTask) bool {
		return x.Policy == "web-errors" && len(x.Processes) == 1 && x.Processes[0].PID == web.Process.Pid
	})
	latTask := waitTask(t, api, 60*time.Second, func(x apiTask) bool {
		return x.Policy == "web2-latency" && len(x.Processes) == 1 && x.Processes[0].PID == web2.Process.Pid
	})
	// Only /work counts: one request in five fails there (20%); counting
	// /fast too would halve the rate.
	rate := mean(errTask.Causes[0].Values)
	t.Logf("web-errors cause: %+v (mean %.2f%%)", errTask.Causes[0], rate)
	if math.Abs(rate-20) > 3 {
		t.Errorf("per-second error rate of /work averages %.2f%%, want 20 ± 3", rate)
	}
	// /work sleeps 30 ms.
	lat := mean(latTask.Causes[0].Values)
	t.Logf("web2-latency cause: %+v (mean %.2f ms)", latTask.Causes[0], lat)
	if math.Abs(lat-30) > 3 {
		t.Errorf("per-second mean latency of /work averages %.2f ms, want 30 ± 3", lat)
	}
	for _, x := range getTasks(t, api) {
		if x.Policy == "web2-fast" {
			t.Fatalf("the /fast policy fired although /fast answers at once: %+v", x)
		}
	}
}
