package profilingpolicyextension

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componentstatus"
	"go.opentelemetry.io/collector/config/configoptional"

	"github.com/contprof/contprof/internal/control"
	"github.com/contprof/contprof/internal/control/dispatch"
	"github.com/contprof/contprof/internal/control/policy"
	"github.com/contprof/contprof/internal/control/policysource"
)

const fileDoc = `policies:
  - name: file-cpu
    selector: { service.name: checkout }
    target: on_cpu
    items: [{ monitor: process_cpu, threshold: 80, period: 10, count: 5 }]
`

const urlDoc = `{"policies":[{"name":"url-load","target":"off_cpu","items":[{"monitor":"system_load","threshold":4,"period":5,"count":3}]}]}`

func inlinePolicies() []any {
	return []any{map[string]any{
		"name": "inline-threads", "target": "on_cpu",
		"items": []any{map[string]any{"monitor": "process_thread_count", "threshold": 500, "period": 10, "count": 1}},
	}}
}

func names(s *policy.Set) string {
	var n []string
	for _, p := range s.Policies {
		n = append(n, p.Name)
	}
	return strings.Join(n, ",")
}

type urlServer struct {
	mu   sync.Mutex
	body string
	code int
}

func (s *urlServer) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.code != 0 {
		w.WriteHeader(s.code)
		return
	}
	_, _ = w.Write([]byte(s.body))
}

func (s *urlServer) set(body string, code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.body, s.code = body, code
}

