package city_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/paulmach/orb"

	"github.com/urbanbrain/urbanbrain/city"
	"github.com/urbanbrain/urbanbrain/city/internal/lattice"
	"github.com/urbanbrain/urbanbrain/event"
)

// syntheticGrids lays out cols×rows jittered grids over a city-sized area.
func syntheticGrids(cols, rows int) []city.Grid {
	cells := lattice.Cells(cols, rows, cityBound, 0.18, 42)
	grids := make([]city.Grid, 0, cols*rows)
	for r := range cells {
		for c, poly := range cells[r] {
			grids = append(grids, city.Grid{Code: fmt.Sprintf("G%05d-%05d", r, c), Polygon: poly})
		}
	}
	return grids
}

func randomPoints(n int) []event.Point {
	rng := rand.New(rand.NewPCG(3, 4))
	pts := make([]event.Point, n)
	for i := range pts {
		pts[i] = event.Point{
			Lon: cityBound.Min[0] + rng.Float64()*(cityBound.Max[0]-cityBound.Min[0]),
			Lat: cityBound.Min[1] + rng.Float64()*(cityBound.Max[1]-cityBound.Min[1]),
		}
	}
	return pts
}

func TestSyntheticIndex(t *testing.T) {
	t.Parallel()
	grids := syntheticGrids(40, 25)
	ix := city.NewIndex(grids)
	if ix.Len() != 1000 {
		t.Fatalf("Len = %d", ix.Len())
	}
	for _, g := range grids[:200] {
		c, _ := planarCentroid(g.Polygon)
		if got, ok := ix.Resolve(c); !ok || got.Code != g.Code {
			t.Errorf("centroid of %s resolves to %q", g.Code, got.Code)
		}
	}
	if _, ok := ix.Resolve(event.Point{Lon: 121, Lat: 31}); ok {
		t.Error("point outside resolved")
	}
}

func planarCentroid(p orb.Polygon) (event.Point, bool) {
	var sx, sy float64
	r := p[0][:len(p[0])-1]
	for _, v := range r {
		sx, sy = sx+v[0], sy+v[1]
	}
	return event.Point{Lon: sx / float64(len(r)), Lat: sy / float64(len(r))}, true
}

// BenchmarkResolve shows that resolving a point costs about the same for 100 or 10,000
// grids: the R-tree narrows the search to a handful of candidate polygons.
func BenchmarkResolve(b *testing.B) {
	pts := randomPoints(4096)
	for _, size := range []struct{ cols, rows int }{{10, 10}, {40, 25}, {100, 100}} {
		ix := city.NewIndex(syntheticGrids(size.cols, size.rows))
		b.Run(fmt.Sprintf("grids=%d", size.cols*size.rows), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, ok := ix.Resolve(pts[i&4095]); !ok {
					b.Fatal("point in the city did not resolve")
				}
				i++
			}
		})
	}
	b.Run("demo", func(b *testing.B) {
		m := demo(b)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, ok := m.Resolve(pts[i&4095]); !ok {
				b.Fatal("point in the city did not resolve")
			}
			i++
		}
	})
}

func BenchmarkToWGS84(b *testing.B) {
	p := city.WGS84ToGCJ02(event.Point{Lon: 120.2, Lat: 30.27})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := city.ToWGS84(event.CoordGCJ02, p); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLoadDemo(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := city.LoadDemo(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkClassify: the keywords of a 12345 ticket's text, as ingest runs it for a ticket
// without a valid category code.
func BenchmarkClassify(b *testing.B) {
	m, err := city.LoadDemo()
	if err != nil {
		b.Fatal(err)
	}
	text := "云栖路下穿隧道积水很深，已经没过小腿，好几辆车熄火了，请尽快派人排水"
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		if c, ok := m.Classify(text); !ok || c.Code != "0202" {
			b.Fatalf("Classify = %+v, %v", c, ok)
		}
	}
}
