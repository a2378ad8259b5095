package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// repoRoot is the module root, found from this file's location.
func repoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

var buildOnce sync.Once
var buildErr error

// collectorBinary returns bin/otelcol-contprof, building it through make
// when it is missing or stale (make decides).
func collectorBinary(t testing.TB) string {
	t.Helper()
	root := repoRoot(t)
	buildOnce.Do(func() {
		cmd := exec.Command("make", "collector")
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = err
			t.Logf("make collector:\n%s", out)
		}
	})
	if buildErr != nil {
		t.Fatalf("building the collector: %v", buildErr)
	}
	return filepath.Join(root, "bin", "otelcol-contprof")
}

// syncBuffer collects a process's output for concurrent reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// collector is a running otelcol-contprof process.
type collector struct {
	t      testing.TB
	cmd    *exec.Cmd
	output *syncBuffer
	done   chan struct{}
	err    error
}

// startCollector runs the distribution on configPath with profiles enabled
// and stops it at test cleanup.
func startCollector(t testing.TB, configPath string, env ...string) *collector {
	t.Helper()
	return startCollectorVia(t, nil, configPath, env...)
}

// startCollectorVia is startCollector with the binary run through the
// command wrapper (e.g. setpriv and its options).
func startCollectorVia(t testing.TB, wrapper []string, configPath string, env ...string) *collector {
	t.Helper()
	return startCollectorBinary(t, collectorBinary(t), wrapper, configPath, env...)
}

// startCollectorBinary is startCollectorVia for a given binary (benchmarks
// compare against a baseline build).
func startCollectorBinary(t testing.TB, bin string, wrapper []string, configPath string, env ...string) *collector {
	t.Helper()
	c := &collector{t: t, output: &syncBuffer{}, done: make(chan struct{})}
	argv := append(append(slices.Clone(wrapper), bin), "--config", configPath, "--feature-gates=service.profilesSupport")
	c.cmd = exec.Command(argv[0], argv[1:]...)
	c.cmd.Dir = repoRoot(t)
	c.cmd.Env = append(os.Environ(), env...)
	c.cmd.Stdout = c.output
	c.cmd.Stderr = c.output
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("starting collector: %v", err)
	}
	go func() {
		c.err = c.cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() {
		c.stop(10 * time.Second)
		if t.Failed() {
			t.Logf("collector output:\n%s", c.output.String())
		}
	})
	return c
}

// waitFor waits until the output contains s, failing on exit or timeout.
func (c *collector) waitFor(s string, timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if strings.Contains(c.output.String(), s) {
			return
		}
		select {
		case <-c.done:
			c.t.Fatalf("collector exited (%v) before printing %q:\n%s", c.err, s, c.output.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
	c.t.Fatalf("collector did not print %q within %v:\n%s", s, timeout, c.output.String())
}

// stop sends SIGTERM and waits up to timeout; it reports whether the process
// exited in time and cleanly.
func (c *collector) stop(timeout time.Duration) (exited bool, err error) {
	select {
	case <-c.done:
		return true, c.err
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
		return true, c.err
	case <-time.After(timeout):
		_ = c.cmd.Process.Kill()
		<-c.done
		return false, c.err
	}
}

// runCollector runs the binary to completion with args.
func runCollector(t testing.TB, timeout time.Duration, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, collectorBinary(t), args...)
	cmd.Dir = repoRoot(t)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// writeConfig writes a collector config into the test's temp dir. The
// collector's own telemetry endpoint (localhost:8888) is turned off so that
// a test collector never collides with another one on the machine.
func writeConfig(t testing.TB, yaml string) string {
	t.Helper()
	yaml = strings.Replace(yaml, "\nservice:\n", "\nservice:\n  telemetry:\n    metrics:\n      level: none\n", 1)
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