func TestAllSourcesTogether(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "policies.yaml")
	if err := os.WriteFile(path, []byte(fileDoc), 0o600); err != nil {
		t.Fatal(err)
	}
	us := &urlServer{body: urlDoc}
	ts := httptest.NewServer(us)
	defer ts.Close()

	cfg := testConfig()
	cfg.Policies = inlinePolicies()
	cfg.PolicyFile = path
	u := policysource.NewDefaultHTTPConfig()
	u.Endpoint = ts.URL
	u.PollInterval = time.Second
	cfg.PolicyURL = configoptional.Some(u)
	host := &statusHost{}
	e := startExtension(t, cfg, host)

	// All three are in force as soon as Start returns.
	set := e.Policies()
	if names(set) != "inline-threads,file-cpu,url-load" {
		t.Fatalf("policies after Start: %s", names(set))
	}
	if ev := host.last(); ev == nil || ev.Status() != componentstatus.StatusOK {
		t.Fatalf("status %+v", ev)
	}

	// Subscribers get the current set at once, then every change in order.
	var mu sync.Mutex
	var seen []*policy.Set
	unsub := e.Subscribe(func(s *policy.Set) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, s)
	})
	defer unsub()
	latest := func() *policy.Set {
		mu.Lock()
		defer mu.Unlock()
		return seen[len(seen)-1]
	}
	if latest() != set {
		t.Fatal("Subscribe did not deliver the current set")
	}

	// A broken file keeps its last good policies, is reported through
	// component status and the API.
	if err := os.WriteFile(path, []byte("policies: [{name: file-cpu, target: on_cpu, items: [{monitor: process_cpu, threshold: 800, period: 10, count: 5}]}]"), 0o600); err != nil {
		t.Fatal(err)
	}
	eventually(t, "recoverable error status", func() bool {
		ev := host.last()
		return ev.Status() == componentstatus.StatusRecoverableError
	})
	if err := host.last().Err(); !strings.Contains(err.Error(), `policy_file: `+path+`: policy "file-cpu": items[0].threshold: 800 is out of range (0,100]`) {
		t.Fatalf("status error %v", err)
	}
	if e.Policies() != set {
		t.Fatal("a broken source changed the set")
	}
	var pv policiesView
	getJSON(t, e.baseURL()+"/api/v1/policies", http.StatusOK, &pv)
	if !strings.Contains(pv.LastError, "threshold: 800") || pv.Version != set.Version || len(pv.Policies) != 3 {
		t.Fatalf("api view %+v", pv)
	}
	if pv.Sources[1].Kind != "policy_file" || !strings.Contains(pv.Sources[1].LastError, "threshold: 800") || pv.Sources[1].LoadedAt.IsZero() {
		t.Fatalf("file source %+v", pv.Sources[1])
	}
	if pv.Policies[1].Source != "policy_file" || pv.Policies[2].Source != "policy_url" || pv.Policies[0].Source != "policies" {
		t.Fatalf("sources of policies %+v", pv.Policies)
	}

	// Fixed by an editor's rename-and-replace: live within 2s, status OK.
	tmp := filepath.Join(dir, ".policies.yaml.tmp")
	if err := os.WriteFile(tmp, []byte(strings.Replace(fileDoc, "threshold: 80", "threshold: 90", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	eventually(t, "fixed file live", func() bool {
		p := e.Policies().Lookup("file-cpu")
		return p != nil && p.Items[0].Threshold == 90
	})
	if latest() != e.Policies() {
		t.Fatal("subscriber missed the change")
	}
	eventually(t, "status OK", func() bool { return host.last().Status() == componentstatus.StatusOK })

	// The URL defines a name the file has: refused, the rest stays.
	us.set(`[{"name":"file-cpu","target":"off_cpu","items":[{"monitor":"system_load","threshold":4,"period":5,"count":3}]}]`, 0)
	eventually(t, "conflict reported", func() bool {
		return host.last().Status() == componentstatus.StatusRecoverableError
	})
	if err := host.last().Err(); !strings.Contains(err.Error(), `policy_url: policy "file-cpu" is already defined by policy_file `+path) {
		t.Fatalf("conflict error %v", err)
	}
	if names(e.Policies()) != "inline-threads,file-cpu,url-load" {
		t.Fatalf("conflict changed the set: %s", names(e.Policies()))
	}

	// The URL fails outright: still the last good set.
	us.set("", http.StatusInternalServerError)
	eventually(t, "500 reported", func() bool {
		err := host.last().Err()
		return err != nil && strings.Contains(err.Error(), "HTTP 500")
	})
	if names(e.Policies()) != "inline-threads,file-cpu,url-load" {
		t.Fatalf("500 changed the set: %s", names(e.Policies()))
	}
	us.set(urlDoc, 0)
	eventually(t, "url recovered", func() bool { return host.last().Status() == componentstatus.StatusOK })
}

func TestStartErrorsAreClear(t *testing.T) {
	// The API port is taken.
	first := startExtension(t, testConfig(), nil)
	cfg := testConfig()
	cfg.API.Get().NetAddr.Endpoint = first.addr.String()
	ext, err := NewFactory().Create(context.Background(), extensionSettings(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = ext.Start(context.Background(), &statusHost{})
	if err == nil || !strings.Contains(err.Error(), "api: cannot listen on "+first.addr.String()) {
		t.Fatalf("err = %v", err)
	}
	// Auth configured without the extension present.
	cfg = testConfig()
	cfg.API.Get().Auth = authConfig("missingauth")
	ext, _ = NewFactory().Create(context.Background(), extensionSettings(), cfg)
	err = ext.Start(context.Background(), &statusHost{exts: map[component.ID]component.Component{}})
	if err == nil || !strings.Contains(err.Error(), "api: ") || !strings.Contains(err.Error(), "missingauth") {
		t.Fatalf("err = %v", err)
	}
}

func TestNoAPI(t *testing.T) {
	cfg := testConfig()
	cfg.API = configoptional.None[confighttpServerConfig]()
	e := startExtension(t, cfg, nil)
	if e.server != nil {
		t.Fatal("API started although disabled")
	}
}

// The components find the extension by the narrow interfaces they use.
func TestFindControlPlane(t *testing.T) {
	e := startExtension(t, testConfig(), nil)
	host := &statusHost{exts: map[component.ID]component.Component{component.NewID(component.MustNewType("profilingpolicy")): e}}
	if s, err := control.Find[control.Scheduler](host, component.ID{}); err != nil || s != control.Scheduler(e) {
		t.Fatalf("scheduler: %v %v", s, err)
	}
	if r, err := control.Find[dispatch.Registry](host, component.ID{}); err != nil || r != dispatch.Registry(e) {
		t.Fatalf("executor registry: %v %v", r, err)
	}
}

func getJSON(t *testing.T, url string, wantStatus int, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != wantStatus {
		t.Fatalf("GET %s: %d, want %d", url, resp.StatusCode, wantStatus)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

func BenchmarkPoliciesSnapshot(b *testing.B) {
	cfg := createDefaultConfig().(*Config)
	cfg.Policies = inlinePolicies()
	ext, err := newExtension(cfg, extensionSettings())
	if err != nil {
		b.Fatal(err)
	}
	ps, _ := policy.Decode(cfg.Policies, "")
	ext.merger.AddSource(policysource.KindInline, "")
	ext.apply(policysource.Update{Kind: policysource.KindInline, Policies: ps})
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if ext.Policies().Len() != 1 {
				b.Fatal("set")
			}
		}
	})
}
