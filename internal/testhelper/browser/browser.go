// Package browser drives a headless Chromium for tests of the web UI
// (chromedp): a fresh profile per test, no network beyond what the page
// asks for, screenshots written as test artifacts.
package browser

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Path finds Chromium: $CONTPROF_CHROMIUM, /usr/bin/chromium, or chromium /
// chromium-browser / google-chrome on PATH.
func Path() string {
	if p := os.Getenv("CONTPROF_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// New starts a headless Chromium with a fresh user-data-dir and returns a
// chromedp context bounded by timeout; everything stops at test cleanup.
// Without Chromium the test is skipped, or fails when
// CONTPROF_REQUIRE_BROWSER=1 (CI installs it).
func New(t testing.TB, timeout time.Duration) context.Context {
	t.Helper()
	path := Path()
	if path == "" {
		if os.Getenv("CONTPROF_REQUIRE_BROWSER") == "1" {
			t.Fatal("CONTPROF_REQUIRE_BROWSER=1 but no Chromium found (apt-get install chromium, or set CONTPROF_CHROMIUM)")
		}
		t.Skip("no Chromium (apt-get install chromium, or set CONTPROF_CHROMIUM)")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true), // tests run as root
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1400, 1000),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	ctx, cancelTimeout := context.WithTimeout(ctx, timeout)
	t.Cleanup(func() {
		cancelTimeout()
		cancelCtx()
		cancelAlloc()
	})
	// Start the browser now so that a missing library fails here, clearly.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("starting Chromium %s: %v", path, err)
	}
	return ctx
}

// ArtifactDir is $CONTPROF_ARTIFACTS (created) or a directory of the test.
func ArtifactDir(t testing.TB) string {
	t.Helper()
	if d := os.Getenv("CONTPROF_ARTIFACTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

// Screenshot writes a full-page PNG (quality 100 is PNG; below, JPEG) of the current page as name.png into
// dir and logs its path.
func Screenshot(t testing.TB, ctx context.Context, dir, name string) string {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	p := filepath.Join(dir, strings.ReplaceAll(t.Name(), "/", "_")+"-"+name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot %s: %s (%d KB)", name, p, len(png)/1024)
	return p
}

// Errors collects what pages report as broken: uncaught exceptions, console
// errors, failed loads and refusals by the Content-Security-Policy.
type Errors struct {
	mu     sync.Mutex
	msgs   []string
	ignore []string
}

// WatchConsole starts collecting the page's errors; messages (or their
// URLs) containing one of ignore (e.g. an HTTP status a test provokes) are
// expected.
func WatchConsole(ctx context.Context, ignore ...string) *Errors {
	ce := &Errors{ignore: ignore}
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			if !(m.IsException() || m.Type == "error" || strings.Contains(m.Text, "Content Security Policy")) {
				continue
			}
			text := m.String() + " (" + m.URL + ")"
			expected := false
			for _, s := range ce.ignore {
				expected = expected || strings.Contains(text, s)
			}
			if !expected {
				ce.mu.Lock()
				ce.msgs = append(ce.msgs, text)
				ce.mu.Unlock()
			}
		}
	}()
	return ce
}

// Check fails the test if a page reported an error.
func (ce *Errors) Check(t testing.TB) {
	t.Helper()
	ce.mu.Lock()
	defer ce.mu.Unlock()
	if len(ce.msgs) > 0 {
		t.Fatalf("the page reported errors:\n%s", strings.Join(ce.msgs, "\n"))
	}
}

// Eval evaluates a JavaScript expression in the page.
func Eval[T any](t testing.TB, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// Wait polls a JavaScript predicate (which must yield a boolean) until it
// holds, for up to timeout.
func Wait(t testing.TB, ctx context.Context, timeout time.Duration, what, expr string) {
	t.Helper()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(timeout))); err != nil {
		t.Fatalf("waiting for %s (%s): %v", what, expr, err)
	}
}

// Do runs actions, failing the test on error.
func Do(t testing.TB, ctx context.Context, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatal(err)
	}
}
