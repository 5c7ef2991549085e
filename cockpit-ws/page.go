package cockpit

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

// web is the wall-screen page: plain HTML, CSS and JavaScript, no build step, nothing
// fetched from elsewhere (the command centre's network reaches no CDN).
//
//go:embed web
var web embed.FS

// PagePrefix is where the page's assets are served; the page itself is at "/".
const PagePrefix = "/cockpit/"

// LoginPath is the sign-in page (POST /api/v1/session, then back to ?next= or the wall
// screen, which then works with the session cookie instead of a token in its link).
const LoginPath = "/login"

// Page serves the wall-screen page at "/", the sign-in page at LoginPath and their assets under
// PagePrefix. The pages are public and carry no data; the wall screen reads a token from the
// URL fragment (/#token=…), which browsers never send to the server, or else uses the session
// cookie of a sign-in.
func Page() http.Handler {
	files, _ := fs.Sub(web, "web") // the embedded tree is fixed at build time
	assets := http.StripPrefix(PagePrefix, http.FileServerFS(files))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hdr := w.Header()
		hdr.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
			"connect-src 'self' ws: wss:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
		hdr.Set("X-Content-Type-Options", "nosniff")
		hdr.Set("Referrer-Policy", "no-referrer")
		hdr.Set("Cache-Control", "no-cache")
		switch {
		case r.URL.Path == "/":
			http.ServeFileFS(w, r, files, "index.html")
		case r.URL.Path == LoginPath:
			http.ServeFileFS(w, r, files, "login.html")
		case strings.HasPrefix(r.URL.Path, PagePrefix) && !strings.HasSuffix(r.URL.Path, "/"):
			assets.ServeHTTP(w, r)
		default:
			http.NotFound(w, r)
		}
	})
}
