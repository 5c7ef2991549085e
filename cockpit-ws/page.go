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

// Page serves the wall-screen page at "/" and its assets under PagePrefix. The page is
// public; it reads its token from the URL fragment (/#token=…), which browsers never send to
// the server, and passes it on the websocket handshake.
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
		case strings.HasPrefix(r.URL.Path, PagePrefix) && !strings.HasSuffix(r.URL.Path, "/"):
			assets.ServeHTTP(w, r)
		default:
			http.NotFound(w, r)
		}
	})
}
