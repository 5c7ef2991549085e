package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/google/uuid"
	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/urbanbrain/urbanbrain/auth"
	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/ingest"
	"github.com/urbanbrain/urbanbrain/open311"
	"github.com/urbanbrain/urbanbrain/storage"
)

// Open311 GeoReport v2 (docs/api.md, "Open311"; the mapping is package open311).
//
// service_request_id is the incident's id: one request per real-world problem, however many
// citizens reported it, and its status is the incident's. A request posted here is a 12345
// ticket (id O311-…) that ingest checks exactly as POST /api/v1/events; the rules and the
// incident service then raise or join an incident asynchronously, so the answer names the
// incident when it appears within open311ResolveWait, and otherwise gives the ticket id as the
// request's token (GET tokens/{token} and GET requests/{token} find the incident later).
//
// Reads are public, as Open311 portals are: everything they show is masked as for a caller
// who may see no personal data, and no caller field exists in their answers at all.

const (
	maxOpen311Form     = 64 << 10
	open311ResolveWait = 5 * time.Second
	maxOpen311IDs      = 50 // service_request_id=a,b,… in one GET requests
	open311TicketPages = 5  // pages of incidents a ticket's lookup reads at most
	open311Window      = 90 // days GET requests covers by default, and at most
	open311Prefix      = "/open311/v2/"
	open311TicketIDs   = "O311-"
)

// eventLookup is a Store that finds one stored event (both backends do): how a ticket is
// traced to the incident that holds it.
type eventLookup interface {
	GetEvent(ctx context.Context, typ, id string) (event.Event, error)
}

// open311Routes are the GeoReport v2 endpoints, .json and .xml of each. Posting needs an
// api_key (an ingest token), which the handler checks itself; everything else is public.
func (s *Server) open311Routes() []Route {
	var rs []Route
	for _, f := range open311.Formats {
		rs = append(rs,
			Route{"GET " + open311Prefix + "services." + f, public(s.limitReads(s.open311Handler(f, s.open311Services)))},
			Route{"GET " + open311Prefix + "requests." + f, public(s.limitReads(s.open311Handler(f, s.open311Requests)))},
		)
		if s.ingest != nil {
			rs = append(rs, Route{"POST " + open311Prefix + "requests." + f, selfGuarded(auth.PermIngest, s.open311Handler(f, s.open311Post))})
		}
	}
	return append(rs,
		Route{"GET " + open311Prefix + "services/{file}", public(s.limitReads(s.open311File(s.open311ServiceDefinition)))},
		Route{"GET " + open311Prefix + "requests/{file}", public(s.limitReads(s.open311File(s.open311Request)))},
		Route{"GET " + open311Prefix + "tokens/{file}", public(s.limitReads(s.open311File(s.open311Token)))},
	)
}

// newPublicReadLimiter bounds the public Open311 reads of each client address as a token's
// requests are bounded (--rate-limit): they carry no token to key a limit by, and a lookup by
// token reads pages of incidents. No limit when the per-token limit is off.
func newPublicReadLimiter(c Config) *ipLimiter {
	if c.RateLimit <= 0 {
		return nil
	}
	return newIPLimiter(rate.Limit(c.RateLimit), max(c.RateBurst, 1))
}

// limitReads answers 429 (an Open311 error, with Retry-After) to a client address over its rate.
func (s *Server) limitReads(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.publicReads != nil && !s.publicReads.allow(r) {
			format := open311.FormatJSON
			if strings.HasSuffix(r.URL.Path, "."+open311.FormatXML) {
				format = open311.FormatXML
			}
			w.Header().Set("Retry-After", "1")
			s.writeOpen311(w, format, open311Error(http.StatusTooManyRequests, "too many requests from this address; retry after the Retry-After seconds"))
			return
		}
		next(w, r)
	}
}

// open311Answer is what an Open311 handler answers: a status and the encoded body, or an error.
type open311Answer struct {
	status int
	body   func(format string) ([]byte, error)
}

