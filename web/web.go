// Package web is the people's screens, served by the binary: the sign-in page, the operator
// desk (/desk/), the grid worker's phone app (/m/), the rule studio (/rules/) and the
// leadership's printable report (/report/). Each page is plain HTML, CSS and JavaScript
// embedded at build time (no build step, no CDN: a command centre's network reaches none),
// Chinese first, and talks to the same HTTP API and websockets as any other client, with the
// session cookie of a sign-in. The pages carry no data: whatever they show comes through the
// API, masked and scoped for the signed-in account.
//
// The wall screen is the cockpit's own page (cockpit-ws) and shares Secure with these.
package web

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

//go:embed static
var static embed.FS

// Pages are the page directories under static/, each served at "/<name>/" with its
// index.html there and its assets beside it ("/desk/desk.js"). "/<name>" redirects to
// "/<name>/", keeping the query. "common" holds what every page shares (ub.js, ub.css).
var Pages = []string{"login", "desk", "m", "rules", "report"}

// Route is one route of the pages: a pattern of net/http's ServeMux and its handler.
type Route struct {
	Pattern string
	Handler http.Handler
}

// Routes are the pages' routes. Every one is public: a page is code, not data.
func Routes() []Route {
	files, _ := fs.Sub(static, "static") // the embedded tree is fixed at build time
	rs := []Route{{"GET /common/", Secure(serveDir(files, "common"))}}
	for _, name := range Pages {
		rs = append(rs,
			Route{"GET /" + name + "/", Secure(serveDir(files, name))},
			Route{"GET /" + name, http.HandlerFunc(slash)},
		)
	}
	return rs
}

// serveDir serves static/<name>/: its index.html at "/<name>/", its files by name, and
// nothing else (no directory listings).
func serveDir(files fs.FS, name string) http.Handler {
	sub, _ := fs.Sub(files, name)
	prefix := "/" + name + "/"
	assets := http.StripPrefix(prefix, http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch rest := strings.TrimPrefix(r.URL.Path, prefix); {
		case rest == "" && name != "common":
			if name == "m" {
				// The phone app's service worker lives beside it and may control all of /m/.
				w.Header().Set("Service-Worker-Allowed", prefix)
			}
			http.ServeFileFS(w, r, sub, "index.html")
		case rest == "" || strings.HasSuffix(rest, "/") || rest == "index.html":
			http.NotFound(w, r)
		default:
			assets.ServeHTTP(w, r)
		}
	})
}

// slash sends "/desk?x=1" to "/desk/?x=1".
func slash(w http.ResponseWriter, r *http.Request) {
	u := *r.URL
	u.Path += "/"
	http.Redirect(w, r, u.RequestURI(), http.StatusMovedPermanently)
}

// CSP is the Content-Security-Policy of every page: scripts and styles only from this server
// (no inline script, no inline event handler, no inline style attribute), images from here,
// data: and blob: (a photo before it is sent), connections to this server's API and websockets.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; " +
	"connect-src 'self' ws: wss:; manifest-src 'self'; worker-src 'self'; base-uri 'none'; " +
	"form-action 'none'; frame-ancestors 'none'"

// Secure sets the pages' security headers, then serves h. Pages are revalidated on every
// load (no-cache), so a new binary's pages are used at once.
func Secure(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hdr := w.Header()
		hdr.Set("Content-Security-Policy", CSP)
		hdr.Set("X-Content-Type-Options", "nosniff")
		hdr.Set("Referrer-Policy", "no-referrer")
		hdr.Set("Cache-Control", "no-cache")
		h.ServeHTTP(w, r)
	})
}
