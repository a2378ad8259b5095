package profilingpolicyextension

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/contprof/contprof/internal/control"
	"github.com/contprof/contprof/internal/control/dispatch"
	"github.com/contprof/contprof/internal/control/policy"
	"github.com/contprof/contprof/internal/decide/history"
	"github.com/contprof/contprof/internal/output/flows"
	"github.com/contprof/contprof/internal/output/profiles"
	"github.com/contprof/contprof/internal/testhelper/browser"
)

// TestUIAtScaleInBrowser loads every page with 1,000 monitored processes
// and 2,000 tasks in the history: the tables stay virtualized, the
// timeline is one canvas, and the page reports no error (a CSP refusal
// would be one). It logs the page weight and the timeline's render time.
func TestUIAtScaleInBrowser(t *testing.T) {
	ctx := browser.New(t, 3*time.Minute)
	artifacts := browser.ArtifactDir(t)
	cfg := testConfig()
	cfg.Limits.HistoryMaxTasks = 2002
	e := startExtension(t, cfg, nil)
	x := newExecutor()
	defer e.RegisterExecutor(x)()

	now := time.Now()
	hv := &historyView{hist: history.New(15*time.Minute, 1000), now: now}
	for i := range 1000 {
		p := control.Process{Host: "node-1", PID: 10000 + i, StartTime: now.Add(-time.Hour).Add(time.Duration(i) * 1234567),
			Attributes: map[string]any{"service.name": fmt.Sprintf("svc-%d", i%20), "process.executable.name": fmt.Sprintf("app-%d", i%7)}}
		hv.procs = append(hv.procs, control.ProcessStatus{Process: p, Policies: []string{"busy"},
			Latest: map[policy.Monitor]float64{policy.MonitorProcessCPU: float64(i % 100)}})
		hp := hv.hist.Track(p.Key(), p.Host, p.Attributes)
		for sec := now.Unix() - 899; sec <= now.Unix(); sec++ {
			hv.hist.SetScalar(hp, policy.MonitorProcessCPU, sec, float64((sec*7+int64(i))%100))
		}
	}
	defer e.RegisterProcessView(hv)()

	var firstID string
	for i := range 2000 {
		proc := hv.procs[i%1000].Process
		target := policy.TargetOnCPU
		if i >= 1000 {
			target = policy.TargetOffCPU
		}
		id, err := e.RequestTask(control.TaskRequest{Policy: "busy", Target: target, Duration: time.Minute, Silence: time.Second,
			Processes: []control.Process{proc},
			Causes:    []control.Cause{{Policy: "busy", Monitor: policy.MonitorProcessCPU, Threshold: 80, Period: 5, Count: 3, Values: []float64{81, 92.5, 99}, At: now}}})
		if err != nil {
			t.Fatalf("task %d: %v", i, err)
		}
		var sink dispatch.Sink
		eventually(t, "task dispatched", func() bool { sink = x.sink(id); return sink != nil })
		if firstID == "" {
			firstID = id
			sink.AddProfile(flameProfile(now))
		}
		sink.Done(nil)
	}
	// And one network task with two peers.
	netID, err := e.RequestTask(control.TaskRequest{Policy: "busy", Target: policy.TargetNetwork, Duration: time.Minute,
		Processes: []control.Process{hv.procs[0].Process}})
	if err != nil {
		t.Fatal(err)
	}
	var netSink dispatch.Sink
	eventually(t, "network task dispatched", func() bool { netSink = x.sink(netID); return netSink != nil })
	netSink.(dispatch.FlowSink).AddFlows([]flows.Flow{
		{Key: flows.Key{PID: 10000, Role: "client", Peer: "10.0.0.7", PeerPort: 5432}, PeerService: "postgres", TxBytes: 1 << 20, RxBytes: 4 << 20, Retransmits: 3, RTT: 0.0012, Opened: 4, Active: 2},
		{Key: flows.Key{PID: 10000, Role: "server", Peer: "10.0.0.9", LocalPort: 8080}, TxBytes: 9000, RxBytes: 1200, HTTPRequests: 40, HTTPErrors: 2, HTTPSeconds: 0.8},
	})
	u := e.baseURL()
	console := browser.WatchConsole(ctx, "status of 422") // the editor's invalid document, on purpose

	// Overview.
	if err := chromedp.Do(ctx, chromedp.Navigate(u+"/")); err != nil {
		t.Fatal(err)
	}
	browser.Wait(t, ctx, 30*time.Second, "timeline of 2001 tasks", `window.__contprof && window.__contprof.timelineTasks === 2001`)
	browser.Wait(t, ctx, 30*time.Second, "process rows", `document.querySelectorAll("#processes tbody tr").length > 5`)
	drawMs := browser.Eval[float64](t, ctx, `window.__contprof.timelineMs`)
	atMs := browser.Eval[float64](t, ctx, `window.__contprof.timelineAt`)
	rows := browser.Eval[int](t, ctx, `document.querySelectorAll("#processes tbody tr, #tasks tbody tr").length`)
	if rows > 200 {
		t.Fatalf("%d table rows in the DOM for 1000 processes and 2000 tasks: not virtualized", rows)
	}
	weight := browser.Eval[float64](t, ctx, `performance.getEntriesByType("navigation").concat(performance.getEntriesByType("resource")).filter(e => !e.name.includes("/api/")).reduce((n, e) => n + e.encodedBodySize, 0)`)
	t.Logf("overview: page weight %.1f KB (HTML+CSS+JS, uncompressed); 2000-task timeline drawn in %.1f ms, on screen %.0f ms after navigation (API fetch of 2000 tasks and 1000 processes included); %d table rows in the DOM",
		weight/1024, drawMs, atMs, rows)
	// Sort by PID (numbers sort descending first), filter by service.
	if err := chromedp.Do(ctx, chromedp.Click(`#processes th:first-child`)); err != nil {
		t.Fatal(err)
	}
	if first := browser.Eval[string](t, ctx, `document.querySelector("#processes tbody tr:not([style]) td").textContent`); first != "10999" {
		t.Fatalf("sorted by PID descending, first row %q", first)
	}
	if err := chromedp.Do(ctx, chromedp.SetValue(`#service-filter`, "svc-3"),
		chromedp.Evaluate[chromedp.Void](`document.querySelector("#service-filter").dispatchEvent(new Event("change"))`)); err != nil {
		t.Fatal(err)
	}
	browser.Wait(t, ctx, 30*time.Second, "filter", `[...document.querySelectorAll("#processes tbody tr:not([style])")].every(r => r.children[1].textContent === "svc-3")`)
	browser.Screenshot(t, ctx, artifacts, "overview")

	// Live: a task requested now shows up without a reload.
	liveID, err := e.RequestTask(control.TaskRequest{Target: policy.TargetOffCPU, Duration: time.Minute, Manual: true,
		Processes: []control.Process{hv.procs[1].Process}})
	if err != nil {
		t.Fatal(err)
	}
	browser.Wait(t, ctx, 20*time.Second, "live update", fmt.Sprintf(`window.__contprof.timeline.tasks.some(x => x.id === %q)`, liveID))

	// Task page with its flame graph.
	if err := chromedp.Do(ctx, chromedp.Navigate(u+"/tasks/"+firstID)); err != nil {
		t.Fatal(err)
	}
	browser.Wait(t, ctx, 30*time.Second, "flame graph", `document.querySelectorAll("#flame-svg g").length >= 4`)
	text := browser.Eval[string](t, ctx, `document.querySelector("#flame-svg").textContent`)
	for _, fn := range []string{"main.main", "main.burn", "do_syscall_64"} {
		if !strings.Contains(text, fn) {
			t.Fatalf("flame graph lacks %s: %q", fn, text)
		}
	}
	if err := chromedp.Do(ctx, chromedp.SendKeys(`#flame-search`, "burn")); err != nil {
		t.Fatal(err)
	}
	browser.Wait(t, ctx, 30*time.Second, "search highlight", `[...document.querySelectorAll("#flame-svg g.match")].map(g => g.dataset.name).join() === "main.burn"`)
	if c := browser.Eval[string](t, ctx, `document.querySelector(".cause").textContent`); !strings.Contains(c, "process_cpu ≥ 80") || !strings.Contains(c, "81, 92.50, 99") {
		t.Fatalf("cause shows %q", c)
	}
	if n := browser.Eval[int](t, ctx, `document.querySelectorAll("#flame-svg g.ft-kernel").length`); n != 1 {
		t.Fatalf("%d kernel-coloured frames, want 1", n)
	}
	browser.Screenshot(t, ctx, artifacts, "task")
	// Click to zoom on main.burn: it becomes the full width.
	if err := chromedp.Do(ctx, chromedp.Click(`#flame-svg g.match rect`)); err != nil {
		t.Fatal(err)
	}
	browser.Wait(t, ctx, 30*time.Second, "zoom", `(() => { const r = document.querySelector("#flame-svg g.match rect"); const svg = document.querySelector("#flame-svg"); return r && Math.abs(r.getBBox().width - svg.viewBox.baseVal.width) < 2; })()`)

	// Network task page: flow table and topology.
	browser.Do(t, ctx, chromedp.Navigate(u+"/tasks/"+netID))
	browser.Wait(t, ctx, 30*time.Second, "flow table", `document.querySelectorAll("#flows tbody tr").length === 2 && document.querySelectorAll("#topology circle").length === 3`)
	if row := browser.Eval[string](t, ctx, `document.querySelector("#flows tbody tr").textContent`); !strings.Contains(row, "postgres") || !strings.Contains(row, "4.0 MiB") || !strings.Contains(row, "1.20 ms") {
		t.Fatalf("first flow row %q", row)
	}
	browser.Screenshot(t, ctx, artifacts, "network")

	// Process page.
	if err := chromedp.Do(ctx, chromedp.Navigate(u+"/process?key="+hv.procs[5].Key())); err != nil {
		t.Fatal(err)
	}
	browser.Wait(t, ctx, 30*time.Second, "process chart", `document.querySelectorAll("canvas.series").length === 1 && !!document.querySelector("#process-key")`)
	browser.Screenshot(t, ctx, artifacts, "process")

	// Policy editor: an invalid document shows the decoder's errors inline.
	if err := chromedp.Do(ctx, chromedp.Navigate(u+"/policies/edit")); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.SetValue(`#policy-doc`, "- name: x\n  target: gpu\n  items: []\n"), chromedp.Click(`#dry-run`)); err != nil {
		t.Fatal(err)
	}
	browser.Wait(t, ctx, 30*time.Second, "inline errors", `document.querySelector("#policy-errors li") && document.querySelector("#policy-doc").classList.contains("invalid")`)
	if msg := browser.Eval[string](t, ctx, `document.querySelector("#policy-errors").textContent`); !strings.Contains(msg, `"gpu"`) {
		t.Fatalf("inline error %q does not name the value", msg)
	}
	doc := "- name: busy\n  selector: { service.name: svc-3 }\n  target: on_cpu\n  items: [{ monitor: process_cpu, threshold: 95, period: 10, count: 1 }]\n"
	if err := chromedp.Do(ctx, chromedp.SetValue(`#policy-doc`, doc), chromedp.Click(`#dry-run`)); err != nil {
		t.Fatal(err)
	}
	browser.Wait(t, ctx, 30*time.Second, "dry-run result", `document.querySelectorAll("#dry-results ul.firings li").length === 50`)
	browser.Screenshot(t, ctx, artifacts, "editor")
	console.Check(t)
}

// flameProfile is an on-CPU profile: main.main -> main.burn -> a syscall.
func flameProfile(at time.Time) *profiles.Profile {
	app := &profiles.Mapping{Start: 0x400000, Limit: 0x500000, File: "/bin/app", BuildID: "x/y/z/w"}
	kern := &profiles.Mapping{File: profiles.KernelMappingFile}
	frame := func(i int, name string, m *profiles.Mapping, typ profiles.FrameType) profiles.Frame {
		return profiles.Frame{Function: name, Address: 0x401000 + uint64(i), Mapping: m, Type: typ}
	}
	main, burn, idle := frame(0, "main.main", app, profiles.FrameNative), frame(1, "main.burn", app, profiles.FrameNative), frame(2, "main.idle", app, profiles.FrameNative)
	sys := frame(3, "do_syscall_64", kern, profiles.FrameKernel)
	return &profiles.Profile{
		Kind: profiles.OnCPU(100), Start: at, End: at.Add(10 * time.Second),
		Samples: []profiles.Sample{
			{Frames: []profiles.Frame{sys, burn, main}, Value: 70},
			{Frames: []profiles.Frame{idle, main}, Value: 30},
		},
	}
}