func open311Error(status int, msg string) open311Answer {
	return open311Answer{status: status, body: func(f string) ([]byte, error) {
		return open311.EncodeErrors(f, []open311.Error{{Code: status, Description: msg}})
	}}
}

type open311Func func(w http.ResponseWriter, r *http.Request, name string) open311Answer

// open311Handler serves a resource in format.
func (s *Server) open311Handler(format string, h open311Func) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { s.writeOpen311(w, format, h(w, r, "")) }
}

// open311File serves a resource named by the last segment, "<name>.<format>".
func (s *Server) open311File(h open311Func) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name, format, ok := open311.SplitFormat(r.PathValue("file"))
		if !ok {
			s.writeOpen311(w, open311.FormatJSON, open311Error(http.StatusBadRequest, "want <id>.json or <id>.xml"))
			return
		}
		s.writeOpen311(w, format, h(w, r, name))
	}
}

func (s *Server) writeOpen311(w http.ResponseWriter, format string, a open311Answer) {
	b, err := a.body(format)
	if err != nil {
		s.log.Error("open311: encode an answer", zap.Error(err))
		a.status, b = http.StatusInternalServerError, nil
	}
	w.Header().Set("Content-Type", open311.ContentType(format))
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(a.status)
	_, _ = w.Write(b)
}

func (s *Server) open311Services(http.ResponseWriter, *http.Request, string) open311Answer {
	svcs := open311.Services(s.city)
	return open311Answer{status: http.StatusOK, body: func(f string) ([]byte, error) { return open311.EncodeServices(f, svcs) }}
}

// open311ServiceDefinition: no service of the city has metadata, so none has a definition; the
// specification answers that with an error.
func (s *Server) open311ServiceDefinition(_ http.ResponseWriter, _ *http.Request, code string) open311Answer {
	if _, ok := s.city.Category(code); !ok {
		return open311Error(http.StatusNotFound, "no service "+clipText(code))
	}
	return open311Error(http.StatusNotFound, "service "+code+" has no definition: its metadata is false, it takes no attributes")
}

// open311Post files a citizen's request as a 12345 ticket through ingest.
func (s *Server) open311Post(w http.ResponseWriter, r *http.Request, _ string) open311Answer {
	r.Body = http.MaxBytesReader(w, r.Body, maxOpen311Form)
	var err error
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "multipart/form-data" {
		err = r.ParseMultipartForm(maxOpen311Form)
	} else {
		err = r.ParseForm()
	}
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return open311Error(http.StatusRequestEntityTooLarge, "form over the 64 KiB limit")
		}
		return open311Error(http.StatusBadRequest, "cannot read the form: "+err.Error())
	}
	claims, a, ok := s.open311Key(w, r)
	if !ok {
		return a
	}
	req, err := open311.ParseRequest(r.Form)
	if err != nil {
		return open311Error(http.StatusBadRequest, strings.ReplaceAll(err.Error(), "open311: bad request: ", ""))
	}
	svc, ok := s.city.Category(req.ServiceCode)
	if !ok {
		return open311Error(http.StatusBadRequest, "service_code "+clipText(req.ServiceCode)+" not found: GET services lists them")
	}
	ticket := open311TicketIDs + strings.ToUpper(strings.ReplaceAll(uuid.NewString(), "-", "")[:20])
	body, err := req.CloudEvent(ticket, "open311/"+claims.Subject, svc, time.Now())
	if err != nil {
		return open311Error(http.StatusInternalServerError, "cannot build the ticket")
	}
	if a, ok := s.open311Ingest(w, r, claims, body); !ok {
		return a
	}
	s.log.Info("open311: request filed", zap.String("ticket", ticket), zap.String("client", claims.Subject), zap.String("service", req.ServiceCode))

	rc := open311.Receipt{Token: ticket, ServiceNotice: "已受理，工单号 " + ticket}
	ctx, cancel := context.WithTimeout(r.Context(), min(open311ResolveWait, s.cfg.CommandTimeout))
	defer cancel()
	if id := s.awaitTicket(ctx, ticket); id != "" {
		rc.ServiceRequestID, rc.Token = id, ""
	}
	return open311Answer{status: http.StatusOK, body: func(f string) ([]byte, error) { return open311.EncodeReceipts(f, []open311.Receipt{rc}) }}
}

