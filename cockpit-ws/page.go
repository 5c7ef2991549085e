package cockpit

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"

	"github.com/urbanbrain/urbanbrain/web"
)

// wall is the wall-screen page: plain HTML, CSS and JavaScript, no build step, nothing
// fetched from elsewhere (the command centre's network reaches no CDN).
//
//go:embed web
var wall embed.FS

// PagePrefix is where the page's assets are served; the page itself is at "/".
const PagePrefix = "/cockpit/"

// Page serves the wall-screen page at "/" and its assets under PagePrefix, with the headers of
// every page (web.Secure). The page is public and carries no data; it reads a token from the
// URL fragment (/#token=…), which browsers never send to the server, or else uses the session
// cookie of a sign-in (the sign-in page is the web package's /login/).
func Page() http.Handler {
	files, _ := fs.Sub(wall, "web") // the embedded tree is fixed at build time
	assets := http.StripPrefix(PagePrefix, http.FileServerFS(files))
	return web.Secure(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/":
			http.ServeFileFS(w, r, files, "index.html")
		case strings.HasPrefix(r.URL.Path, PagePrefix) && !strings.HasSuffix(r.URL.Path, "/"):
			assets.ServeHTTP(w, r)
		default:
			http.NotFound(w, r)
		}
	}))
}
