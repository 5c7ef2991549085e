package api

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/urbanbrain/urbanbrain/auth"
	cockpit "github.com/urbanbrain/urbanbrain/cockpit-ws"
	"github.com/urbanbrain/urbanbrain/web"
)

// Route is one line of the HTTP routing table; docs/api.md must list every pattern, and the
// permission table test (app/permissions_test.go) checks what each one requires.
type Route struct {
	Pattern string
	Guarded
}

// Guarded is a route's handler with what it requires, declared where the route is: need,
// public and selfGuarded make every one.
type Guarded struct {
	http.Handler
	Perm auth.Permission // "" for a public route
	Self bool            // the handler checks the token itself (a websocket, before upgrading)
}

// need is a route that answers only a valid token whose role holds p.
func (s *Server) need(p auth.Permission, h http.HandlerFunc) Guarded {
	return Guarded{Handler: auth.Middleware(s.issuer, p)(h), Perm: p}
}

// public is a route anyone may call: probes and the pages, which carry no data.
func public(h http.Handler) Guarded { return Guarded{Handler: h} }

// selfGuarded is a route whose handler checks a token holding p itself.
func selfGuarded(p auth.Permission, h http.Handler) Guarded {
	return Guarded{Handler: h, Perm: p, Self: true}
}

// Routes is every HTTP route of the parts this server serves.
func (s *Server) Routes() []Route {
	need := s.need
	metrics := promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{Registry: s.registry})
	rs := []Route{
		{"GET /livez", public(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			writeJSON(w, http.StatusOK, LiveAnswer{Status: "ok"})
		}))},
		{"GET /readyz", public(http.HandlerFunc(s.readyz))},
		{"GET /metrics", public(metrics)},
	}
	if s.cfg.MetricsTokenRequired {
		rs[2].Guarded = need(auth.PermReadIncidents, metrics.ServeHTTP)
	}
	if s.ingest != nil {
		rs = append(rs, Route{"POST /api/v1/events", need(auth.PermIngest, s.ingest.ServeHTTP)})
	}
	if s.cfg.API {
		rs = append(rs,
			Route{"GET /api/v1/incidents", need(auth.PermReadIncidents, s.searchIncidents)},
			Route{"GET /api/v1/incidents/{id}", need(auth.PermReadIncidents, s.getIncident)},
			Route{"POST /api/v1/incidents/{id}/actions", need(auth.PermCommand, s.postAction)},
		)
		rs = append(rs, s.queryRoutes()...)                                                   // search, event history, KPIs (queries.go)
		rs = append(rs, Route{"GET /api/v1/reports", need(auth.PermReadIncidents, s.report)}) // leadership report (report.go)
		rs = append(rs, Route{"GET /api/openapi.json", public(s.openAPI(s.Routes))})          // this table as OpenAPI 3.1 (openapi.go)
		rs = append(rs, s.workflowRoutes()...)                                                // my tasks, timeline, merge, split (workflow.go)
		rs = append(rs, s.photoRoutes()...)                                                   // evidence photos (photos.go)
		rs = append(rs, s.alertRoutes()...)                                                   // CAP alerts and their feed (alerts.go)
		rs = append(rs, s.ruleRoutes()...)                                                    // rule authoring, dry run, backtest (rules.go)
		rs = append(rs, s.accountRoutes()...)                                                 // sign-in and local accounts (accounts.go)
		rs = append(rs, pageRoutes()...)                                                      // the people's screens (web)
		rs = append(rs, s.open311Routes()...)                                                 // Open311 GeoReport v2 for citizens' apps (open311.go)
	}
	if s.cockpit != nil {
		rs = append(rs, s.cockpitRoutes()...) // websockets and the wall-screen page
	}
	return rs
}

// Handler is the routing table as a mux, without the server's limits (HTTPServer adds them).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	for _, r := range s.Routes() {
		mux.Handle(r.Pattern, r.Handler)
	}
	return mux
}

// cockpitRoutes are the websockets and the wall-screen page. The websockets authenticate
// before upgrading, and are the only routes that accept the token as ?access_token= (the
// hub's handlers are wrapped in auth.AcceptQueryToken); the page is public and reads its
// token from the URL fragment.
func (s *Server) cockpitRoutes() []Route {
	page := cockpit.Page()
	return []Route{
		{"GET /ws/cockpit", selfGuarded(auth.PermCockpit, s.cockpit)},
		{"GET /ws/worker", selfGuarded(auth.PermReadIncidents, s.cockpit.WorkerHandler())}, // the worker role only
		{"GET /{$}", public(page)},
		{"GET " + cockpit.PagePrefix, public(page)},
	}
}

// pageRoutes are the people's screens (web): sign-in, operator desk, worker app, rule studio.
// They are public: a page is code, and everything it shows comes through the guarded API.
func pageRoutes() []Route {
	var rs []Route
	for _, r := range web.Routes() {
		rs = append(rs, Route{r.Pattern, public(r.Handler)})
	}
	return rs
}
