// Package lattice lays out a slightly irregular lattice of quadrilateral-ish cells that tile a
// rectangle with no gaps and no overlaps: neighbouring cells are built from the very same
// (jittered) vertices, so their shared borders coincide exactly. The demo city's generator
// and the index benchmarks use it.
package lattice

import (
	"math"
	"math/rand/v2"

	"github.com/paulmach/orb"
)

// Cells returns cols×rows polygons tiling b, indexed [row][col] with row 0 in the south and
// col 0 in the west. jitter (0..0.2) moves inner lattice corners by up to that fraction of a
// cell, and bends each edge through a midpoint moved by up to half of it; points on the
// outline only slide along it, so the union is exactly b. Rings are closed and
// counter-clockwise (RFC 7946). Coordinates are rounded to 1e-7 so that text round trips keep
// shared vertices equal.
func Cells(cols, rows int, b orb.Bound, jitter float64, seed uint64) [][]orb.Polygon {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	dx := (b.Max[0] - b.Min[0]) / float64(cols)
	dy := (b.Max[1] - b.Min[1]) / float64(rows)
	wiggle := func(scale float64) float64 { return (rng.Float64()*2 - 1) * jitter * scale }

	// corner[j][i] is the lattice corner at column line i, row line j.
	corner := make([][]orb.Point, rows+1)
	for j := range corner {
		corner[j] = make([]orb.Point, cols+1)
		for i := range corner[j] {
			x, y := b.Min[0]+float64(i)*dx, b.Min[1]+float64(j)*dy
			if i > 0 && i < cols {
				x += wiggle(dx)
			}
			if j > 0 && j < rows {
				y += wiggle(dy)
			}
			corner[j][i] = round(orb.Point{x, y})
		}
	}
	// hmid[j][i]: midpoint of the horizontal edge from corner[j][i] to corner[j][i+1];
	// vmid[j][i]: midpoint of the vertical edge from corner[j][i] to corner[j+1][i].
	hmid := make([][]orb.Point, rows+1)
	for j := range hmid {
		hmid[j] = make([]orb.Point, cols)
		for i := range hmid[j] {
			a, c := corner[j][i], corner[j][i+1]
			m := orb.Point{(a[0] + c[0]) / 2, (a[1] + c[1]) / 2}
			if j > 0 && j < rows {
				m[1] += wiggle(dy / 2)
			}
			hmid[j][i] = round(m)
		}
	}
	vmid := make([][]orb.Point, rows)
	for j := range vmid {
		vmid[j] = make([]orb.Point, cols+1)
		for i := range vmid[j] {
			a, c := corner[j][i], corner[j+1][i]
			m := orb.Point{(a[0] + c[0]) / 2, (a[1] + c[1]) / 2}
			if i > 0 && i < cols {
				m[0] += wiggle(dx / 2)
			}
			vmid[j][i] = round(m)
		}
	}
	out := make([][]orb.Polygon, rows)
	for j := range out {
		out[j] = make([]orb.Polygon, cols)
		for i := range out[j] {
			ring := orb.Ring{
				corner[j][i], hmid[j][i], corner[j][i+1], // south edge, west to east
				vmid[j][i+1], corner[j+1][i+1], // east edge, south to north
				hmid[j+1][i], corner[j+1][i], // north edge, east to west
				vmid[j][i], corner[j][i], // west edge, north to south, closed
			}
			out[j][i] = orb.Polygon{ring}
		}
	}
	return out
}

func round(p orb.Point) orb.Point {
	return orb.Point{math.Round(p[0]*1e7) / 1e7, math.Round(p[1]*1e7) / 1e7}
}
