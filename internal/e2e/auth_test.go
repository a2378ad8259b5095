package e2e

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestAPIAuthWithBearerToken: the distribution ships bearertokenauth, and
// with `api: {auth: {authenticator: bearertokenauth}}` every API endpoint
// (and whatever the extension serves at /, such as UI pages) answers 401
// without the token and 200 with it.
func TestAPIAuthWithBearerToken(t *testing.T) {
	const token = "s3cr3t-e2e-token"
	port := freePort(t)
	api := apiURL(port)
	cfg := testConfig{
		APIPort:        port,
		API:            "auth: { authenticator: bearertokenauth }",
		Extensions:     "bearertokenauth:\n  token: " + token,
		ExtensionNames: []string{"bearertokenauth"},
	}.yaml()
	c := startCollector(t, writeConfig(t, cfg))
	c.waitFor("Everything is ready", time.Minute)

	get := func(path, auth string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, api+path, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	// The API and the UI's pages and assets.
	paths := []string{"/api/v1/policies", "/api/v1/processes", "/api/v1/tasks", "/api/v1/status",
		"/", "/tasks/0123456789abcdef", "/process", "/policies/edit", "/ui/app.js", "/ui/app.css"}
	for _, path := range paths {
		for _, bad := range []string{"", "Bearer wrong-token", "Basic " + token} {
			if code, body := get(path, bad); code != http.StatusUnauthorized {
				t.Errorf("GET %s with Authorization %q: %d, want 401: %s", path, bad, code, body)
			}
		}
		code, body := get(path, "Bearer "+token)
		if code != http.StatusOK {
			t.Errorf("GET %s with the token: %d, want 200: %.200s", path, code, body)
		}
	}
	// POST too.
	req, _ := http.NewRequest(http.MethodPost, api+"/api/v1/tasks", strings.NewReader(`{"target":"on_cpu","pid":1}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("POST /api/v1/tasks without the token: %d, want 401", resp.StatusCode)
	}
}
