package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/contprof/contprof/internal/testhelper/browser"
	"github.com/contprof/contprof/internal/testhelper/workload"
)

// The web UI against the real collector, in headless Chromium: after a
// policy fires an on-CPU task on a burning workload, the overview shows the
// policy, the process, the task and its cause; the task page draws the
// flame graph with the workload's functions and search highlights one; the
// process page charts the watched metric; the dry-run of a policy that would
// have fired lists the process. Each page's screenshot is an artifact.
func TestUIThroughCollector(t *testing.T) {
	requireRoot(t)
	ctx := browser.New(t, 4*time.Minute)
	artifacts := browser.ArtifactDir(t)
	bin := workload.BuildC(t, "hotcpu.c")
	hot := startBusy(t, bin, "contprof-uihot")
	port := freePort(t)
	api := apiURL(port)
	// Low thresholds: the workload burns all it gets, but on a shared
	// machine that can be a small share; what is under test is the UI.
	cfg := testConfig{
		Policies: `
- name: ui-hot-cpu
  selector: { process.executable.name: contprof-uihot }
  target: on_cpu
  duration: 6s
  items:
    - { monitor: process_cpu, threshold: 5, period: 5, count: 3 }`,
		APIPort:  port,
		Receiver: "include: { executables: [contprof-uihot] }\nprofiling: { report_interval: 3s }",
		Signals:  []string{"profiles"}, // the receiver runs on-CPU tasks for a profiles pipeline
	}.yaml()
	c := startCollector(t, writeConfig(t, cfg))
	c.waitFor("Everything is ready", time.Minute)

	defer func() {
		if t.Failed() {
			if resp, err := http.Get(api + "/api/v1/processes"); err == nil {
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				t.Logf("processes: %s", body)
			}
		}
	}()
	task := waitTask(t, api, 60*time.Second, func(x apiTask) bool {
		return x.Policy == "ui-hot-cpu" && len(x.Processes) == 1 && x.Processes[0].PID == hot.PID()
	})
	task = waitTask(t, api, 40*time.Second, func(x apiTask) bool {
		return x.ID == task.ID && x.State == "finished" && x.Profile != nil && x.Profile.Bytes > 0
	})
	pid := strconv.Itoa(hot.PID())
	console := browser.WatchConsole(ctx, "status of 422")

	// Overview: policy, process, task and its cause.
	browser.Do(t, ctx, chromedp.Navigate(api+"/"))
	browser.Wait(t, ctx, 30*time.Second, "policy row", `!!document.querySelector("#policies") && document.querySelector("#policies").textContent.includes("ui-hot-cpu")`)
	browser.Do(t, ctx, chromedp.SendKeys(`#process-filter`, pid))
	browser.Wait(t, ctx, 30*time.Second, "process row", fmt.Sprintf(`[...document.querySelectorAll("#processes tbody tr")].some(r => r.children[0] && r.children[0].textContent === %q && r.textContent.includes("ui-hot-cpu"))`, pid))
	browser.Wait(t, ctx, 30*time.Second, "task row with its cause", fmt.Sprintf(`[...document.querySelectorAll("#tasks tbody tr")].some(r => r.textContent.includes(%q) && r.textContent.includes("process_cpu ≥ 5 in 3 of 5s"))`, task.ID))
	// Hovering the task's mark on the timeline shows the cause.
	tip := browser.Eval[string](t, ctx, fmt.Sprintf(`(() => {
		const tl = window.__contprof.timeline, m = tl.marks.find(m => m.task.id === %q);
		if (!m) return "no mark";
		const r = tl.canvas.getBoundingClientRect();
		tl.canvas.dispatchEvent(new MouseEvent("mousemove", { clientX: r.left + (m.x0 + m.x1) / 2, clientY: r.top + (m.y + m.y1) / 2, bubbles: true }));
		return document.querySelector("#tip").hidden ? "hidden" : document.querySelector("#tip").textContent;
	})()`, task.ID))
	if !strings.Contains(tip, task.ID) || !strings.Contains(tip, "cause: process_cpu ≥ 5") || !strings.Contains(tip, "pid "+pid) {
		t.Fatalf("timeline tooltip %q lacks the task, its process or its cause", tip)
	}
	browser.Screenshot(t, ctx, artifacts, "overview")

	// Task page: flame graph with the workload's functions; search.
	browser.Do(t, ctx, chromedp.Navigate(api+"/tasks/"+task.ID))
	browser.Wait(t, ctx, 30*time.Second, "flame graph", `document.querySelectorAll("#flame-svg g").length > 2`)
	flameText := browser.Eval[string](t, ctx, `[...document.querySelectorAll("#flame-svg g")].map(g => g.dataset.name).join("\n")`)
	for _, fn := range []string{"hot_a", "hot_b", "main"} {
		if !strings.Contains(flameText, fn) {
			t.Fatalf("flame graph DOM lacks %s:\n%s", fn, flameText)
		}
	}
	browser.Do(t, ctx, chromedp.SendKeys(`#flame-search`, "hot_a"))
	browser.Wait(t, ctx, 10*time.Second, "search highlight", `[...document.querySelectorAll("#flame-svg g.match")].length > 0 && [...document.querySelectorAll("#flame-svg g.match")].every(g => g.dataset.name.includes("hot_a"))`)
	if info := browser.Eval[string](t, ctx, `document.querySelector("#flame-info").textContent`); !strings.Contains(info, "match") {
		t.Fatalf("search info %q", info)
	}
	if href := browser.Eval[string](t, ctx, `document.querySelector("#pprof-link").getAttribute("href")`); href != "/api/v1/tasks/"+task.ID+"/profile" {
		t.Fatalf("pprof link %q", href)
	}
	browser.Screenshot(t, ctx, artifacts, "task")

	// Process page: the watched metric per second with its threshold.
	key := browser.Eval[string](t, ctx, `document.querySelector("dd a[href^='/process']").getAttribute("href")`)
	browser.Do(t, ctx, chromedp.Navigate(api+key))
	browser.Wait(t, ctx, 30*time.Second, "process_cpu chart", `!!document.querySelector("canvas.series[data-monitor=process_cpu]")`)
	browser.Screenshot(t, ctx, artifacts, "process")

	// Policy editor: a policy that would have fired lists the process.
	doc := `- name: what-if
  selector: { process.executable.name: contprof-uihot }
  target: on_cpu
  items: [{ monitor: process_cpu, threshold: 3, period: 5, count: 3 }]
`
	browser.Do(t, ctx, chromedp.Navigate(api+"/policies/edit"))
	browser.Wait(t, ctx, 10*time.Second, "editor", `!!document.querySelector("#policy-doc") && document.querySelector("#policy-doc").value.includes("ui-hot-cpu")`)
	browser.Do(t, ctx, chromedp.SetValue(`#policy-doc`, doc), chromedp.SetValue(`#dry-minutes`, "5"), chromedp.Click(`#dry-run`))
	browser.Wait(t, ctx, 30*time.Second, "dry-run firing", fmt.Sprintf(`[...document.querySelectorAll("#dry-results ul.firings li")].some(li => li.textContent.includes("pid %s"))`, pid))
	firing := browser.Eval[string](t, ctx, `document.querySelector("#dry-results ul.firings li").textContent`)
	if !strings.Contains(firing, "process_cpu ≥ 3") {
		t.Fatalf("firing %q lacks its cause", firing)
	}
	browser.Screenshot(t, ctx, artifacts, "editor")
	// The dry-run started nothing.
	for _, x := range getTasks(t, api) {
		if x.Policy == "what-if" {
			t.Fatalf("the dry-run started task %s", x.ID)
		}
	}
	console.Check(t)
}

