package city

import (
	"testing"

	"github.com/paulmach/orb"
	"github.com/paulmach/orb/planar"
)

func TestInteriorPointOfConcaveGrid(t *testing.T) {
	t.Parallel()
	// A U shape whose centroid falls in the notch, outside the polygon.
	u := orb.Polygon{orb.Ring{
		{120.0, 30.0}, {120.3, 30.0}, {120.3, 30.3}, {120.2, 30.3}, {120.2, 30.05},
		{120.1, 30.05}, {120.1, 30.3}, {120.0, 30.3}, {120.0, 30.0},
	}}
	if c, _ := planar.CentroidArea(u); planar.PolygonContains(u, c) {
		t.Fatalf("fixture: centroid %v is inside; the test needs a shape where it is not", c)
	}
	p := interiorPoint(u)
	if !planar.PolygonContains(u, orb.Point{p.Lon, p.Lat}) {
		t.Errorf("interiorPoint = %v, not inside", p)
	}
}
