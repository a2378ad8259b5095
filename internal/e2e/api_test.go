package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// freePort returns a localhost port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	return freePortOn(t, "127.0.0.1:0")
}

// freePortOn returns a port free a moment ago on the listen address addr
// (":0" for all interfaces).
func freePortOn(t testing.TB, addr string) int {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// apiTask is the part of GET /api/v1/tasks the tests read.
type apiTask struct {
	ID        string    `json:"id"`
	Policy    string    `json:"policy"`
	Target    string    `json:"target"`
	State     string    `json:"state"`
	Created   time.Time `json:"created"`
	Started   time.Time `json:"started"`
	Ended     time.Time `json:"ended"`
	Error     string    `json:"error"`
	Processes []struct {
		PID        int            `json:"pid"`
		Attributes map[string]any `json:"attributes"`
	} `json:"processes"`
	Causes []struct {
		Monitor   string    `json:"monitor"`
		Threshold float64   `json:"threshold"`
		Period    int       `json:"period"`
		Count     int       `json:"count"`
		Values    []float64 `json:"values"`
		At        time.Time `json:"at"`
	} `json:"causes"`
	Profile *struct {
		Bytes    int `json:"bytes"`
		Profiles int `json:"profiles"`
	} `json:"profile"`
}

func getTasks(t testing.TB, api string) []apiTask {
	t.Helper()
	resp, err := http.Get(api + "/api/v1/tasks")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var body struct {
		Tasks []apiTask `json:"tasks"`
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/v1/tasks: %s", resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("GET /api/v1/tasks: %v", err)
	}
	return body.Tasks
}

// waitTask waits for a task matching pred and returns it.
func waitTask(t testing.TB, api string, timeout time.Duration, pred func(apiTask) bool) apiTask {
	t.Helper()
	var found apiTask
	waitUntil(t, timeout, "task", func() bool {
		for _, task := range getTasks(t, api) {
			if pred(task) {
				found = task
				return true
			}
		}
		return false
	})
	return found
}

// downloadProfile fetches the merged profile of a task (gzipped pprof).
func downloadProfile(t testing.TB, api, id string) []byte {
	t.Helper()
	resp, err := http.Get(api + "/api/v1/tasks/" + id + "/profile")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("profile download: %s: %s", resp.Status, raw)
	}
	return raw
}

func apiURL(port int) string { return fmt.Sprintf("http://127.0.0.1:%d", port) }