// open311Key authenticates the api_key — a bearer token of a role that may post events,
// normally `ingest` — through the same checks, revocation list and per-token rate limit as
// the Authorization header of every other route (which a client may send instead).
func (s *Server) open311Key(w http.ResponseWriter, r *http.Request) (auth.Claims, open311Answer, bool) {
	inner := r.Clone(r.Context())
	if key := strings.TrimSpace(r.Form.Get("api_key")); key != "" {
		inner.Header.Set("Authorization", "Bearer "+key)
	}
	rec := newCapture()
	claims, ok := auth.Authorize(rec, inner, s.issuer, auth.PermIngest)
	if ok {
		return claims, open311Answer{}, true
	}
	if ra := rec.Header().Get("Retry-After"); ra != "" {
		w.Header().Set("Retry-After", ra) // over the token's rate
	}
	var e struct{ Error string }
	_ = json.Unmarshal(rec.body.Bytes(), &e)
	msg := "api_key refused: " + e.Error
	if rec.Code == http.StatusUnauthorized && r.Form.Get("api_key") == "" && r.Header.Get("Authorization") == "" {
		msg = "api_key is required (a token of role ingest: urbanbrain token --role ingest --subject <client>)"
	}
	return auth.Claims{}, open311Error(rec.Code, msg), false
}

// open311Ingest hands the ticket to the ingest handler of POST /api/v1/events — the same
// decoding, validation, location, dedup and dead letter — and turns a refusal into an
// Open311 error with ingest's status and reason.
func (s *Server) open311Ingest(w http.ResponseWriter, r *http.Request, claims auth.Claims, body []byte) (open311Answer, bool) {
	inner, err := http.NewRequestWithContext(auth.WithClaims(r.Context(), claims), http.MethodPost, "/api/v1/events", bytes.NewReader(body))
	if err != nil {
		return open311Error(http.StatusInternalServerError, "cannot build the ticket"), false
	}
	inner.Header.Set("Content-Type", ingest.MediaCloudEvent)
	for _, h := range []string{"traceparent", "tracestate", "User-Agent", "X-Request-Id"} {
		if v := r.Header.Get(h); v != "" {
			inner.Header.Set(h, v)
		}
	}
	rec := newCapture()
	s.ingest.ServeHTTP(rec, inner)
	if rec.Code == http.StatusAccepted {
		return open311Answer{}, true
	}
	if ra := rec.Header().Get("Retry-After"); ra != "" {
		w.Header().Set("Retry-After", ra)
	}
	var e struct{ Code, Error string }
	_ = json.Unmarshal(rec.body.Bytes(), &e)
	return open311Error(rec.Code, e.Code+": "+e.Error), false
}

// awaitTicket waits for the incident that holds ticket, asking the store with a backoff until
// ctx ends; "" if none appeared.
func (s *Server) awaitTicket(ctx context.Context, ticket string) string {
	for wait := 50 * time.Millisecond; ; wait = min(2*wait, 500*time.Millisecond) {
		if id, err := s.ticketIncident(ctx, ticket); err == nil && id != "" {
			return id
		}
		select {
		case <-ctx.Done():
			return ""
		case <-time.After(wait):
		}
	}
}

