package api

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/urbanbrain/urbanbrain/auth"
	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/storage"
)

// The queries for people (docs/api.md, "Search, history and KPIs"): incident search, event
// history and KPIs, answered by the store. Every one is narrowed to the caller's scope before
// it reaches the store — a district operator's district, a worker's grids — and everything it
// returns is masked for the caller's role.

// queryRoutes are the HTTP routes of this file; Routes adds them with the API component.
func (s *Server) queryRoutes() []Route {
	need := func(h http.HandlerFunc) Guarded { return s.need(auth.PermReadIncidents, h) }
	return []Route{
		{"GET /api/v1/search/incidents", need(s.searchIncidents)},
		{"GET /api/v1/events", need(s.eventHistory)},
		{"GET /api/v1/kpis", need(s.kpis)},
		{"GET /api/v1/city", need(s.cityMap)}, // grids, roster, agencies, categories (citymap.go)
	}
}

// errScope is a request for something outside the caller's scope.
type errScope struct{ msg string }

func (e errScope) Error() string { return e.msg }

// scope narrows a district and grid filter to what the caller may see. For a worker it returns
// the grids to keep (never nil, so a worker without grids sees nothing); for a district-scoped
// role it pins the district. Asking for another district or grid is an errScope.
func scope(c auth.Claims, district, grid string) (string, []string, error) {
	switch c.Role {
	case auth.RoleAdmin:
		return district, nil, nil
	case auth.RoleWorker:
		if grid != "" && !contains(c.Grids, grid) {
			return "", nil, errScope{"grid " + grid + " is outside your scope"}
		}
		return district, append([]string{}, c.Grids...), nil
	default:
		if c.District != "" {
			if district != "" && district != c.District {
				return "", nil, errScope{"district " + district + " is outside your scope"}
			}
			district = c.District
		}
		return district, nil, nil
	}
}

func contains(vs []string, v string) bool {
	for _, x := range vs {
		if x == v {
			return true
		}
	}
	return false
}

// searchIncidents answers GET /api/v1/incidents and GET /api/v1/search/incidents (one handler:
// the caller's scope narrows the query itself, so every page is full).
func (s *Server) searchIncidents(w http.ResponseWriter, r *http.Request) {
	claims, _ := auth.FromContext(r.Context())
	q := r.URL.Query()
	f := storage.IncidentFilter{
		Category: q.Get("category"), Severity: q.Get("severity"), Street: q.Get("street"), Grid: q.Get("grid"),
		AssigneeWorker: q.Get("assignee"), OpenOnly: q.Get("open") == "true", Text: q.Get("q"),
		TextMasked: !seesPersonalData(claims),
	}
	if f.Grid == "none" { // grid=none: the incidents no grid holds, for triage
		f.Grid, f.Ungridded = "", true
	}
	for st := range strings.SplitSeq(q.Get("status"), ",") {
		if st = strings.TrimSpace(st); st != "" {
			f.Status = append(f.Status, event.Status(st))
		}
	}
	p, err := listParamsOf(r, claims, f.Text, f.Grid)
	f.Since, f.Until, f.Limit, f.Offset, f.District, f.Grids = p.since, p.until, p.limit, p.offset, p.district, p.grids
	if s.queryError(w, err) {
		return
	}
	list, err := s.store.ListIncidents(r.Context(), f)
	if s.queryError(w, err) {
		return
	}
	total, err := s.store.CountIncidents(r.Context(), f)
	if s.queryError(w, err) {
		return
	}
	out := make([]event.Incident, 0, len(list))
	for _, inc := range list {
		if claims.CanSee(inc.Area) {
			out = append(out, auth.MaskIncident(inc, claims))
		}
	}
	if seesPersonalData(claims) && !s.auditReads(w, r, claims, incidentReads(out)) {
		return
	}
	if p.geo {
		writeGeoJSON(w, incidentFeatures(out, p.coordsys))
		return
	}
	writeJSON(w, http.StatusOK, IncidentList{Incidents: out, Count: len(out), Total: total})
}

// listParams are the parameters the incident and event lists share.
type listParams struct {
	since, until  time.Time
	limit, offset int
	district      string // the caller's scope narrows the query itself (scope)
	grids         []string
	geo           bool // a GeoJSON answer, in coordsys (geojson.go)
	coordsys      string
}

