package profilingpolicyextension

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/config/confighttp"
	"go.opentelemetry.io/collector/config/configoptional"
)

// FuzzAPIRequestBodies sends arbitrary bodies and ids to the API's
// endpoints that take input: nothing may panic or answer 5xx, and every
// answer is JSON.
func FuzzAPIRequestBodies(f *testing.F) {
	pid := os.Getpid()
	f.Add(`{"target":"on_cpu","pid":1234,"duration":"30s"}`, "x")
	f.Add(`{"target":"network","selector":{"service.name":{"regex":"^check"}}}`, "deadbeef")
	f.Add(`{"target":"off_cpu","selector":{"a":"b","c":{"regex":"(("}},"duration":"-1s"}`, "%2e%2e")
	f.Add(`{"target":"on_cpu","pid":`+strings.Repeat("9", 40)+`}`, "")
	f.Add("policies:\n  - {name: a, target: on_cpu, items: [{monitor: process_cpu, threshold: 1, period: 1, count: 1}]}", "a/b")
	f.Add(`[{"name":"a","target":"on_cpu","selector":{"service.name":"me"},"items":[{"monitor":"process_cpu","threshold":1e308,"period":3600,"count":3600}]}]`, "0")
	f.Add("\x00\xff{", "\x00")

	cfg := testConfig()
	cfg.API = configoptional.None[confighttp.ServerConfig]()
	ext, err := newExtension(cfg, extensionSettings())
	if err != nil {
		f.Fatal(err)
	}
	if err := ext.Start(context.Background(), &statusHost{}); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = ext.Shutdown(context.Background()) })
	defer ext.RegisterExecutor(newExecutor())()
	self, err := procProcess(pid)
	if err != nil {
		f.Fatal(err)
	}
	self.Attributes["service.name"] = "me"
	defer ext.RegisterProcessView(staticView{{Process: self, Policies: []string{}, LastSeen: time.Now()}})()
	h := ext.handler()

	f.Fuzz(func(t *testing.T, body, id string) {
		body = strings.ReplaceAll(body, "1234", strconv.Itoa(pid))
		for _, rq := range []struct{ method, path, ctype string }{
			{http.MethodPost, "/api/v1/tasks", "application/json"},
			{http.MethodPost, "/api/v1/tasks", ""},
			{http.MethodPost, "/api/v1/policies/dryrun", "application/yaml"},
			{http.MethodGet, "/api/v1/tasks/" + url.PathEscape(id), ""},
			{http.MethodGet, "/api/v1/tasks/" + url.PathEscape(id) + "/profile", ""},
			{http.MethodPost, "/api/v1/tasks/" + url.PathEscape(id) + "/cancel", ""},
		} {
			req := httptest.NewRequest(rq.method, rq.path, strings.NewReader(body))
			if rq.ctype != "" {
				req.Header.Set("Content-Type", rq.ctype)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code >= 500 {
				t.Fatalf("%s %s with %q: %d %s", rq.method, rq.path, body, w.Code, w.Body)
			}
			if w.Code >= 400 && !json.Valid(w.Body.Bytes()) {
				t.Fatalf("%s %s: %d answer is not JSON: %q", rq.method, rq.path, w.Code, w.Body)
			}
		}
		// Cancel what started, so that the concurrency limit does not
		// turn every later input into a refusal.
		for _, ti := range ext.tasks.Tasks() {
			_, _ = ext.tasks.Cancel(ti.ID)
		}
	})
}
