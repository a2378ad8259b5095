// Package ui serves the extension's web pages: an overview (policies,
// monitored processes, task timeline), a task page with an inline flame
// graph, a process page with per-second charts and a policy editor with
// dry-run. Everything is plain HTML, CSS and JavaScript embedded in the
// binary: no CDN, no fonts, no build step. The pages read the same JSON API
// they are served beside, on the same listener, so they have the same bind
// address and the same authentication (confighttp wraps the whole handler).
package ui

import (
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

//go:embed assets
var assets embed.FS

// ContentSecurityPolicy allows nothing but this origin's own scripts,
// styles and API; no inline script or style, no framing.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// Pages are the paths that answer with the application's page; its script
// routes by location.
var Pages = []string{"GET /{$}", "GET /tasks/{id}", "GET /process", "GET /policies/edit"}

// Register adds the pages and the assets (under /ui/) to mux.
func Register(mux *http.ServeMux) {
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the embedded tree is part of the binary
	}
	index, err := fs.ReadFile(sub, "index.html")
	if err != nil {
		panic(err)
	}
	page := func(w http.ResponseWriter, r *http.Request) {
		SecurityHeaders(w.Header())
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		if r.Method == http.MethodHead {
			return
		}
		_, _ = w.Write(index)
	}
	for _, p := range Pages {
		mux.HandleFunc(p, page)
	}
	files := http.StripPrefix("/ui/", http.FileServerFS(sub))
	mux.HandleFunc("GET /ui/", func(w http.ResponseWriter, r *http.Request) {
		SecurityHeaders(w.Header())
		// Only files: no directory listings.
		if strings.HasSuffix(r.URL.Path, "/") || path.Base(r.URL.Path) == "index.html" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
}

// SecurityHeaders sets the headers every page and asset carries.
func SecurityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
}

// Assets lists the embedded files with their sizes (page weight).
func Assets() map[string]int {
	out := map[string]int{}
	_ = fs.WalkDir(assets, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if info, err := d.Info(); err == nil {
			out[strings.TrimPrefix(p, "assets/")] = int(info.Size())
		}
		return nil
	})
	return out
}
