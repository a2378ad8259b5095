package profilingpolicyextension

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component"

	"github.com/contprof/contprof/extension/profilingpolicyextension/internal/ui"
	"github.com/contprof/contprof/internal/control"
	"github.com/contprof/contprof/internal/control/dispatch"
	"github.com/contprof/contprof/internal/control/policy"
	"github.com/contprof/contprof/internal/decide/history"
	"github.com/contprof/contprof/internal/output/flame"
	"github.com/contprof/contprof/internal/output/flows"
	"github.com/contprof/contprof/internal/output/profiles"
)

// uiPaths are every page and asset of the UI.
func uiPaths() []string {
	paths := []string{"/", "/tasks/abc", "/process?key=h/1/0", "/policies/edit"}
	for name := range ui.Assets() {
		if name != "index.html" {
			paths = append(paths, "/ui/"+name)
		}
	}
	return paths
}

func TestUIPagesNeedAuthAndCarryCSP(t *testing.T) {
	cfg := testConfig()
	cfg.API.Get().Auth = authConfig("tokenauth")
	host := &statusHost{exts: map[component.ID]component.Component{component.MustNewID("tokenauth"): &tokenAuth{token: "s3cret"}}}
	e := startExtension(t, cfg, host)
	u := e.baseURL()
	for _, p := range append(uiPaths(), "/api/v1/tasks/x/flame", "/api/v1/processes/history?key=a", "/api/v1/policies/document") {
		if status, body, _ := do(t, "GET", u+p, "", ""); status != http.StatusUnauthorized {
			t.Errorf("GET %s without credentials: %d %.80s", p, status, body)
		}
	}
	if status, _, _ := do(t, "POST", u+"/api/v1/policies/dryrun", "application/yaml", "[]"); status != http.StatusUnauthorized {
		t.Errorf("dry-run without credentials: %d", status)
	}
	for _, p := range uiPaths() {
		status, body, hdr := do(t, "GET", u+p, "", "", "Authorization", "Bearer s3cret")
		if status != http.StatusOK || len(body) == 0 {
			t.Fatalf("GET %s: %d", p, status)
		}
		csp := hdr.Get("Content-Security-Policy")
		if csp != ui.ContentSecurityPolicy || hdr.Get("X-Content-Type-Options") != "nosniff" || hdr.Get("X-Frame-Options") != "DENY" {
			t.Fatalf("GET %s: headers %v", p, hdr)
		}
		if strings.HasSuffix(p, ".js") && !strings.HasPrefix(hdr.Get("Content-Type"), "text/javascript") {
			t.Fatalf("GET %s: Content-Type %q", p, hdr.Get("Content-Type"))
		}
	}
	if status, _, _ := do(t, "GET", u+"/ui/", "", "", "Authorization", "Bearer s3cret"); status != http.StatusNotFound {
		t.Fatalf("asset directory listing: %d", status)
	}
}

func TestCSPIsStrictAndPagesHaveNoInlineCode(t *testing.T) {
	for _, bad := range []string{"unsafe-inline", "unsafe-eval", "*", "http:", "https:", "data:"} {
		if strings.Contains(ui.ContentSecurityPolicy, bad) {
			t.Fatalf("CSP allows %q: %s", bad, ui.ContentSecurityPolicy)
		}
	}
	e := startExtension(t, testConfig(), nil)
	_, page, _ := do(t, "GET", e.baseURL()+"/", "", "")
	inline := regexp.MustCompile(`(?i)<script(?:\s[^>]*)?>\s*[^<\s]|<style|\sstyle=|\son[a-z]+=|javascript:`)
	if m := inline.Find(page); m != nil {
		t.Fatalf("page has inline code %q", m)
	}
	for _, src := range regexp.MustCompile(`(?:src|href)="([^"]+)"`).FindAllSubmatch(page, -1) {
		if !strings.HasPrefix(string(src[1]), "/") {
			t.Fatalf("page loads %s from elsewhere", src[1])
		}
	}
	// No credential or token is written into what the browser gets.
	for name := range ui.Assets() {
		_, body, _ := do(t, "GET", e.baseURL()+"/ui/"+name, "", "")
		if regexp.MustCompile(`(?i)(bearer\s+[a-z0-9]|password\s*[:=]\s*["'][^"']+|api[_-]?key\s*[:=])`).Match(body) {
			t.Fatalf("%s looks like it embeds a secret", name)
		}
	}
	var weight int
	for _, n := range ui.Assets() {
		weight += n
	}
	t.Logf("page weight: %.1f KB uncompressed (%d files)", float64(weight)/1024, len(ui.Assets()))
}

