package alerts

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/paulmach/orb"

	"github.com/urbanbrain/urbanbrain/city"
	"github.com/urbanbrain/urbanbrain/event"
)

// areaOf is the incident's grid as a polygon, or a circle around its location when it has no
// grid the map knows.
func areaOf(inc event.Incident, m *city.Map, radiusKm float64) (Area, error) {
	a := inc.Area
	if g, ok := m.Grid(a.Grid); ok && a.Grid != "" && len(g.Polygon) > 0 {
		if ring, ok := polygon(g.Polygon[0]); ok {
			return Area{
				AreaDesc: placeName(g.DistrictName, g.StreetName, g.CommunityName, g.Name),
				Polygon:  []string{ring},
				Geocode:  geocodes(g.District, g.Street, g.Community, g.Code),
			}, nil
		}
	}
	if inc.Location == nil {
		return Area{}, ErrNoArea
	}
	p := *inc.Location
	if p.Lat < -90 || p.Lat > 90 || p.Lon < -180 || p.Lon > 180 {
		return Area{}, fmt.Errorf("location %v,%v out of range", p.Lat, p.Lon)
	}
	desc := placeName(a.DistrictName, a.StreetName, a.CommunityName)
	if desc == "" {
		desc = "事发地点"
	}
	return Area{
		AreaDesc: desc + "周边" + coord(radiusKm) + "公里范围",
		Circle:   []string{coord(p.Lat) + "," + coord(p.Lon) + " " + coord(radiusKm)},
		Geocode:  geocodes(a.District, a.Street, a.Community, ""),
	}, nil
}

func geocodes(district, street, community, grid string) []NamedValue {
	var out []NamedValue
	for _, g := range []NamedValue{
		{GeocodeDistrict, district}, {GeocodeStreet, street},
		{GeocodeCommunity, community}, {GeocodeGrid, grid},
	} {
		if g.Value != "" && g.Value != event.UnknownStreet {
			out = append(out, g)
		}
	}
	return out
}

// polygon writes a ring in CAP's form: "lat,lon" pairs (GeoJSON and orb are lon,lat),
// separated by spaces, the first pair repeated at the end if the ring is not closed. CAP
// (3.2.4) wants at least four pairs, first and last the same; a ring too small for that is
// not written (ok false), and the area falls back to a circle.
func polygon(ring orb.Ring) (string, bool) {
	if len(ring) == 0 {
		return "", false
	}
	pts := make([]string, 0, len(ring)+1)
	for _, p := range ring {
		pts = append(pts, coord(p[1])+","+coord(p[0]))
	}
	if pts[0] != pts[len(pts)-1] {
		pts = append(pts, pts[0])
	}
	if len(pts) < 4 {
		return "", false
	}
	return strings.Join(pts, " "), true
}

// coord writes a coordinate or a radius to 7 decimals (about a centimetre), without the
// float noise of computed points.
func coord(v float64) string { return strconv.FormatFloat(math.Round(v*1e7)/1e7, 'f', -1, 64) }

// placeName joins the names of a place from the district down, leaving out a name the next
// one already starts with (a grid named 青石社区第1网格 in 青石社区).
func placeName(names ...string) string {
	var b strings.Builder
	for i, n := range names {
		if i+1 < len(names) && n != "" && strings.HasPrefix(names[i+1], n) {
			continue
		}
		b.WriteString(n)
	}
	return b.String()
}
