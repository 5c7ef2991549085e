package city_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/urbanbrain/urbanbrain/city"
	"github.com/urbanbrain/urbanbrain/event"
)

// metres is the distance between two nearby points (equirectangular; exact enough below 1 km).
func metres(a, b event.Point) float64 {
	const r = 6371000.0
	lat := (a.Lat + b.Lat) / 2 * math.Pi / 180
	dx := (a.Lon - b.Lon) * math.Pi / 180 * math.Cos(lat) * r
	dy := (a.Lat - b.Lat) * math.Pi / 180 * r
	return math.Hypot(dx, dy)
}

// The test vectors published with the eviltransform implementations of GCJ-02.
func TestWGS84ToGCJ02ReferencePairs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		wgs, gcj event.Point
	}{
		{"shanghai", event.Point{Lon: 121.5272106, Lat: 31.1774276}, event.Point{Lon: 121.531541859215, Lat: 31.17530398364597}},
		{"shenzhen", event.Point{Lon: 113.912316, Lat: 22.543847}, event.Point{Lon: 113.9171764808363, Lat: 22.540796131694766}},
		{"beijing", event.Point{Lon: 116.377817, Lat: 39.911954}, event.Point{Lon: 116.38404722455657, Lat: 39.91334545536069}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := city.WGS84ToGCJ02(tt.wgs)
			if math.Abs(got.Lon-tt.gcj.Lon) > 1e-9 || math.Abs(got.Lat-tt.gcj.Lat) > 1e-9 {
				t.Errorf("WGS84ToGCJ02(%v) = %v, want %v", tt.wgs, got, tt.gcj)
			}
			back, err := city.ToWGS84(event.CoordGCJ02, tt.gcj)
			if err != nil {
				t.Fatal(err)
			}
			if d := metres(back, tt.wgs); d > 0.01 {
				t.Errorf("GCJ-02 %v back to WGS-84 is %.4f m off", tt.gcj, d)
			}
		})
	}
}

func TestCoordinateRoundTrips(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(7, 7))
	for range 5000 {
		w := event.Point{Lon: 74 + rng.Float64()*61, Lat: 4 + rng.Float64()*49}
		g := city.WGS84ToGCJ02(w)
		if d := metres(w, g); d < 1 || d > 1500 {
			t.Fatalf("GCJ-02 offset at %v is %.1f m; the obfuscation is tens to hundreds of metres", w, d)
		}
		back, err := city.ToWGS84(event.CoordGCJ02, g)
		if err != nil {
			t.Fatal(err)
		}
		if d := metres(back, w); d > 1 {
			t.Fatalf("gcj02 round trip at %v: %.3f m", w, d)
		}
		b := city.WGS84ToBD09(w)
		back, err = city.ToWGS84(event.CoordBD09, b)
		if err != nil {
			t.Fatal(err)
		}
		if d := metres(back, w); d > 1 {
			t.Fatalf("bd09 round trip at %v: %.3f m", w, d)
		}
		if gb := city.BD09ToGCJ02(city.GCJ02ToBD09(g)); metres(gb, g) > 0.01 {
			t.Fatalf("bd09↔gcj02 at %v: %.4f m", g, metres(gb, g))
		}
	}
}

func TestToWGS84(t *testing.T) {
	t.Parallel()
	yunchuan := event.Point{Lon: 120.2, Lat: 30.27}
	for _, cs := range []string{"", event.CoordWGS84} {
		if got, err := city.ToWGS84(cs, yunchuan); err != nil || got != yunchuan {
			t.Errorf("ToWGS84(%q) = %v, %v; want unchanged", cs, got, err)
		}
	}
	if _, err := city.ToWGS84("WGS-84", yunchuan); err == nil {
		t.Error("unknown coordsys accepted")
	}
	// In the demo city the GCJ-02 offset is a few hundred metres, mostly east and south.
	g := city.WGS84ToGCJ02(yunchuan)
	if d := metres(g, yunchuan); d < 300 || d > 700 || g.Lon <= yunchuan.Lon || g.Lat >= yunchuan.Lat {
		t.Errorf("offset in Yunchuan: %v → %v (%.0f m)", yunchuan, g, metres(g, yunchuan))
	}
	// Baidu's is larger still: BD-09 adds roughly 0.0065°, 0.006° on top.
	if b := city.WGS84ToBD09(yunchuan); b.Lon-g.Lon < 0.005 || b.Lat-g.Lat < 0.004 {
		t.Errorf("bd09 %v vs gcj02 %v", b, g)
	}
	// Outside China GCJ-02 is defined as WGS-84.
	london := event.Point{Lon: -0.1276, Lat: 51.5072}
	if got := city.WGS84ToGCJ02(london); got != london {
		t.Errorf("WGS84ToGCJ02(london) = %v", got)
	}
}

func TestInChina(t *testing.T) {
	t.Parallel()
	tests := []struct {
		p    event.Point
		want bool
	}{
		{event.Point{Lon: 120.2, Lat: 30.27}, true},
		{event.Point{Lon: 73, Lat: 3}, true},
		{event.Point{Lon: 136, Lat: 54}, true},
		{event.Point{Lon: 72.99, Lat: 30}, false},
		{event.Point{Lon: 120, Lat: 54.01}, false},
		{event.Point{Lon: 30.27, Lat: 120.2}, false}, // swapped
		{event.Point{Lon: 0, Lat: 0}, false},
		{event.Point{Lon: math.NaN(), Lat: 30}, false},
	}
	for _, tt := range tests {
		if got := city.InChina(tt.p); got != tt.want {
			t.Errorf("InChina(%v) = %v, want %v", tt.p, got, tt.want)
		}
	}
}

func TestFromWGS84(t *testing.T) {
	t.Parallel()
	p := event.Point{Lon: 120.2, Lat: 30.27}
	for _, cs := range []string{"", event.CoordWGS84, event.CoordGCJ02, event.CoordBD09} {
		out, err := city.FromWGS84(cs, p)
		if err != nil {
			t.Fatalf("FromWGS84(%q): %v", cs, err)
		}
		back, err := city.ToWGS84(cs, out)
		if err != nil || metres(back, p) > 0.01 {
			t.Errorf("%q: %v → %v → %v (%v)", cs, p, out, back, err)
		}
	}
	if _, err := city.FromWGS84("mercator", p); err == nil {
		t.Error("unknown coordsys accepted")
	}
}