// ticketIncident finds the incident that holds a 12345 ticket's report: "" and no error while
// there is none (yet), storage.ErrNotFound when the ticket is not stored at all. It reads the
// incidents of the ticket's street updated since the ticket came (a report's link updates its
// incident), newest first, at most open311TicketPages pages; an incident merged into another
// answers with the one that took its reports.
func (s *Server) ticketIncident(ctx context.Context, ticket string) (string, error) {
	lookup, ok := s.store.(eventLookup)
	if !ok || s.store == nil {
		return "", errors.New("the store cannot look up tickets")
	}
	ev, err := lookup.GetEvent(ctx, event.TypeHotlineTicket, ticket)
	if err != nil {
		return "", err
	}
	since := ev.Time
	if !ev.Received.IsZero() && ev.Received.Before(since) {
		since = ev.Received
	}
	f := storage.IncidentFilter{Street: ev.Area.Street, Since: since.Add(-time.Minute), Limit: storage.MaxLimit}
	for page := range open311TicketPages {
		f.Offset = page * storage.MaxLimit
		incs, err := s.store.ListIncidents(ctx, f)
		if err != nil {
			return "", err
		}
		for _, inc := range incs {
			if !slices.ContainsFunc(inc.Reports, func(r event.Report) bool {
				return r.EventID == ticket || r.LastEventID == ticket || r.TicketID == ticket
			}) {
				continue
			}
			if inc.Status == event.StatusMerged && inc.MergedInto != "" {
				return inc.MergedInto, nil
			}
			return inc.ID, nil
		}
		if len(incs) < storage.MaxLimit {
			break
		}
	}
	return "", nil
}

// open311Failed is the answer to a lookup that failed: 404 with notFound for what is not there,
// 503 when the store could not say (logged).
func (s *Server) open311Failed(err error, notFound, doing string) (open311Answer, bool) {
	switch {
	case err == nil:
		return open311Answer{}, false
	case errors.Is(err, storage.ErrNotFound):
		return open311Error(http.StatusNotFound, notFound), true
	}
	s.log.Error("open311: cannot "+doing, zap.Error(err))
	return open311Error(http.StatusServiceUnavailable, "cannot "+doing+" now"), true
}

// open311Token answers GET tokens/{token}: the request's id once its incident exists.
func (s *Server) open311Token(_ http.ResponseWriter, r *http.Request, token string) open311Answer {
	if s.store == nil {
		return open311Error(http.StatusServiceUnavailable, "the store is not open yet")
	}
	id, err := s.ticketIncident(r.Context(), token)
	if a, failed := s.open311Failed(err, "no request with token "+clipText(token), "look the token up"); failed {
		return a
	}
	ts := []open311.TokenStatus{{ServiceRequestID: id, Token: token}}
	return open311Answer{status: http.StatusOK, body: func(f string) ([]byte, error) { return open311.EncodeTokens(f, ts) }}
}

// open311Request answers GET requests/{id}: an incident id, or a request's token.
func (s *Server) open311Request(_ http.ResponseWriter, r *http.Request, id string) open311Answer {
	if s.store == nil {
		return open311Error(http.StatusServiceUnavailable, "the store is not open yet")
	}
	sr, err := s.open311One(r, id)
	if a, failed := s.open311Failed(err, "no service request "+clipText(id), "read the request"); failed {
		return a
	}
	return open311Answer{status: http.StatusOK, body: func(f string) ([]byte, error) { return open311.EncodeRequests(f, []open311.ServiceRequest{sr}) }}
}

// open311One is one request by incident id or token, masked for the public, with the latest
// change's reason in its notes.
func (s *Server) open311One(r *http.Request, id string) (open311.ServiceRequest, error) {
	if !strings.HasPrefix(id, "INC-") {
		inc, err := s.ticketIncident(r.Context(), id)
		if err == nil && inc == "" {
			err = storage.ErrNotFound
		}
		if err != nil {
			return open311.ServiceRequest{}, err
		}
		id = inc
	}
	d, err := s.store.GetIncident(r.Context(), id)
	if err != nil {
		return open311.ServiceRequest{}, err
	}
	var latest *event.Change
	if n := len(d.Timeline); n > 0 {
		ch := auth.MaskChange(d.Timeline[n-1].Change, auth.Claims{})
		latest = &ch
	}
	return open311.FromIncident(auth.MaskIncident(d.Incident, auth.Claims{}), s.city, latest, photoURL(r)), nil
}

