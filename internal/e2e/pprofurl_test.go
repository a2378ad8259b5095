package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestPprofURLStrippedBinary: `go tool pprof -top URL` reads a task's
// profile straight from the API for a stripped distribution binary (yes):
// no symbolization attempt (which used to fail with "http post
// .../symbolz: 404"), the program named in the header, and libc's write
// (named from libc's .dynsym) at the top.
func TestPprofURLStrippedBinary(t *testing.T) {
	requireRoot(t)
	yes, err := exec.LookPath("yes")
	if err != nil {
		t.Skip("no yes binary")
	}
	if out, _ := exec.Command("file", "-L", yes).Output(); len(out) > 0 && !strings.Contains(string(out), "stripped") {
		t.Logf("note: %s is not stripped: %s", yes, out)
	}
	// Writing to /dev/null, yes spends its time in libc's write.
	w := exec.Command(copyAs(t, yes, "contprof-yes"))
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Process.Kill(); _ = w.Wait() })
	pid := w.Process.Pid
	port := freePort(t)
	api := apiURL(port)
	sink := startOTLPSink(t) // tasks run where profiles have a pipeline
	cfg := testConfig{
		OTLP:     sink.addr,
		Signals:  []string{"profiles"},
		APIPort:  port,
		Receiver: "include: { executables: [contprof-yes] }\nprofiling: { report_interval: 2s }",
	}.yaml()
	c := startCollector(t, writeConfig(t, cfg))
	c.waitFor("Everything is ready", time.Minute)
	// An on-demand task through the API, once the receiver monitors the
	// process.
	var taskID, last string
	defer func() {
		if taskID == "" {
			t.Logf("last answer: %s", last)
		}
	}()
	waitUntil(t, 60*time.Second, "task accepted", func() bool {
		resp, err := http.Post(api+"/api/v1/tasks", "application/json",
			strings.NewReader(fmt.Sprintf(`{"target":"on_cpu","pid":%d,"duration":"5s"}`, pid)))
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		var created struct{ Tasks []apiTask }
		if resp.StatusCode/100 != 2 || json.Unmarshal(body, &created) != nil || len(created.Tasks) != 1 {
			last = fmt.Sprintf("%s: %s", resp.Status, body)
			return false
		}
		taskID = created.Tasks[0].ID
		return taskID != ""
	})
	waitTask(t, api, 40*time.Second, func(x apiTask) bool { return x.ID == taskID && x.State == "finished" })
	task := apiTask{ID: taskID}

	url := api + "/api/v1/tasks/" + task.ID + "/profile"
	cmd := exec.Command("go", "tool", "pprof", "-top", url)
	cmd.Env = append(os.Environ(), "PPROF_TMPDIR="+t.TempDir(), "HOME="+t.TempDir())
	out, err := cmd.CombinedOutput()
	t.Logf("go tool pprof -top %s:\n%s", url, out)
	if err != nil {
		t.Fatalf("go tool pprof -top %s: %v", url, err)
	}
	s := string(out)
	if strings.Contains(s, "symbolz") || strings.Contains(s, "symbolization") {
		t.Errorf("pprof attempted symbolization")
	}
	if !strings.Contains(s, "File: contprof-yes") {
		t.Errorf("pprof's header does not name the program (main executable not the first mapping)")
	}
	found := false
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && (f[len(f)-1] == "write" || f[len(f)-1] == "__GI___libc_write" || f[len(f)-1] == "__libc_write") {
			found = true
		}
	}
	if !found {
		t.Errorf("libc's write is not in the profile")
	}
}