// listParamsOf reads the time range, the page, the scope of a list (for grid and the district
// asked), checks its text for the caller and reads the GeoJSON form; the first problem is the
// error.
func listParamsOf(r *http.Request, claims auth.Claims, text, grid string) (listParams, error) {
	q := r.URL.Query()
	var p listParams
	var err error
	if p.since, p.until, err = timeRange(q, 0); err != nil {
		return p, err
	}
	if p.limit, p.offset, err = page(q); err != nil {
		return p, err
	}
	if err = checkText(claims, text); err != nil {
		return p, err
	}
	if p.district, p.grids, err = scope(claims, q.Get("district"), grid); err != nil {
		return p, err
	}
	p.geo, p.coordsys, err = geoJSONRequest(r)
	return p, err
}

// eventHistory answers GET /api/v1/events: the history of a device or camera, of a place
// (a circle around a point), an area or a text, newest first.
func (s *Server) eventHistory(w http.ResponseWriter, r *http.Request) {
	claims, _ := auth.FromContext(r.Context())
	q := r.URL.Query()
	f := storage.EventFilter{
		Type: q.Get("type"), Street: q.Get("street"), Grid: q.Get("grid"), DeviceID: q.Get("device"), Text: q.Get("q"),
		TextMasked: !seesPersonalData(claims),
	}
	p, err := listParamsOf(r, claims, f.Text, f.Grid)
	f.Since, f.Until, f.Limit, f.Offset, f.District, f.Grids = p.since, p.until, p.limit, p.offset, p.district, p.grids
	if err == nil {
		f.Near, err = circle(q)
	}
	if s.queryError(w, err) {
		return
	}
	list, err := s.store.ListEvents(r.Context(), f)
	if s.queryError(w, err) {
		return
	}
	out := make([]event.Event, 0, len(list))
	var reads []personalRead
	for _, e := range list {
		if claims.CanSee(e.Area) {
			out = append(out, auth.MaskEvent(e, claims))
			if seesPersonalData(claims) {
				reads = append(reads, personalRead{eventID: e.ID, key: e.Area.Key(), fields: auth.PersonalEventFields(e)})
			}
		}
	}
	if !s.auditReads(w, r, claims, reads) {
		return
	}
	if p.geo {
		writeGeoJSON(w, eventFeatures(out, p.coordsys))
		return
	}
	writeJSON(w, http.StatusOK, EventList{Events: out, Count: len(out)})
}

// KPIResponse is the body of GET /api/v1/kpis.
type KPIResponse struct {
	Since         time.Time                    `json:"since"`
	Until         time.Time                    `json:"until"`
	District      string                       `json:"district,omitempty"`
	Grids         []string                     `json:"grids,omitempty"`
	EventRates    []storage.EventRate          `json:"event_rates"`
	OpenIncidents storage.OpenIncidents        `json:"open_incidents"`
	Stages        []storage.StageStat          `json:"stages"`
	ReportCounts  []storage.ReportCount        `json:"report_counts"`
	Limits        map[string]map[string]string `json:"limits"`
}

// kpis answers GET /api/v1/kpis: events per source per minute, open incidents by severity,
// category and district, stage times and on-time rates, and report counts, for the range
// (default: the last hour) and the caller's scope.
func (s *Server) kpis(w http.ResponseWriter, r *http.Request) {
	claims, _ := auth.FromContext(r.Context())
	q := r.URL.Query()
	var (
		f   storage.KPIFilter
		err error
	)
	if f.Since, f.Until, err = timeRange(q, time.Hour); err == nil {
		f.District, f.Grids, err = scope(claims, q.Get("district"), q.Get("grid"))
	}
	if g := q.Get("grid"); err == nil && g != "" {
		f.Grids = []string{g} // for a worker, scope has checked it is one of theirs
	}
	if s.queryError(w, err) {
		return
	}
	ctx := r.Context()
	resp := KPIResponse{Since: f.Since, Until: f.Until, District: f.District, Grids: f.Grids, Limits: map[string]map[string]string{}}
	if resp.EventRates, err = s.store.EventRates(ctx, f); s.queryError(w, err) {
		return
	}
	if resp.OpenIncidents, err = s.store.OpenIncidents(ctx, f); s.queryError(w, err) {
		return
	}
	if resp.Stages, err = s.store.StageTimes(ctx, f, s.stageLimits); s.queryError(w, err) {
		return
	}
	if resp.ReportCounts, err = s.store.ReportCounts(ctx, f); s.queryError(w, err) {
		return
	}
	for stage, bySev := range s.stageLimits {
		resp.Limits[stage] = map[string]string{}
		for sev, d := range bySev {
			resp.Limits[stage][sev] = d.String()
		}
	}
	writeJSON(w, http.StatusOK, resp)
}

