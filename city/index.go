package city

import (
	"github.com/paulmach/orb"
	"github.com/paulmach/orb/planar"
	"github.com/tidwall/rtree"

	"github.com/urbanbrain/urbanbrain/event"
)

// Index answers "which grid contains this point" in time that does not grow with the number
// of grids: an R-tree over the grids' bounding boxes returns the few candidates whose box
// holds the point, and only those get the exact point-in-polygon test.
type Index struct {
	grids []Grid
	tree  rtree.RTreeG[int32]
}

// NewIndex builds an index over grids. The slice is kept; do not modify it afterwards.
func NewIndex(grids []Grid) *Index {
	ix := &Index{grids: grids}
	for i, g := range grids {
		if len(g.Polygon) == 0 {
			continue
		}
		b := g.Polygon.Bound()
		ix.tree.Insert([2]float64(b.Min), [2]float64(b.Max), int32(i))
	}
	return ix
}

// Resolve returns the grid that contains p. A point on a border shared by several grids
// resolves to the one with the smallest code, so the answer does not depend on tree order.
func (ix *Index) Resolve(p event.Point) (Grid, bool) {
	pt := orb.Point{p.Lon, p.Lat}
	best := int32(-1)
	ix.tree.Search([2]float64(pt), [2]float64(pt), func(_, _ [2]float64, i int32) bool {
		if best >= 0 && ix.grids[i].Code >= ix.grids[best].Code {
			return true
		}
		if planar.PolygonContains(ix.grids[i].Polygon, pt) {
			best = i
		}
		return true
	})
	if best < 0 {
		return Grid{}, false
	}
	return ix.grids[best], true
}

// Len is the number of indexed grids.
func (ix *Index) Len() int { return ix.tree.Len() }
