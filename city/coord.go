package city

import (
	"fmt"
	"math"

	"github.com/urbanbrain/urbanbrain/event"
)

// Coordinate systems in China. Everything inside urbanbrain is WGS-84; producers that draw on
// Chinese base maps send GCJ-02 (国测局, "火星坐标": AMap, Tencent) or BD-09 (Baidu), and the wall
// screens want GCJ-02 back.
//
// GCJ-02 is WGS-84 plus an obfuscating offset of a few hundred metres. Its forward formula is
// not officially published but has been public for over a decade (the "eviltransform" family
// of implementations): a polynomial-plus-sine offset in metres around (105°E, 35°N), scaled to
// degrees on the Krasovsky 1940 ellipsoid (a = 6378245 m, e² = 0.00669342162296594323). It
// has no closed-form inverse, so GCJ-02 → WGS-84 inverts it by fixed-point iteration: guess
// w = g, then w -= forward(w) - g until the residual is below 1e-9° (a few iterations, since
// the offset changes slowly with position). BD-09 is Baidu's further rotation-and-scaling of
// GCJ-02 around (0.0065, 0.006); its published inverse is approximate, so we iterate the same
// way.

const (
	krasovskyA  = 6378245.0
	krasovskyE2 = 0.00669342162296594323
	bdXPi       = math.Pi * 3000.0 / 180.0

	// inversionTolerance is far below the 1e-6° (≈ 0.1 m) the system needs.
	inversionTolerance = 1e-9
	inversionMaxIter   = 30
)

// InChina reports whether p lies in the coarse bounding box of China (lon 73..136, lat 3..54),
// the check ingest uses to refuse coordinates that cannot be in a Chinese city. Outside it,
// GCJ-02 and BD-09 are defined as equal to WGS-84.
func InChina(p event.Point) bool {
	return p.Lon >= 73 && p.Lon <= 136 && p.Lat >= 3 && p.Lat <= 54
}

// ToWGS84 converts p from the named coordinate system ("", "wgs84", "gcj02", "bd09",
// case-sensitive as in event.Coord*) to WGS-84. "" means WGS-84.
func ToWGS84(coordsys string, p event.Point) (event.Point, error) {
	switch coordsys {
	case "", event.CoordWGS84:
		return p, nil
	case event.CoordGCJ02:
		return GCJ02ToWGS84(p), nil
	case event.CoordBD09:
		return GCJ02ToWGS84(BD09ToGCJ02(p)), nil
	default:
		return event.Point{}, fmt.Errorf("unknown coordinate system %q (want wgs84, gcj02 or bd09)", coordsys)
	}
}

// FromWGS84 converts a WGS-84 point to the named coordinate system, for outgoing data drawn on
// Chinese base maps (the wall screens ask for gcj02).
func FromWGS84(coordsys string, p event.Point) (event.Point, error) {
	switch coordsys {
	case "", event.CoordWGS84:
		return p, nil
	case event.CoordGCJ02:
		return WGS84ToGCJ02(p), nil
	case event.CoordBD09:
		return WGS84ToBD09(p), nil
	default:
		return event.Point{}, fmt.Errorf("unknown coordinate system %q (want wgs84, gcj02 or bd09)", coordsys)
	}
}

// WGS84ToGCJ02 applies the GCJ-02 offset.
func WGS84ToGCJ02(p event.Point) event.Point {
	if !InChina(p) {
		return p
	}
	dLon, dLat := gcjOffset(p.Lon, p.Lat)
	return event.Point{Lon: p.Lon + dLon, Lat: p.Lat + dLat}
}

// GCJ02ToWGS84 removes the GCJ-02 offset by iterating the forward transform.
func GCJ02ToWGS84(g event.Point) event.Point {
	if !InChina(g) {
		return g
	}
	w := g
	for range inversionMaxIter {
		f := WGS84ToGCJ02(w)
		eLon, eLat := f.Lon-g.Lon, f.Lat-g.Lat
		w.Lon -= eLon
		w.Lat -= eLat
		if math.Abs(eLon) < inversionTolerance && math.Abs(eLat) < inversionTolerance {
			break
		}
	}
	return w
}