// historyView is a process view with history, standing in for the
// processor.
type historyView struct {
	procs []control.ProcessStatus
	hist  *history.Store
	now   time.Time
}

func (v *historyView) Processes() []control.ProcessStatus { return v.procs }
func (v *historyView) History(key string) (history.Window, bool) {
	return v.hist.Get(key, v.now)
}
func (v *historyView) DryRun(ps []policy.Policy, lookback time.Duration) []history.PolicyRun {
	return v.hist.DryRun(ps, v.now, lookback)
}
func (v *historyView) HistorySpan() time.Duration { return v.hist.Span() }

func TestDryRunEndpoint(t *testing.T) {
	e := startExtension(t, testConfig(), nil)
	now := time.Unix(100000, 0)
	hv := &historyView{hist: history.New(15*time.Minute, 10), now: now}
	hot := control.Process{Host: "h", PID: 42, Attributes: map[string]any{"process.executable.name": "hot", "service.name": "svc"}}
	cold := control.Process{Host: "h", PID: 43, Attributes: map[string]any{"process.executable.name": "cold"}}
	hv.procs = []control.ProcessStatus{{Process: hot}, {Process: cold}}
	hp := hv.hist.Track(hot.Key(), "h", hot.Attributes)
	for sec := now.Unix() - 300; sec <= now.Unix(); sec++ {
		v := 10.0
		if sec > now.Unix()-60 && sec < now.Unix()-50 {
			v = 95
		}
		hv.hist.SetScalar(hp, policy.MonitorProcessCPU, sec, v)
	}
	defer e.RegisterProcessView(hv)()
	u := e.baseURL() + "/api/v1/policies/dryrun?minutes=5"

	status, body, _ := do(t, "POST", u, "application/yaml", `
- name: burn
  selector: { process.executable.name: { regex: "hot|cold" } }
  target: on_cpu
  items: [{ monitor: process_cpu, threshold: 90, period: 5, count: 3 }]
- name: never
  selector: { process.executable.name: cold }
  target: off_cpu
  items: [{ monitor: process_cpu, threshold: 90, period: 5, count: 3 }]
`)
	if status != http.StatusOK {
		t.Fatalf("dry-run: %d %s", status, body)
	}
	var v dryRunView
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatal(err)
	}
	if !v.Valid || len(v.Policies) != 2 {
		t.Fatalf("%s", body)
	}
	burn, never := v.Policies[0], v.Policies[1]
	if len(burn.Selects) != 2 || len(burn.Fired) != 1 || burn.Fired[0].Process != hot.Key() || burn.Fired[0].Triggers != 1 {
		t.Fatalf("burn: %+v", burn)
	}
	if len(never.Selects) != 1 || len(never.Fired) != 0 {
		t.Fatalf("never: %+v", never)
	}

	// Invalid documents answer the decoder's own messages, one per problem.
	bad := "- name: x\n  target: gpu\n  items: [{ monitor: process_cpu, threshold: -1, period: 5, count: 9 }]\n"
	status, body, _ = do(t, "POST", u, "application/yaml", bad)
	_, want := policy.Parse([]byte(bad), "")
	if status != http.StatusUnprocessableEntity || want == nil {
		t.Fatalf("invalid: %d %s", status, body)
	}
	var iv dryRunView
	_ = json.Unmarshal(body, &iv)
	if iv.Valid || strings.Join(iv.Errors, "\n") != strings.TrimSpace(want.Error()) || len(iv.Errors) < 2 {
		t.Fatalf("errors %q, want the decoder's %q", iv.Errors, want)
	}
	status, body, _ = do(t, "POST", e.baseURL()+"/api/v1/policies/dryrun?minutes=0", "application/yaml", "[]")
	wantError(t, status, body, 400, "minutes:")
}