// hasFlowTo reports whether the extension's flows of a network task have
// a flow of pid with peerPID that carried HTTP requests and bytes.
func hasFlowTo(t *testing.T, api, taskID string, pid, peerPID int) bool {
	t.Helper()
	resp, err := http.Get(api + "/api/v1/tasks/" + taskID + "/flows")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var body struct {
		Flows []struct {
			PID          int   `json:"pid"`
			PeerPID      int   `json:"peer_pid"`
			RxBytes      int64 `json:"rx_bytes"`
			HTTPRequests int64 `json:"http_requests"`
		} `json:"flows"`
	}
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Fatalf("flows: %v", err)
	}
	if testing.Verbose() {
		t.Logf("flows: %s", raw)
	}
	for _, f := range body.Flows {
		if f.PID == pid && f.PeerPID == peerPID && f.RxBytes > 0 && f.HTTPRequests > 0 {
			return true
		}
	}
	t.Logf("flows: %s", raw)
	return false
}

// TestUIWithBearerTokenInBrowser: with api.auth the pages need the token
// too; a browser that presents it (here through DevTools, as a proxy would)
// gets every page, asset and API call, and a manual task started from the
// overview's form goes through the POST endpoint with the same token.
func TestUIWithBearerTokenInBrowser(t *testing.T) {
	requireRoot(t)
	const token = "ui-e2e-token"
	ctx := browser.New(t, 3*time.Minute)
	bin := workload.BuildC(t, "hotcpu.c")
	w := startBusy(t, bin, "contprof-uiauth")
	port := freePort(t)
	api := apiURL(port)
	cfg := testConfig{
		APIPort:        port,
		API:            "auth: { authenticator: bearertokenauth }",
		Extensions:     "bearertokenauth:\n  token: " + token,
		ExtensionNames: []string{"bearertokenauth"},
		Receiver:       "include: { executables: [contprof-uiauth] }\nprofiling: { report_interval: 2s }",
		Signals:        []string{"profiles"},
	}.yaml()
	c := startCollector(t, writeConfig(t, cfg))
	c.waitFor("Everything is ready", time.Minute)

	// Without the token (TestAPIAuthWithBearerToken checks every page).
	resp, err := http.Get(api + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("the overview without the token: %d, want 401", resp.StatusCode)
	}
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{
		Headers: network.Headers{"Authorization": "Bearer " + token}}); err != nil {
		t.Fatal(err)
	}
	console := browser.WatchConsole(ctx)
	pid := strconv.Itoa(w.PID())
	browser.Do(t, ctx, chromedp.Navigate(api+"/"), chromedp.SendKeys(`#process-filter`, pid))
	browser.Wait(t, ctx, 30*time.Second, "the monitored process", fmt.Sprintf(`[...document.querySelectorAll("#processes tbody tr")].some(r => r.children[0] && r.children[0].textContent === %q)`, pid))
	browser.Do(t, ctx, chromedp.SetValue(`#manual-task input[name=pid]`, pid), chromedp.SetValue(`#manual-task input[name=duration]`, "3s"),
		chromedp.Click(`#manual-task button`))
	browser.Wait(t, ctx, 30*time.Second, "manual task started", `!!document.querySelector("#manual-task a[href^='/tasks/']")`)
	id := strings.TrimPrefix(browser.Eval[string](t, ctx, `document.querySelector("#manual-task a").getAttribute("href")`), "/tasks/")
	browser.Do(t, ctx, chromedp.Navigate(api+"/tasks/"+id))
	browser.Wait(t, ctx, 30*time.Second, "the manual task's page", `document.querySelector("#task-id") && document.body.textContent.includes("manual (API)")`)
	console.Check(t)
}