// GCJ02ToBD09 applies Baidu's BD-09 transform to a GCJ-02 point.
func GCJ02ToBD09(g event.Point) event.Point {
	x, y := g.Lon, g.Lat
	z := math.Sqrt(x*x+y*y) + 0.00002*math.Sin(y*bdXPi)
	theta := math.Atan2(y, x) + 0.000003*math.Cos(x*bdXPi)
	return event.Point{Lon: z*math.Cos(theta) + 0.0065, Lat: z*math.Sin(theta) + 0.006}
}

// BD09ToGCJ02 inverts GCJ02ToBD09: Baidu's published approximate inverse, refined by
// iteration so that the round trip is exact to 1e-9°.
func BD09ToGCJ02(b event.Point) event.Point {
	x, y := b.Lon-0.0065, b.Lat-0.006
	z := math.Sqrt(x*x+y*y) - 0.00002*math.Sin(y*bdXPi)
	theta := math.Atan2(y, x) - 0.000003*math.Cos(x*bdXPi)
	g := event.Point{Lon: z * math.Cos(theta), Lat: z * math.Sin(theta)}
	for range inversionMaxIter {
		f := GCJ02ToBD09(g)
		eLon, eLat := f.Lon-b.Lon, f.Lat-b.Lat
		g.Lon -= eLon
		g.Lat -= eLat
		if math.Abs(eLon) < inversionTolerance && math.Abs(eLat) < inversionTolerance {
			break
		}
	}
	return g
}

// WGS84ToBD09 converts WGS-84 to BD-09 (through GCJ-02).
func WGS84ToBD09(p event.Point) event.Point { return GCJ02ToBD09(WGS84ToGCJ02(p)) }

// gcjOffset is the GCJ-02 offset in degrees at a WGS-84 position.
func gcjOffset(lon, lat float64) (dLon, dLat float64) {
	x, y := lon-105.0, lat-35.0
	dLat = gcjLat(x, y)
	dLon = gcjLon(x, y)
	radLat := lat / 180.0 * math.Pi
	magic := math.Sin(radLat)
	magic = 1 - krasovskyE2*magic*magic
	sqrtMagic := math.Sqrt(magic)
	// Metres to degrees on the Krasovsky ellipsoid: meridional and prime-vertical radii.
	dLat = (dLat * 180.0) / ((krasovskyA * (1 - krasovskyE2)) / (magic * sqrtMagic) * math.Pi)
	dLon = (dLon * 180.0) / (krasovskyA / sqrtMagic * math.Cos(radLat) * math.Pi)
	return dLon, dLat
}

func gcjLat(x, y float64) float64 {
	r := -100.0 + 2.0*x + 3.0*y + 0.2*y*y + 0.1*x*y + 0.2*math.Sqrt(math.Abs(x))
	r += (20.0*math.Sin(6.0*x*math.Pi) + 20.0*math.Sin(2.0*x*math.Pi)) * 2.0 / 3.0
	r += (20.0*math.Sin(y*math.Pi) + 40.0*math.Sin(y/3.0*math.Pi)) * 2.0 / 3.0
	r += (160.0*math.Sin(y/12.0*math.Pi) + 320*math.Sin(y*math.Pi/30.0)) * 2.0 / 3.0
	return r
}

func gcjLon(x, y float64) float64 {
	r := 300.0 + x + 2.0*y + 0.1*x*x + 0.1*x*y + 0.1*math.Sqrt(math.Abs(x))
	r += (20.0*math.Sin(6.0*x*math.Pi) + 20.0*math.Sin(2.0*x*math.Pi)) * 2.0 / 3.0
	r += (20.0*math.Sin(x*math.Pi) + 40.0*math.Sin(x/3.0*math.Pi)) * 2.0 / 3.0
	r += (150.0*math.Sin(x/12.0*math.Pi) + 300.0*math.Sin(x/30.0*math.Pi)) * 2.0 / 3.0
	return r
}
