package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/contprof/contprof/internal/testhelper/workload"
)

// readmeCommands returns the shell commands of the first ```sh block after
// heading in the markdown file, with backslash continuations joined.
func readmeCommands(t *testing.T, file, heading string) []string {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	i := strings.Index(s, heading)
	if i < 0 {
		t.Fatalf("%s has no %q", file, heading)
	}
	s = s[i:]
	start := strings.Index(s, "```sh\n")
	if start < 0 {
		t.Fatalf("%s: no sh block after %q", file, heading)
	}
	s = s[start+len("```sh\n"):]
	s = s[:strings.Index(s, "```")]
	s = regexp.MustCompile(`\\\n\s*`).ReplaceAllString(s, "")
	var cmds []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			cmds = append(cmds, l)
		}
	}
	return cmds
}

// TestREADMEAPIExamples runs the extension README's API examples, as
// written, against the built collector: only the address, the pid and the
// task id are substituted. Each must succeed (HTTP 2xx).
func TestREADMEAPIExamples(t *testing.T) {
	requireRoot(t)
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatal("curl is needed to run the README's examples")
	}
	readme := filepath.Join(repoRoot(t), "extension", "profilingpolicyextension", "README.md")
	cmds := readmeCommands(t, readme, "## HTTP API")
	if len(cmds) < 5 {
		t.Fatalf("found only %d commands: %q", len(cmds), cmds)
	}

	// The selector example matches service.name ^checkout.
	bin := workload.BuildC(t, "hotcpu.c")
	os.Setenv("OTEL_SERVICE_NAME", "checkout")
	hot := startBusy(t, bin, "contprof-readme")
	os.Unsetenv("OTEL_SERVICE_NAME")

	port := freePort(t)
	api := apiURL(port)
	cfg := testConfig{
		APIPort:  port,
		Receiver: "include: { executables: [contprof-readme] }\nprofiling: { report_interval: 1s }",
		Signals:  []string{"profiles"},
	}.yaml()
	c := startCollector(t, writeConfig(t, cfg))
	c.waitFor("Everything is ready", time.Minute)
	// The selector example needs the processor to know the process.
	waitUntil(t, 30*time.Second, "the workload in /api/v1/processes", func() bool {
		out, _ := exec.Command("curl", "-s", api+"/api/v1/processes").Output()
		return strings.Contains(string(out), `"pid": `+strconv.Itoa(hot.PID()))
	})

	taskID := ""
	for _, cmd := range cmds {
		cmd = strings.ReplaceAll(cmd, "localhost:7733", "127.0.0.1:"+strconv.Itoa(port))
		cmd = strings.ReplaceAll(cmd, `"pid":1234`, `"pid":`+strconv.Itoa(hot.PID()))
		if strings.Contains(cmd, "5f0c2a9d1e7b4c3a") {
			if taskID == "" {
				t.Fatalf("no task was started before %q", cmd)
			}
			cmd = strings.ReplaceAll(cmd, "5f0c2a9d1e7b4c3a", taskID)
		}
		if strings.HasPrefix(cmd, "go tool pprof") {
			// The cancelled task's last profile is stored at its end.
			waitTask(t, api, 30*time.Second, func(x apiTask) bool {
				return x.ID == taskID && x.Profile != nil && x.Profile.Bytes > 0
			})
			// As written; with no terminal, pprof reads EOF and exits.
			out, err := exec.Command("bash", "-c", cmd).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "Type: ") {
				t.Fatalf("%s: %v\n%s", cmd, err, out)
			}
			continue
		}
		if !strings.HasPrefix(cmd, "curl ") {
			t.Fatalf("unexpected command in the README: %q", cmd)
		}
		out, err := exec.Command("bash", "-c", cmd+` -w '\n%{http_code}'`).Output()
		if err != nil {
			t.Fatalf("%s: %v", cmd, err)
		}
		text := strings.TrimRight(string(out), "\n")
		nl := strings.LastIndexByte(text, '\n')
		body, code := text[:max(nl, 0)], text[nl+1:]
		if !strings.HasPrefix(code, "2") {
			t.Fatalf("%s: HTTP %s: %s", cmd, code, body)
		}
		t.Logf("%s: HTTP %s", cmd, code)
		if taskID == "" && strings.Contains(cmd, "-X POST") && strings.Contains(cmd, `"target":"on_cpu"`) {
			var resp struct {
				Tasks []struct {
					ID string `json:"id"`
				} `json:"tasks"`
			}
			if err := json.Unmarshal([]byte(body), &resp); err != nil || len(resp.Tasks) != 1 {
				t.Fatalf("%s: %v: %s", cmd, err, body)
			}
			taskID = resp.Tasks[0].ID
		}
	}
	if taskID == "" {
		t.Fatal("the README starts no on_cpu task by pid")
	}
}
