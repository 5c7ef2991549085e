package api

import (
	"math"
	"net/http"
	"strings"

	"github.com/paulmach/orb"
	"github.com/paulmach/orb/geojson"

	"github.com/urbanbrain/urbanbrain/city"
	"github.com/urbanbrain/urbanbrain/event"
)

// GeoJSON answers (RFC 7946) of the incident and event lists, for a GIS or a base-map page to
// draw directly: `?format=geojson` or `Accept: application/geo+json`. Each incident or event is
// a Feature whose geometry is its point (lon, lat; null when it has none) and whose properties
// are what a map labels and filters by. `?coordsys=gcj02|bd09` converts the points for Chinese
// base maps; the collection then says so in a foreign member "coordsys" (RFC 7946 itself is
// WGS-84 only, which is the default).

// GeoJSONType is the media type of a GeoJSON answer.
const GeoJSONType = "application/geo+json"

// geoJSONRequest says whether r asks for GeoJSON, and in which coordinate system; an unknown
// system is an error the caller answers as invalid_request.
func geoJSONRequest(r *http.Request) (bool, string, error) {
	q := r.URL.Query()
	want := q.Get("format") == "geojson" || strings.Contains(r.Header.Get("Accept"), GeoJSONType)
	cs := q.Get("coordsys")
	if !want {
		return false, "", nil
	}
	if _, err := city.FromWGS84(cs, event.Point{}); err != nil {
		return true, "", badParam("coordsys: %v", err)
	}
	if cs == "" {
		cs = event.CoordWGS84
	}
	return true, cs, nil
}

// pointFeature is a Feature at p (converted to coordsys, 7 decimals: about 1 cm), or with a
// null geometry when p is nil.
func pointFeature(id string, p *event.Point, coordsys string) *geojson.Feature {
	var g orb.Geometry
	if p != nil {
		c, _ := city.FromWGS84(coordsys, *p) // coordsys was checked by geoJSONRequest
		g = orb.Point{math.Round(c.Lon*1e7) / 1e7, math.Round(c.Lat*1e7) / 1e7}
	}
	f := geojson.NewFeature(g)
	f.ID = id
	return f
}

func incidentFeatures(incs []event.Incident, coordsys string) *geojson.FeatureCollection {
	fc := collection(coordsys)
	for _, inc := range incs {
		f := pointFeature(inc.ID, inc.Location, coordsys)
		f.Properties = geojson.Properties{
			"id": inc.ID, "status": inc.Status, "severity": inc.Severity, "category": inc.Category, "title": inc.Title,
			"district": inc.Area.District, "street": inc.Area.Street, "grid": inc.Area.Grid, "grid_name": inc.Area.GridName,
			"report_count": inc.ReportCount, "created_at": inc.CreatedAt, "updated_at": inc.UpdatedAt,
		}
		if inc.Assignment.WorkerID != "" || inc.Assignment.Agency != "" {
			f.Properties["worker_name"], f.Properties["agency"] = inc.Assignment.WorkerName, inc.Assignment.Agency
		}
		fc.Append(f)
	}
	return fc
}

func eventFeatures(evs []event.Event, coordsys string) *geojson.FeatureCollection {
	fc := collection(coordsys)
	for _, e := range evs {
		f := pointFeature(e.ID, e.Location, coordsys)
		f.Properties = geojson.Properties{
			"id": e.ID, "type": e.Type, "source": e.Source, "time": e.Time,
			"district": e.Area.District, "street": e.Area.Street, "grid": e.Area.Grid, "grid_name": e.Area.GridName,
		}
		fc.Append(f)
	}
	return fc
}

func collection(coordsys string) *geojson.FeatureCollection {
	fc := geojson.NewFeatureCollection()
	if coordsys != event.CoordWGS84 {
		fc.ExtraMembers = geojson.Properties{"coordsys": coordsys}
	}
	return fc
}

func writeGeoJSON(w http.ResponseWriter, fc *geojson.FeatureCollection) {
	b, err := fc.MarshalJSON()
	if err != nil {
		writeError(w, http.StatusInternalServerError, CodeInternal, "encode GeoJSON")
		return
	}
	w.Header().Set("Content-Type", GeoJSONType)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}
