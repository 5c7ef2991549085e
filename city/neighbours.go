package city

import (
	"math"
	"slices"

	"github.com/paulmach/orb"
)

// touchTolerance is how close (in degrees, about 1 cm) two borders must come to count as
// touching; survey data rarely shares vertices bit for bit.
const touchTolerance = 1e-7

// neighbours finds, for every grid, the grids that share an edge or a corner with it. Each
// grid asks the index for grids whose boxes overlap its own, so the work is linear in the
// number of grids, and each pair is decided once and recorded both ways.
func neighbours(grids []Grid, ix *Index) map[string][]string {
	out := make(map[string][]string, len(grids))
	for i, g := range grids {
		if len(g.Polygon) == 0 {
			continue
		}
		b := g.Polygon.Bound().Pad(touchTolerance)
		ix.tree.Search([2]float64(b.Min), [2]float64(b.Max), func(_, _ [2]float64, j int32) bool {
			if int(j) <= i {
				return true
			}
			if touches(g.Polygon[0], grids[j].Polygon[0]) {
				out[g.Code] = append(out[g.Code], grids[j].Code)
				out[grids[j].Code] = append(out[grids[j].Code], g.Code)
			}
			return true
		})
	}
	for k := range out {
		slices.Sort(out[k])
	}
	return out
}

// touches reports whether some vertex of one outer ring lies on the other's border.
// Borders of a tiling meet at vertices of at least one of the two rings, so this finds shared
// edges, corners and T-junctions alike.
func touches(a, b orb.Ring) bool {
	return vertexOnRing(a, b) || vertexOnRing(b, a)
}

func vertexOnRing(a, b orb.Ring) bool {
	bb := b.Bound().Pad(touchTolerance)
	for _, p := range a {
		if !bb.Contains(p) {
			continue
		}
		for k := 0; k+1 < len(b); k++ {
			if segmentDistance(p, b[k], b[k+1]) <= touchTolerance {
				return true
			}
		}
	}
	return false
}

func segmentDistance(p, a, b orb.Point) float64 {
	dx, dy := b[0]-a[0], b[1]-a[1]
	t := 0.0
	if l := dx*dx + dy*dy; l > 0 {
		t = ((p[0]-a[0])*dx + (p[1]-a[1])*dy) / l
		t = max(0, min(1, t))
	}
	return math.Hypot(p[0]-(a[0]+t*dx), p[1]-(a[1]+t*dy))
}
