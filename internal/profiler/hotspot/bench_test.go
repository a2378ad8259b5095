//go:build linux

package hotspot

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/contprof/contprof/internal/testhelper/workload"
)

// threadCPU returns the CPU time (user+system) of pid's threads named name
// (all threads when name is empty), from /proc/PID/task/*/stat.
func threadCPU(b *testing.B, pid int, name string) time.Duration {
	b.Helper()
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", pid))
	if err != nil {
		b.Fatal(err)
	}
	var ticks int64
	for _, task := range tasks {
		if name != "" {
			comm, err := os.ReadFile(task + "/comm")
			if err != nil || strings.TrimSpace(string(comm)) != name {
				continue
			}
		}
		stat, err := os.ReadFile(task + "/stat")
		if err != nil {
			continue
		}
		s := string(stat)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		u, _ := strconv.ParseInt(fields[11], 10, 64)
		k, _ := strconv.ParseInt(fields[12], 10, 64)
		ticks += u + k
	}
	return time.Duration(ticks) * 10 * time.Millisecond // USER_HZ is 100 on Linux
}

func perfMapLines(b *testing.B, tg *Target) int {
	data, err := os.ReadFile(tg.TmpPath(tg.PerfMapName()))
	if err != nil {
		b.Fatal(err)
	}
	return strings.Count(string(data), "\n")
}

// BenchmarkAttach is the first contact with a JVM: attach file, SIGQUIT,
// the JVM starting its attach listener, and the first Compiler.perfmap.
// Each iteration needs a fresh JVM (started outside the timer).
func BenchmarkAttach(b *testing.B) {
	requireJava(b)
	var total time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		jvm := startJVM(b, nil)
		tg := findJVM(b, jvm)
		b.StartTimer()
		start := time.Now()
		if err := DumpPerfMap(context.Background(), Options{}, tg); err != nil {
			b.Fatal(err)
		}
		total += time.Since(start)
		b.StopTimer()
		jvm.Stop()
		b.StartTimer()
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/attach")
}

// BenchmarkPerfMapRefresh is one refresh while a task runs: a
// Compiler.perfmap over the running listener, on a JVM whose code cache
// holds thousands of methods (Churn runs javac in a loop). It reports the
// wall time and the CPU the JVM's attach listener thread spends writing
// the map.
func BenchmarkPerfMapRefresh(b *testing.B) {
	requireJava(b)
	jvm := startJava(b, "Churn", nil, nil, filepath.Join(workload.Dir(b), "jit", "JSplit.java"))
	b.Cleanup(func() { os.RemoveAll(fmt.Sprintf("/tmp/churn-%d", jvm.PID())) })
	tg := findJVM(b, jvm)
	ctx := context.Background()
	if err := DumpPerfMap(ctx, Options{}, tg); err != nil {
		b.Fatal(err)
	}
	cpu0 := threadCPU(b, jvm.PID(), "Attach Listener")
	b.ResetTimer()
	for b.Loop() {
		if err := DumpPerfMap(ctx, Options{}, tg); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	cpu := threadCPU(b, jvm.PID(), "Attach Listener") - cpu0
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "jvm-cpu-µs/refresh")
	b.ReportMetric(float64(perfMapLines(b, tg)), "map-lines")
}