// open311Requests answers GET requests: service_request_id (a comma-separated list, which
// makes the other parameters ignored, as the specification says), or service_code (a list),
// status (open, closed or both) and start_date/end_date bounding requested_datetime (default
// the last 90 days, at most 90 days); newest update first, at most 1,000.
func (s *Server) open311Requests(_ http.ResponseWriter, r *http.Request, _ string) open311Answer {
	if s.store == nil {
		return open311Error(http.StatusServiceUnavailable, "the store is not open yet")
	}
	q := r.URL.Query()
	var out []open311.ServiceRequest
	if ids := splitList(q.Get("service_request_id")); len(ids) > 0 {
		if len(ids) > maxOpen311IDs {
			return open311Error(http.StatusBadRequest, "at most 50 service_request_id at once")
		}
		for _, id := range ids {
			sr, err := s.open311One(r, id)
			switch {
			case errors.Is(err, storage.ErrNotFound):
				continue
			case err != nil:
				s.log.Error("open311: read a request", zap.Error(err))
				return open311Error(http.StatusServiceUnavailable, "cannot read the requests now")
			}
			out = append(out, sr)
		}
		return open311Answer{status: http.StatusOK, body: func(f string) ([]byte, error) { return open311.EncodeRequests(f, out) }}
	}
	f, start, end, codes, a, ok := open311Filter(q)
	if !ok {
		return a
	}
	incs, err := s.store.ListIncidents(r.Context(), f)
	if err != nil {
		s.log.Error("open311: list requests", zap.Error(err))
		return open311Error(http.StatusServiceUnavailable, "cannot list the requests now")
	}
	photo := photoURL(r)
	for _, inc := range incs {
		if inc.CreatedAt.Before(start) || !inc.CreatedAt.Before(end) || (len(codes) > 1 && !slices.Contains(codes, inc.Category)) {
			continue
		}
		out = append(out, open311.FromIncident(auth.MaskIncident(inc, auth.Claims{}), s.city, nil, photo))
	}
	return open311Answer{status: http.StatusOK, body: func(f string) ([]byte, error) { return open311.EncodeRequests(f, out) }}
}

// open311Filter is the store's query of GET requests and the bounds it checks afterwards.
func open311Filter(q url.Values) (storage.IncidentFilter, time.Time, time.Time, []string, open311Answer, bool) {
	f := storage.IncidentFilter{Limit: storage.MaxLimit}
	var start, end time.Time
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"start_date", &start}, {"end_date", &end}} {
		if v := q.Get(p.name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return f, start, end, nil, open311Error(http.StatusBadRequest, p.name+" is not a W3C datetime (2026-03-01T08:00:00+08:00)"), false
			}
			*p.dst = t
		}
	}
	window := open311Window * 24 * time.Hour
	switch {
	case end.IsZero() && start.IsZero():
		end = time.Now().Add(time.Minute)
		start = end.Add(-window)
	case end.IsZero():
		end = start.Add(window)
	case start.IsZero():
		start = end.Add(-window)
	}
	if !start.Before(end) || end.Sub(start) > window {
		return f, start, end, nil, open311Error(http.StatusBadRequest, "start_date must be before end_date, at most 90 days apart"), false
	}
	f.Since = start // an incident created since start was updated since start too
	codes := splitList(q.Get("service_code"))
	if len(codes) == 1 {
		f.Category = codes[0]
	}
	switch st := splitList(q.Get("status")); {
	case len(st) == 0 || slices.Contains(st, open311.StatusOpen) && slices.Contains(st, open311.StatusClosed):
	case len(st) == 1 && st[0] == open311.StatusOpen:
		f.OpenOnly = true
	case len(st) == 1 && st[0] == open311.StatusClosed:
		f.Status = []event.Status{event.StatusClosed, event.StatusCancelled, event.StatusMerged}
	default:
		return f, start, end, nil, open311Error(http.StatusBadRequest, "status is open, closed or both"), false
	}
	return f, start, end, codes, open311Answer{}, true
}

