package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/pprof/profile"
	bolt "go.etcd.io/bbolt"

	"github.com/contprof/contprof/internal/testhelper/workload"
)

// historyFile is where file_storage keeps the extension's task history.
const historyFile = "extension_profilingpolicy__task_history"

// editHistory changes the stored history while no collector runs, as
// file_storage keeps it (bbolt, bucket "default").
func editHistory(t *testing.T, dir string, fn func(b *bolt.Bucket) error) {
	t.Helper()
	db, err := bolt.Open(filepath.Join(dir, historyFile), 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error { return fn(tx.Bucket([]byte("default"))) }); err != nil {
		t.Fatal(err)
	}
}

// TestHistorySurvivesRestart: with profilingpolicy {storage: file_storage}
// a task running at SIGTERM is "interrupted" after the restart and its
// profile (what it collected) downloads; a task older than 48 hours in the
// storage is gone after the restart, from the API and from the storage;
// a corrupt storage file starts an empty history with a clear error.
func TestHistorySurvivesRestart(t *testing.T) {
	requireRoot(t)
	bin := workload.BuildC(t, "hotcpu.c")
	hot := startBusy(t, bin, "contprof-restart")
	dir := t.TempDir()
	port := freePort(t)
	api := apiURL(port)
	cfg := writeConfig(t, testConfig{
		APIPort:        port,
		Extensions:     "file_storage:\n  directory: " + dir,
		ExtensionNames: []string{"file_storage"},
		Policy:         "storage: file_storage",
		Receiver:       "include: { executables: [contprof-restart] }\nprofiling: { report_interval: 1s }",
		Signals:        []string{"profiles"},
	}.yaml())

	c := startCollector(t, cfg)
	c.waitFor("Everything is ready", time.Minute)
	id := postTask(t, api, `{"target":"on_cpu","pid":`+strconv.Itoa(hot.PID())+`,"duration":"5m"}`)
	waitTask(t, api, 30*time.Second, func(x apiTask) bool { return x.ID == id && x.Profile != nil && x.Profile.Profiles >= 2 })
	if exited, err := c.stop(30 * time.Second); !exited || err != nil {
		t.Fatalf("collector did not stop cleanly on SIGTERM: exited %v, %v", exited, err)
	}

	// A task of two days ago, as an earlier run would have left it.
	const old = "00000000000000aa"
	editHistory(t, dir, func(b *bolt.Bucket) error {
		var rec map[string]any
		if err := json.Unmarshal(b.Get([]byte("task/"+id)), &rec); err != nil {
			return err
		}
		info := rec["info"].(map[string]any)
		info["ID"] = old
		info["Created"] = time.Now().Add(-49 * time.Hour)
		data, _ := json.Marshal(rec)
		var ids []string
		if err := json.Unmarshal(b.Get([]byte("index")), &ids); err != nil {
			return err
		}
		index, _ := json.Marshal(append(ids, old))
		if err := b.Put([]byte("task/"+old), data); err != nil {
			return err
		}
		return b.Put([]byte("index"), index)
	})

	c2 := startCollector(t, cfg)
	c2.waitFor("Everything is ready", time.Minute)
	if !strings.Contains(c2.output.String(), `"tasks": 1`) {
		t.Fatalf("the restart does not say it restored one task")
	}
	var task apiTask
	getJSON(t, api+"/api/v1/tasks/"+id, http.StatusOK, &task)
	if task.State != "interrupted" || task.Profile == nil || task.Profile.Profiles < 2 {
		t.Fatalf("after the restart the task is %+v, want interrupted with its profiles", task)
	}
	resp, err := http.Get(api + "/api/v1/tasks/" + id + "/profile")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	p, perr := profile.Parse(bytes.NewReader(raw))
	if resp.StatusCode != http.StatusOK || perr != nil || len(p.Sample) == 0 {
		t.Fatalf("profile download after the restart: %s %v (%d bytes)", resp.Status, perr, len(raw))
	}
	getJSON(t, api+"/api/v1/tasks/"+old, http.StatusNotFound, nil)
	c2.stop(30 * time.Second)
	editHistory(t, dir, func(b *bolt.Bucket) error {
		if b.Get([]byte("task/"+old)) != nil {
			t.Errorf("the 49-hour-old task is still in the storage after the restart")
		}
		return nil
	})

	// A corrupt storage file: the collector starts, says so, history empty.
	if err := os.WriteFile(filepath.Join(dir, historyFile), bytes.Repeat([]byte("garbage!"), 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	c3 := startCollector(t, cfg)
	c3.waitFor("Everything is ready", time.Minute)
	if !strings.Contains(c3.output.String(), "Task history storage problem") {
		t.Fatalf("no clear error for a corrupt storage file:\n%s", c3.output.String())
	}
	if n := len(getTasks(t, api)); n != 0 {
		t.Fatalf("%d tasks from a corrupt storage", n)
	}
}

func postTask(t testing.TB, api, body string) string {
	t.Helper()
	resp, err := http.Post(api+"/api/v1/tasks", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Tasks []apiTask `json:"tasks"`
	}
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated || json.Unmarshal(data, &out) != nil || len(out.Tasks) != 1 {
		t.Fatalf("POST /api/v1/tasks %s: %s: %s", body, resp.Status, data)
	}
	return out.Tasks[0].ID
}

func getJSON(t *testing.T, url string, status int, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status {
		t.Fatalf("GET %s: %s, want %d: %s", url, resp.Status, status, data)
	}
	if v != nil {
		if err := json.Unmarshal(data, v); err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
	}
}
