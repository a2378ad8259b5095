package e2e

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/contprof/contprof/internal/testhelper/workload"
)

// procMem is a process's resident memory from /proc/PID/status: VmRSS and
// its anonymous (heap, stacks) and file-backed (the binary's pages) parts.
type procMem struct{ rss, anon, file int64 }

func readProcMem(pid int) procMem {
	var m procMem
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return m
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		switch key {
		case "VmRSS":
			m.rss = kb << 10
		case "RssAnon":
			m.anon = kb << 10
		case "RssFile":
			m.file = kb << 10
		}
	}
	return m
}

// peakMem samples pid every second for secs seconds and returns the sample
// with the highest VmRSS.
func peakMem(pid, secs int) procMem {
	var peak procMem
	for range secs {
		time.Sleep(time.Second)
		if m := readProcMem(pid); m.rss > peak.rss {
			peak = m
		}
	}
	return peak
}

// startIdleProcesses starts n sleep children, stopped at cleanup.
func startIdleProcesses(b *testing.B, n int) {
	var kids []*exec.Cmd
	b.Cleanup(func() {
		for _, c := range kids {
			_ = c.Process.Kill()
			_ = c.Wait()
		}
	})
	for range n {
		c := exec.Command("sleep", "100000")
		if err := c.Start(); err != nil {
			b.Fatal(err)
		}
		kids = append(kids, c)
	}
}

// BenchmarkMemory is the collector's resident memory (issue 19: at most
// 48 MB idle with 500 processes on the host, 96 MB while 4 on_cpu tasks
// run on 4 different executables). 500 `sleep` children besides the
// host's processes; ebpfprocess every second into continuousprofiling and
// the debug exporter. Idle: the peak over CONTPROF_BENCH_SECONDS (default
// 30) after a warm-up. Tasks: then 4 on_cpu tasks through the API on a C,
// a Go, a Python and a shell busy loop (at nice 19, so that they take only
// spare CPU on a shared machine), peak over the same time. After: the
// tasks cancelled, idle again, peak over the same time. rss-MB is
// VmRSS, anon-MB and file-MB its RssAnon and RssFile at that peak (the
// file part is the binary's pages, which the kernel's fault-around maps
// in larger pieces than the collector touches).
func BenchmarkMemory(b *testing.B) {
	requireRoot(b)
	secs := benchSeconds(b)
	startIdleProcesses(b, 500)
	busy := []struct{ name, path string }{
		{"contprof-memc", workload.BuildC(b, "hotcpu.c")},
		{"contprof-memgo", workload.BuildGo(b, "hotgo")},
	}
	py, err := exec.LookPath("python3")
	if err != nil {
		b.Skip("python3 is needed for the Python task")
	}
	script := filepath.Join(workload.Dir(b), "python", "cpu_shares.py")
	sh, _ := exec.LookPath("sh")
	bins := benchBinaries(b)
	figs := benchFigures{}
	add := func(bin, fig string, m procMem) {
		figs.add(bin, fig+"-rss", float64(m.rss)/(1<<20))
		figs.add(bin, fig+"-anon", float64(m.anon)/(1<<20))
		figs.add(bin, fig+"-file", float64(m.file)/(1<<20))
	}
	eachRound(b, len(bins), func(i int) {
		bin := bins[i]
		port := freePort(b)
		cfg := writeConfig(b, testConfig{
			Policies: neverPolicy,
			APIPort:  port,
			Signals:  []string{"profiles"},
		}.yaml())
		c := startCollectorBinary(b, bin.path, nil, cfg)
		c.waitFor("Everything is ready", time.Minute)
		time.Sleep(10 * time.Second) // identities known, heap settled
		pid := c.cmd.Process.Pid
		add(bin.name, "idle", peakMem(pid, secs))

		var ws []*workload.Process
		for _, x := range busy {
			ws = append(ws, workload.Start(b, copyAs(b, x.path, x.name)))
		}
		ws = append(ws, workload.StartCmd(b, exec.Command(py, script)))
		ws = append(ws, workload.StartCmd(b, exec.Command(sh, "-c", "echo ready=0x1; while :; do :; done")))
		api := apiURL(port)
		var ids []string
		for _, w := range ws {
			_ = syscall.Setpriority(syscall.PRIO_PROCESS, w.PID(), 19)
			ids = append(ids, postTask(b, api, fmt.Sprintf(`{"target":"on_cpu","pid":%d,"duration":"%ds"}`, w.PID(), secs+60)))
		}
		waitUntil(b, time.Minute, "4 running tasks", func() bool {
			n := 0
			for _, x := range getTasks(b, api) {
				if x.State == "running" {
					n++
				}
			}
			return n == len(ws)
		})
		add(bin.name, "tasks", peakMem(pid, secs))
		// After: the tasks cancelled, the collector idle again.
		for _, id := range ids {
			resp, err := http.Post(api+"/api/v1/tasks/"+id+"/cancel", "application/json", nil)
			if err != nil {
				b.Fatal(err)
			}
			resp.Body.Close()
		}
		for _, w := range ws {
			w.Stop()
		}
		waitUntil(b, time.Minute, "no running task", func() bool {
			for _, x := range getTasks(b, api) {
				if x.State == "running" || x.State == "pending" {
					return false
				}
			}
			return true
		})
		time.Sleep(10 * time.Second)
		add(bin.name, "after", peakMem(pid, secs))
		c.stop(10 * time.Second)
	})
	figs.report(b, bins, []string{"idle-rss", "idle-anon", "idle-file", "tasks-rss", "tasks-anon", "tasks-file", "after-rss", "after-anon", "after-file"}, "MB")
}
