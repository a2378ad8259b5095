package ui

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/contprof/contprof/internal/testhelper/browser"
)

// BenchmarkTimeline2000Tasks draws the overview's task timeline with 2,000
// tasks spread over 48 hours in headless Chromium. draw-ms/op is the time
// the page itself measures for one full redraw (what each live update of
// the task list costs); ns/op adds the DevTools round trip. page-KB is the
// weight of the page's HTML, CSS and JavaScript.
func BenchmarkTimeline2000Tasks(b *testing.B) {
	ctx := browser.New(b, 10*time.Minute)
	mux := http.NewServeMux()
	Register(mux)
	// The API is not there: the page's polls fail quietly, the timeline
	// gets its tasks from the benchmark.
	srv := httptest.NewServer(mux)
	defer srv.Close()
	browser.Do(b, ctx, chromedp.Navigate(srv.URL+"/"))
	browser.Wait(b, ctx, 30*time.Second, "timeline", `!!(window.__contprof && window.__contprof.timeline)`)
	browser.Do(b, ctx, chromedp.Evaluate[chromedp.Void](`window.__bench = Array.from({ length: 2000 }, (_, i) => {
		const created = Date.now() - i * 86.4e3;
		const st = ["finished", "finished", "finished", "failed", "running", "cancelled"][i % 6];
		return { id: "t" + i, target: ["on_cpu", "off_cpu", "network"][i % 3], state: st,
			created: new Date(created).toISOString(), started: new Date(created + 500).toISOString(),
			ended: st === "running" ? "0001-01-01T00:00:00Z" : new Date(created + 60e3).toISOString(),
			processes: [{ pid: 1000 + i % 1000, attributes: { "service.name": "svc-" + i % 20 } }],
			causes: [{ monitor: "process_cpu", threshold: 80, period: 5, count: 3, values: [81, 90, 95] }] };
	})`))
	var total float64
	b.ResetTimer()
	for b.Loop() {
		ms, err := chromedp.Run(ctx, chromedp.Evaluate[float64](`window.__contprof.timeline.setTasks(window.__bench), window.__contprof.timelineMs`))
		if err != nil {
			b.Fatal(err)
		}
		total += ms
	}
	b.ReportMetric(total/float64(b.N), "draw-ms/op")
	var weight int
	for _, n := range Assets() {
		weight += n
	}
	b.ReportMetric(float64(weight)/1024, "page-KB")
}
