package policysource

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component/componenttest"
	"go.uber.org/zap/zaptest"
)

// policyServer serves a document with an ETag and honours If-None-Match,
// unless told to misbehave.
type policyServer struct {
	mu       sync.Mutex
	body     string
	status   int           // 0: normal
	delay    time.Duration // before answering
	noETag   bool
	requests []*http.Request
	stop     chan struct{}
}

func (s *policyServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests = append(s.requests, r)
	body, status, delay, noETag := s.body, s.status, s.delay, s.noETag
	s.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		case <-s.stop:
			return
		}
	}
	if status != 0 {
		http.Error(w, "boom", status)
		return
	}
	etag := `"` + etagOf(body) + `"`
	if !noETag {
		w.Header().Set("ETag", etag)
		if r.Header.Get("If-None-Match") == etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
	}
	w.Header().Set("Content-Type", "application/yaml")
	_, _ = w.Write([]byte(body))
}

func etagOf(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:8])
}

func (s *policyServer) set(f func(s *policyServer)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

func (s *policyServer) lastIfNoneMatch() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[len(s.requests)-1].Header.Get("If-None-Match")
}

func newPoller(t *testing.T, url string, timeout time.Duration, c collector) *HTTP {
	cfg := NewDefaultHTTPConfig()
	cfg.Endpoint = url
	cfg.Timeout = timeout
	cfg.PollInterval = time.Hour // the test drives Poll itself
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	client, err := cfg.ToClient(context.Background(), nil, componenttest.NewNopTelemetrySettings())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.CloseIdleConnections)
	return NewHTTP(client, cfg, zaptest.NewLogger(t), c.add)
}

func TestHTTPSource(t *testing.T) {
	srv := &policyServer{body: policyDoc("u", 50), stop: make(chan struct{})}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	defer close(srv.stop)

	c := make(collector, 16)
	h := newPoller(t, ts.URL+"/v1/policies", 300*time.Millisecond, c)
	ctx := context.Background()
	h.Start(ctx)
	defer h.Shutdown()

	select {
	case u := <-c:
		wantPolicy(t, u, "u", 50)
		if u.Kind != KindURL {
			t.Fatal(u.Kind)
		}
	default:
		t.Fatal("Start did not report the first poll")
	}

	t.Run("304 keeps the set", func(t *testing.T) {
		h.Poll(ctx)
		if got := srv.lastIfNoneMatch(); got == "" {
			t.Fatal("no If-None-Match sent")
		}
		c.none(t, 50*time.Millisecond)
	})
	t.Run("500 keeps last good", func(t *testing.T) {
		srv.set(func(s *policyServer) { s.status = http.StatusInternalServerError })
		h.Poll(ctx)
		u := c.next(t)
		if u.Err == nil || !strings.Contains(u.Err.Error(), "HTTP 500 Internal Server Error") || u.Policies != nil {
			t.Fatalf("update = %+v", u)
		}
		h.Poll(ctx) // same error: reported once
		c.none(t, 50*time.Millisecond)
	})
	t.Run("recovery through 304 is reported", func(t *testing.T) {
		srv.set(func(s *policyServer) { s.status = 0 })
		h.Poll(ctx)
		wantPolicy(t, c.next(t), "u", 50)
	})
	t.Run("new content", func(t *testing.T) {
		srv.set(func(s *policyServer) { s.body = policyDoc("v", 60) })
		h.Poll(ctx)
		wantPolicy(t, c.next(t), "v", 60)
	})
	t.Run("malformed body", func(t *testing.T) {
		srv.set(func(s *policyServer) { s.body = "policies: [{name: v, target: on_cpu, items: [" })
		h.Poll(ctx)
		if u := c.next(t); u.Err == nil || !strings.Contains(u.Err.Error(), "invalid YAML") {
			t.Fatalf("update = %+v", u)
		}
		// The bad document's ETag makes the next poll a 304: still broken,
		// not reported again.
		h.Poll(ctx)
		c.none(t, 50*time.Millisecond)
	})
	t.Run("invalid policy", func(t *testing.T) {
		srv.set(func(s *policyServer) { s.body = `{"policies":[{"name":"v","target":"cpu","items":[]}]}` })
		h.Poll(ctx)
		u := c.next(t)
		if u.Err == nil || !strings.Contains(u.Err.Error(), `policy "v": target: "cpu" is not one of`) || !strings.Contains(u.Err.Error(), ts.URL) {
			t.Fatalf("update = %+v", u)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		srv.set(func(s *policyServer) { s.body = policyDoc("w", 70); s.delay = 5 * time.Second })
		h.Poll(ctx)
		if u := c.next(t); u.Err == nil || !strings.Contains(u.Err.Error(), "GET "+ts.URL) {
			t.Fatalf("update = %+v", u)
		}
		srv.set(func(s *policyServer) { s.delay = 0 })
		h.Poll(ctx)
		wantPolicy(t, c.next(t), "w", 70)
	})
	t.Run("no etag, unchanged body", func(t *testing.T) {
		srv.set(func(s *policyServer) { s.noETag = true })
		h.Poll(ctx)
		h.Poll(ctx)
		c.none(t, 50*time.Millisecond)
	})
}

func TestHTTPSourceUnreachableAndTicker(t *testing.T) {
	ts := httptest.NewServer(http.NotFoundHandler())
	url := ts.URL
	ts.Close() // nothing listens any more
	c := make(collector, 4)
	cfg := NewDefaultHTTPConfig()
	cfg.Endpoint = url
	cfg.PollInterval = time.Second
	client, err := cfg.ToClient(context.Background(), nil, componenttest.NewNopTelemetrySettings())
	if err != nil {
		t.Fatal(err)
	}
	h := NewHTTP(client, cfg, zaptest.NewLogger(t), c.add)
	h.Start(context.Background())
	if u := <-c; u.Err == nil || !strings.Contains(u.Err.Error(), "connection refused") {
		t.Fatalf("update = %+v", u)
	}
	h.Shutdown()
}

func TestHTTPConfigValidate(t *testing.T) {
	tests := []struct {
		mod  func(*HTTPConfig)
		want string
	}{
		{func(c *HTTPConfig) { c.Endpoint = "" }, "endpoint: is required"},
		{func(c *HTTPConfig) { c.Endpoint = "ftp://x/y" }, `endpoint: "ftp://x/y" is not an http(s) URL`},
		{func(c *HTTPConfig) { c.Endpoint = "http://" }, `endpoint: "http://" is not an http(s) URL`},
		{func(c *HTTPConfig) { c.PollInterval = 10 * time.Millisecond }, "poll_interval: 10ms must be at least 1s"},
		{func(c *HTTPConfig) { c.Timeout = -time.Second }, "timeout: -1s must not be negative"},
		{func(c *HTTPConfig) { c.PollInterval = 10 * time.Second; c.Timeout = 30 * time.Second }, "timeout: 30s is longer than poll_interval 10s"},
	}
	for _, tt := range tests {
		cfg := NewDefaultHTTPConfig()
		cfg.Endpoint = "https://policies.example/v1"
		tt.mod(&cfg)
		err := cfg.Validate()
		if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("got %v, want %q", err, tt.want)
		}
	}
}