// splitList reads a comma-separated parameter, spaces ignored.
func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || unicode.IsSpace(r) })
}

// photoURL makes an uploaded photo's name the URL it is served at, on the host the client
// asked (GET /api/v1/incidents/{id}/photos/{name}: a token that may read incidents sees it).
func photoURL(r *http.Request) func(incident, name string) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return func(incident, name string) string {
		return (&url.URL{Scheme: scheme, Host: r.Host, Path: "/api/v1/incidents/" + incident + "/photos/" + name}).String()
	}
}

// clipText bounds what a client sent before an answer echoes it.
func clipText(s string) string {
	if r := []rune(s); len(r) > 64 {
		return string(r[:64]) + "…"
	}
	return s
}

// capture keeps the answer of a handler called in process (the token check, ingest), so
// that the Open311 handler can answer in its own format.
type capture struct {
	header http.Header
	Code   int
	body   bytes.Buffer
}

func newCapture() *capture { return &capture{header: http.Header{}, Code: http.StatusOK} }

func (c *capture) Header() http.Header         { return c.header }
func (c *capture) Write(b []byte) (int, error) { return c.body.Write(b) }
func (c *capture) WriteHeader(code int)        { c.Code = code }

// open311RouteDocs are the Open311 routes' entries of the OpenAPI document (openapi.go). A
// route named by its format answers that format; a {file} route either, as its name says.
func open311RouteDocs() map[string]routeDoc {
	either := media{"application/json", "text/xml"}
	docs := map[string]routeDoc{
		"GET " + open311Prefix + "services/{file}": {summary: "Open311: a service's definition (none has metadata: 404) · 服务定义", tag: "open311",
			answers: map[int]any{400: either, 404: either, 429: either, 500: either}},
		"GET " + open311Prefix + "requests/{file}": {summary: "Open311: one request, by incident id or token · 诉求详情", tag: "open311",
			answers: map[int]any{200: either, 400: either, 404: either, 429: either, 500: either, 503: either}},
		"GET " + open311Prefix + "tokens/{file}": {summary: "Open311: the request a token became · 受理回执查询", tag: "open311",
			answers: map[int]any{200: either, 400: either, 404: either, 429: either, 500: either, 503: either}},
	}
	requestQuery := []param{{"service_request_id", "string", "comma-separated incident ids or tokens"},
		{"service_code", "string", "comma-separated"}, {"status", "string", "open, closed or both"},
		{"start_date", "string", "W3C datetime"}, {"end_date", "string", "W3C datetime"}}
	for _, f := range open311.Formats {
		var services, requests, receipts, fails any = []open311.Service{}, []open311.ServiceRequest{}, []open311.Receipt{}, []open311.Error{}
		if f == open311.FormatXML {
			services, requests, receipts, fails = media{"text/xml"}, media{"text/xml"}, media{"text/xml"}, media{"text/xml"}
		}
		docs["GET "+open311Prefix+"services."+f] = routeDoc{summary: "Open311: the services (categories) · 服务目录", tag: "open311",
			answers: map[int]any{200: services, 429: fails, 500: fails}}
		docs["GET "+open311Prefix+"requests."+f] = routeDoc{summary: "Open311: requests, public and masked · 诉求列表", tag: "open311",
			query: requestQuery, answers: map[int]any{200: requests, 400: fails, 429: fails, 500: fails, 503: fails}}
		docs["POST "+open311Prefix+"requests."+f] = routeDoc{summary: "Open311: file a request as a 12345 ticket (api_key: an ingest token) · 提交诉求", tag: "open311",
			body:    media{"application/x-www-form-urlencoded", "multipart/form-data"},
			answers: map[int]any{200: receipts, 400: fails, 401: fails, 403: fails, 413: fails, 422: fails, 429: fails, 500: fails, 503: fails}}
	}
	return docs
}
