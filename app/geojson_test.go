package app

import (
	"encoding/json"
	"io"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/paulmach/orb"
	"github.com/paulmach/orb/geo"
	"github.com/paulmach/orb/geojson"

	"github.com/urbanbrain/urbanbrain/auth"
	"github.com/urbanbrain/urbanbrain/city"
	"github.com/urbanbrain/urbanbrain/event"
)

// Incidents and events as RFC 7946 GeoJSON: a FeatureCollection a GIS reads, each point in
// WGS-84 lon,lat order at the incident's place; ?coordsys=gcj02 moves every point by the
// GCJ-02 offset and says so; an unknown system is a 400; the grids' rings are right-handed
// (exterior counter-clockwise).
func TestGeoJSONAnswers(t *testing.T) {
	r := start(t, t.TempDir(), freeAddr(t))
	grid := r.app.City().Grids()[7]
	producer := r.token(auth.Claims{Subject: "p", Role: auth.RoleIngest})
	viewer := r.token(auth.Claims{Subject: "gis", Role: auth.RoleViewer})
	if code := r.do("POST", "/api/v1/events", producer, hotlineTicket("T-geo-1", event.RequestComplaint, "0301", "垃圾满溢", "13900004444", grid.Centroid), nil); code != http.StatusAccepted && code != http.StatusOK {
		t.Fatalf("POST event: %d", code)
	}
	eventually(t, 60*time.Second, "the incident", func() bool {
		var l incidentList
		r.do("GET", "/api/v1/incidents", viewer, nil, &l)
		return l.Count == 1
	})
	get := func(path, accept string) (int, string, []byte) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, r.base+path, nil)
		req.Header.Set("Authorization", "Bearer "+viewer)
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type"), b
	}
	point := func(path, accept string) (orb.Point, map[string]any) {
		t.Helper()
		code, ctype, b := get(path, accept)
		fc, err := geojson.UnmarshalFeatureCollection(b)
		if code != http.StatusOK || ctype != "application/geo+json" || err != nil || len(fc.Features) != 1 {
			t.Fatalf("%s: %d %s %v %s", path, code, ctype, err, b)
		}
		var raw map[string]any
		_ = json.Unmarshal(b, &raw)
		p, ok := fc.Features[0].Geometry.(orb.Point)
		if !ok {
			t.Fatalf("%s: geometry %T, want a point", path, fc.Features[0].Geometry)
		}
		return p, raw
	}
	near := func(a, b orb.Point) bool { return math.Abs(a[0]-b[0]) < 1e-6 && math.Abs(a[1]-b[1]) < 1e-6 }

	wgs, raw := point("/api/v1/incidents?format=geojson", "")
	if !near(wgs, orb.Point{grid.Centroid.Lon, grid.Centroid.Lat}) || raw["coordsys"] != nil {
		t.Errorf("incident point %v, want lon,lat %v,%v with no coordsys member", wgs, grid.Centroid.Lon, grid.Centroid.Lat)
	}
	if p, _ := point("/api/v1/incidents", "application/geo+json"); !near(p, wgs) {
		t.Errorf("Accept: application/geo+json gave %v, want %v", p, wgs)
	}
	gcj, raw := point("/api/v1/incidents?format=geojson&coordsys=gcj02", "")
	want := city.WGS84ToGCJ02(grid.Centroid)
	if !near(gcj, orb.Point{want.Lon, want.Lat}) || raw["coordsys"] != "gcj02" {
		t.Errorf("gcj02 point %v (coordsys %v), want %v,%v", gcj, raw["coordsys"], want.Lon, want.Lat)
	}
	// GCJ-02 moves a point in China by some hundreds of metres, never by nothing or by kilometres.
	if d := geo.Distance(orb.Point{grid.Centroid.Lon, grid.Centroid.Lat}, gcj); d < 50 || d > 1500 {
		t.Errorf("the GCJ-02 offset is %.0f m", d)
	}
	if ev, _ := point("/api/v1/events?format=geojson", ""); !near(ev, wgs) {
		t.Errorf("event point %v, want %v", ev, wgs)
	}
	if code, _, b := get("/api/v1/incidents?format=geojson&coordsys=mars", ""); code != http.StatusBadRequest || !strings.Contains(string(b), "coordsys") {
		t.Errorf("an unknown coordsys: %d %s, want 400 naming it", code, b)
	}

	fc, err := geojson.UnmarshalFeatureCollection(r.app.City().GridsGeoJSON())
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fc.Features {
		if poly, ok := f.Geometry.(orb.Polygon); !ok || poly[0].Orientation() != orb.CCW || !poly[0].Closed() {
			t.Errorf("grid %v: exterior ring not closed and counter-clockwise", f.ID)
		}
	}
}