func TestFlameEndpoint(t *testing.T) {
	e := startExtension(t, testConfig(), nil)
	x := newExecutor()
	defer e.RegisterExecutor(x)()
	id, err := e.RequestTask(control.TaskRequest{Target: policy.TargetOnCPU, Duration: time.Minute,
		Processes: []control.Process{{Host: "h", PID: 7}}})
	if err != nil {
		t.Fatal(err)
	}
	u := e.baseURL() + "/api/v1/tasks/" + id + "/flame"
	status, body, _ := do(t, "GET", u, "", "")
	wantError(t, status, body, 404, "has no profile yet")

	var sink dispatch.Sink
	eventually(t, "task dispatched", func() bool { sink = x.sink(id); return sink != nil })
	for i, start := range []int64{1000, 1003} {
		sink.AddProfile(&profiles.Profile{
			Kind: profiles.Kind{SampleType: "samples", SampleUnit: "count"}, Start: time.Unix(start, 0),
			Samples: []profiles.Sample{{Value: int64(10 * (i + 1)), Frames: []profiles.Frame{{Function: "burn_cpu"}}}},
		})
	}
	var tree flame.Tree
	getJSON(t, u, 200, &tree)
	if tree.Root.Value != 30 || len(tree.Root.Kids) != 1 || tree.Root.Kids[0].Name != "burn_cpu" || len(tree.Intervals) != 2 {
		t.Fatalf("tree %+v", tree)
	}
	getJSON(t, u+"?interval=1003", 200, &tree)
	if tree.Root.Value != 20 {
		t.Fatalf("interval 1003: %d, want 20", tree.Root.Value)
	}
	status, body, _ = do(t, "GET", u+"?interval=soon", "", "")
	wantError(t, status, body, 400, `interval: "soon"`)
	status, body, _ = do(t, "GET", e.baseURL()+"/api/v1/tasks/nope/flame", "", "")
	wantError(t, status, body, 404, "no task")
}

func TestFlowsEndpoint(t *testing.T) {
	e := startExtension(t, testConfig(), nil)
	x := newExecutor()
	defer e.RegisterExecutor(x)()
	procs := []control.Process{{Host: "h", PID: 7, Attributes: map[string]any{"service.name": "web"}}}
	netID, err := e.RequestTask(control.TaskRequest{Target: policy.TargetNetwork, Duration: time.Minute, Processes: procs})
	if err != nil {
		t.Fatal(err)
	}
	cpuID, err := e.RequestTask(control.TaskRequest{Target: policy.TargetOnCPU, Duration: time.Minute, Processes: procs})
	if err != nil {
		t.Fatal(err)
	}
	var sink dispatch.Sink
	eventually(t, "task dispatched", func() bool { sink = x.sink(netID); return sink != nil })
	var body struct {
		Flows   []flows.Flow `json:"flows"`
		Dropped int          `json:"dropped"`
	}
	getJSON(t, e.baseURL()+"/api/v1/tasks/"+netID+"/flows", 200, &body)
	if len(body.Flows) != 0 {
		t.Fatalf("flows before any interval: %+v", body)
	}
	fs, ok := sink.(dispatch.FlowSink)
	if !ok {
		t.Fatal("task control's sink does not keep flows")
	}
	k := flows.Key{PID: 7, Role: "client", Peer: "10.0.0.7", PeerPort: 5432}
	fs.AddFlows([]flows.Flow{{Key: k, TxBytes: 100, RxBytes: 10, PeerService: "db"}})
	fs.AddFlows([]flows.Flow{{Key: k, TxBytes: 50, Retransmits: 2}})
	getJSON(t, e.baseURL()+"/api/v1/tasks/"+netID+"/flows", 200, &body)
	if len(body.Flows) != 1 || body.Flows[0].TxBytes != 150 || body.Flows[0].Retransmits != 2 || body.Flows[0].PeerService != "db" {
		t.Fatalf("flows %+v", body)
	}
	status, data, _ := do(t, "GET", e.baseURL()+"/api/v1/tasks/"+cpuID+"/flows", "", "")
	wantError(t, status, data, 404, "only network tasks have flows")
}
