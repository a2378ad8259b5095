package e2e

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestComponentsListed(t *testing.T) {
	out, err := runCollector(t, time.Minute, "components")
	if err != nil {
		t.Fatalf("components: %v\n%s", err, out)
	}
	for _, name := range []string{"ebpfprocess", "continuousprofiling", "profilingpolicy", "otlp_grpc", "debug"} {
		if !strings.Contains(out, "name: "+name) {
			t.Errorf("components does not list %q:\n%s", name, out)
		}
	}
}

// The default configuration starts next to another collector: one holding
// the collector's default self-telemetry port 8888 (here, the test holds
// it). Its API port, fixed for users, is moved to a free one so that the
// test does not depend on it either.
func TestFoundationDefaultConfigRunsNextToAnotherCollector(t *testing.T) {
	l, err := net.Listen("tcp", ":8888")
	switch {
	case err == nil:
		defer l.Close()
	case errors.Is(err, syscall.EADDRINUSE):
		t.Log("port 8888 is already held by another process on this machine")
	default:
		t.Fatalf("holding port 8888 as another collector would: %v", err)
	}
	def, err := os.ReadFile(filepath.Join(repoRoot(t), "config", "default.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	const api = "endpoint: localhost:7733"
	if !strings.Contains(string(def), api) {
		t.Fatalf("config/default.yaml has no %q", api)
	}
	cfg := filepath.Join(t.TempDir(), "default.yaml")
	// The history storage goes to a fresh directory, not the repo's ./data.
	const data = "directory: ./data"
	if !strings.Contains(string(def), data) {
		t.Fatalf("config/default.yaml has no %q", data)
	}
	text := strings.Replace(string(def), api, "endpoint: 127.0.0.1:0", 1)
	text = strings.Replace(text, data, "directory: "+filepath.Join(t.TempDir(), "data"), 1)
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	c := startCollector(t, cfg)
	c.waitFor("Everything is ready", time.Minute)
	// Let a few collection intervals pass so the pipelines really run.
	time.Sleep(3 * time.Second)
	start := time.Now()
	exited, err := c.stop(10 * time.Second)
	if !exited {
		t.Fatalf("collector did not exit within 10s of SIGTERM")
	}
	if err != nil {
		t.Fatalf("collector exited with %v after SIGTERM:\n%s", err, c.output.String())
	}
	t.Logf("shutdown took %v", time.Since(start))
	if out := c.output.String(); strings.Contains(out, "panic") {
		t.Fatalf("output mentions a panic:\n%s", out)
	}
	if out := c.output.String(); !strings.Contains(out, "Task history restored from storage") {
		t.Fatalf("the default configuration does not keep the task history in storage:\n%s", out)
	}
}

// A bad field under one of our components must stop the collector with a
// message naming the field.
func TestInvalidConfigNamesTheField(t *testing.T) {
	cases := []struct {
		name, component, want string
	}{
		{"unknown receiver field", "receivers:\n  ebpfprocess:\n    colection_interval: 1s\n", "colection_interval"},
		{"bad receiver value", "receivers:\n  ebpfprocess:\n    collection_interval: 0s\n", "collection_interval"},
		{"bad receiver scope", "receivers:\n  ebpfprocess:\n    scope: everything\n", "scope"},
		{"unknown processor field", "processors:\n  continuousprofiling:\n    max_proceses: 5\n", "max_proceses"},
		{"unknown extension field", "extensions:\n  profilingpolicy:\n    polices: []\n", "polices"},
	}
	base := map[string]string{
		"receivers":  "receivers:\n  ebpfprocess: {}\n",
		"processors": "processors:\n  continuousprofiling: {}\n",
		"extensions": "extensions:\n  profilingpolicy:\n    api: { endpoint: localhost:0 }\n",
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sections := map[string]string{}
			for k, v := range base {
				sections[k] = v
			}
			key := strings.SplitN(tc.component, ":", 2)[0]
			sections[key] = tc.component
			cfg := sections["extensions"] + sections["receivers"] + sections["processors"] +
				"exporters:\n  debug: {}\n" +
				"service:\n  extensions: [profilingpolicy]\n  pipelines:\n    metrics:\n      receivers: [ebpfprocess]\n      processors: [continuousprofiling]\n      exporters: [debug]\n"
			out, err := runCollector(t, time.Minute, "--config", writeConfig(t, cfg), "--feature-gates=service.profilesSupport")
			if err == nil {
				t.Fatalf("collector accepted a bad config:\n%s", out)
			}
			if !strings.Contains(out, tc.want) {
				t.Fatalf("error does not name %q:\n%s", tc.want, out)
			}
		})
	}
}