// queryError answers a failed query and reports whether it did.
func (s *Server) queryError(w http.ResponseWriter, err error) bool {
	var es errScope
	switch {
	case err == nil:
		return false
	case errors.As(err, &es):
		writeError(w, http.StatusForbidden, CodeForbidden, es.msg)
	case errors.Is(err, storage.ErrInvalidFilter), errors.Is(err, errBadParam):
		writeError(w, http.StatusBadRequest, CodeInvalidRequest, err.Error())
	default:
		s.internalError(w, "query", err)
	}
	return true
}

var errBadParam = errors.New("bad parameter")

func badParam(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errBadParam, fmt.Sprintf(format, args...))
}

// timeRange reads since and until (RFC 3339). With def > 0 a missing range is the last def,
// and a missing end is now.
func timeRange(q url.Values, def time.Duration) (since, until time.Time, err error) {
	parse := func(name string) (time.Time, error) {
		s := q.Get(name)
		if s == "" {
			return time.Time{}, nil
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return time.Time{}, badParam("%s %q: want RFC 3339, e.g. 2026-03-01T08:00:00+08:00", name, s)
		}
		return t, nil
	}
	if since, err = parse("since"); err != nil {
		return
	}
	if until, err = parse("until"); err != nil {
		return
	}
	if def > 0 {
		if until.IsZero() {
			until = time.Now().UTC().Truncate(time.Second)
		}
		if since.IsZero() {
			since = until.Add(-def)
		}
	}
	return since, until, nil
}

func page(q url.Values) (limit, offset int, err error) {
	if limit, err = intParam(q.Get("limit"), storage.DefaultLimit, 1, storage.MaxLimit); err != nil {
		return 0, 0, badParam("limit: %v", err)
	}
	if offset, err = intParam(q.Get("offset"), 0, 0, 1_000_000); err != nil {
		return 0, 0, badParam("offset: %v", err)
	}
	return limit, offset, nil
}

// circle reads near=lon,lat (WGS-84) and radius (metres, default 500).
func circle(q url.Values) (*storage.Circle, error) {
	near := q.Get("near")
	if near == "" {
		if q.Get("radius") != "" {
			return nil, badParam("radius needs near=lon,lat")
		}
		return nil, nil
	}
	lonS, latS, ok := strings.Cut(near, ",")
	lon, err1 := strconv.ParseFloat(strings.TrimSpace(lonS), 64)
	lat, err2 := strconv.ParseFloat(strings.TrimSpace(latS), 64)
	if !ok || err1 != nil || err2 != nil {
		return nil, badParam("near %q: want lon,lat in WGS-84 degrees", near)
	}
	c := &storage.Circle{Lon: lon, Lat: lat, RadiusM: 500}
	if s := q.Get("radius"); s != "" {
		r, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, badParam("radius %q: want metres", s)
		}
		c.RadiusM = r
	}
	return c, nil
}

// checkText refuses a text search for digit runs to roles that may not see personal data:
// the results are masked, but which tickets match "13812345678" would still tell them who called.
// Shorter digit runs are allowed, and find nothing inside personal data: their search is
// masked (storage.IncidentFilter.TextMasked), so "906" cannot be walked along a phone.
func checkText(c auth.Claims, text string) error {
	if auth.Can(c.Role, auth.PermSeePersonalData) {
		return nil
	}
	run := 0
	for _, r := range text {
		if r >= '0' && r <= '9' {
			if run++; run >= 4 {
				return errScope{"searching for 4 or more digits needs the personal-data permission (admin, supervisor)"}
			}
		} else {
			run = 0
		}
	}
	return nil
}
