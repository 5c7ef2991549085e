package lang

import (
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/paulmach/orb"
	"github.com/paulmach/orb/geo"
)

// Beijing is the city's wall-clock zone (Asia/Shanghai, UTC+8 without daylight saving). A fixed
// zone rather than time.LoadLocation keeps hour() and weekday() independent of the host's
// tzdata, which minimal containers and some 信创 servers lack.
var Beijing = time.FixedZone("CST", 8*60*60)

// Limits on what a rule may cost at compile time. The later sandboxing issue adds a memory
// budget per rule; expr's VM already stops any single run at its default budget.
const (
	// MaxRuleBytes caps the text of one rule (all its expressions and templates together).
	MaxRuleBytes = 64 << 10
	// MaxNodes caps the syntax tree of one expression.
	MaxNodes = 5000
)

// allowedBuiltins are the expr builtins a rule may call: pure, deterministic, and bounded by
// their input. Left out on purpose: now (replays and backtests must give the same answer),
// date and timezone (depend on the host's tzdata), repeat and replace (a few bytes of rule
// text can ask for gigabytes), fromJSON/toJSON/base64 (rules read typed fields, not blobs).
var allowedBuiltins = []string{
	"all", "none", "any", "one", "filter", "map", "find", "findIndex", "findLast", "findLastIndex",
	"count", "sum", "len", "abs", "ceil", "floor", "round", "int", "float", "string",
	"trim", "trimPrefix", "trimSuffix", "upper", "lower", "split", "hasPrefix", "hasSuffix",
	"indexOf", "lastIndexOf", "max", "min", "mean", "median", "first", "last", "get",
	"keys", "values", "duration",
}

// BaseOptions are the compile options every expression shares, whatever its event type.
var BaseOptions = func() []expr.Option {
	opts := []expr.Option{expr.MaxNodes(MaxNodes), expr.DisableAllBuiltins()}
	for _, name := range allowedBuiltins {
		opts = append(opts, expr.EnableBuiltin(name))
	}
	opts = append(opts,
		// contains_any(text, words...) reports whether text contains any of the words
		// (包含任意关键词). Empty words are ignored: a blank keyword would match everything.
		expr.Function("contains_any", containsAny, new(func(string, ...string) bool)),
		// hour(t) is the hour of t in Beijing time, 0..23.
		expr.Function("hour", hourOf, new(func(time.Time) int)),
		// weekday(t) is the ISO day of the week of t in Beijing time: 1 Monday … 7 Sunday.
		expr.Function("weekday", weekdayOf, new(func(time.Time) int)),
		// distance_m(lat1, lon1, lat2, lon2) is the great-circle distance in metres.
		expr.Function("distance_m", distanceM, new(func(float64, float64, float64, float64) float64)),
		// in_area(area, name) reports whether the event's area is or lies inside the named
		// area: a district, street, community or grid, by code or by name
		// (in_area(area, "望江区"), in_area(area, "990102001")).
		expr.Function("in_area", inArea, new(func(Area, string) bool)),
		// in_polygon(lat, lon, [[lon, lat], …]) reports whether a point is inside a polygon
		// given as a ring of [lon, lat] pairs (GeoJSON order, WGS-84): a spot no grid draws,
		// such as an underpass or a school's surroundings.
		expr.Function("in_polygon", inPolygon, new(func(float64, float64, []any) bool)),
	)
	return append(opts, sandboxFunctions...)
}()

// The functions below receive arguments the checker has already typed, but expr passes an int
// literal where a float64 is declared, so numbers are converted, and anything unexpected is an
// error rather than a panic.

func containsAny(params ...any) (any, error) {
	if len(params) == 0 {
		return nil, PublicErrorf("contains_any: no text")
	}
	text, ok := params[0].(string)
	if !ok {
		return nil, PublicErrorf("contains_any: text is %T, not a string", params[0])
	}
	for _, p := range params[1:] {
		w, ok := p.(string)
		if !ok {
			return nil, PublicErrorf("contains_any: word is %T, not a string", p)
		}
		if w != "" && strings.Contains(text, w) {
			return true, nil
		}
	}
	return false, nil
}

func hourOf(params ...any) (any, error) {
	t, err := timeArg("hour", params)
	if err != nil {
		return nil, err
	}
	return t.In(Beijing).Hour(), nil
}

func weekdayOf(params ...any) (any, error) {
	t, err := timeArg("weekday", params)
	if err != nil {
		return nil, err
	}
	d := int(t.In(Beijing).Weekday())
	if d == 0 {
		d = 7
	}
	return d, nil
}

func timeArg(fn string, params []any) (time.Time, error) {
	if len(params) != 1 {
		return time.Time{}, PublicErrorf("%s: want 1 argument, got %d", fn, len(params))
	}
	t, ok := params[0].(time.Time)
	if !ok {
		return time.Time{}, PublicErrorf("%s: argument is %T, not a time", fn, params[0])
	}
	return t, nil
}

func distanceM(params ...any) (any, error) {
	if len(params) != 4 {
		return nil, PublicErrorf("distance_m: want 4 arguments, got %d", len(params))
	}
	var v [4]float64
	for i, p := range params {
		f, ok := toFloat(p)
		if !ok {
			return nil, PublicErrorf("distance_m: argument %d is %T, not a number", i+1, p)
		}
		v[i] = f
	}
	return geo.DistanceHaversine(orb.Point{v[1], v[0]}, orb.Point{v[3], v[2]}), nil
}

func toFloat(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case float32:
		return float64(n), true
	case int:
		return float64(n), true
	case int8:
		return float64(n), true
	case int16:
		return float64(n), true
	case int32:
		return float64(n), true
	case int64:
		return float64(n), true
	case uint:
		return float64(n), true
	case uint8:
		return float64(n), true
	case uint16:
		return float64(n), true
	case uint32:
		return float64(n), true
	case uint64:
		return float64(n), true
	}
	return 0, false
}

func inArea(params ...any) (any, error) {
	if len(params) != 2 {
		return nil, PublicErrorf("in_area: want 2 arguments, got %d", len(params))
	}
	a, ok := params[0].(Area)
	if !ok {
		return nil, PublicErrorf("in_area: first argument is %T, not an area", params[0])
	}
	name, ok := params[1].(string)
	if !ok {
		return nil, PublicErrorf("in_area: name is %T, not a string", params[1])
	}
	if name == "" {
		return false, nil
	}
	for _, v := range [...]string{a.District, a.DistrictName, a.Street, a.StreetName, a.Community, a.CommunityName, a.Grid, a.GridName} {
		if v == name {
			return true, nil
		}
	}
	return false, nil
}

// maxPolygonPoints caps a polygon's ring, so a rule cannot make every event walk a huge one.
const maxPolygonPoints = 1000

func inPolygon(params ...any) (any, error) {
	if len(params) != 3 {
		return nil, PublicErrorf("in_polygon: want 3 arguments, got %d", len(params))
	}
	lat, ok1 := toFloat(params[0])
	lon, ok2 := toFloat(params[1])
	ring, ok3 := params[2].([]any)
	if !ok1 || !ok2 || !ok3 {
		return nil, PublicErrorf("in_polygon: want (lat, lon, [[lon, lat], …]), got (%T, %T, %T)", params[0], params[1], params[2])
	}
	if len(ring) < 3 || len(ring) > maxPolygonPoints {
		return nil, PublicErrorf("in_polygon: a polygon has 3 to %d points, this one %d", maxPolygonPoints, len(ring))
	}
	pts := make([][2]float64, len(ring))
	for i, p := range ring {
		pair, ok := p.([]any)
		if !ok || len(pair) != 2 {
			return nil, PublicErrorf("in_polygon: point %d is not a [lon, lat] pair", i+1)
		}
		x, okx := toFloat(pair[0])
		y, oky := toFloat(pair[1])
		if !okx || !oky {
			return nil, PublicErrorf("in_polygon: point %d is not a pair of numbers", i+1)
		}
		pts[i] = [2]float64{x, y}
	}
	// Ray casting (even-odd): a point on an edge may fall either way, which at the scale of a
	// sensor's position error does not matter.
	in := false
	for i, j := 0, len(pts)-1; i < len(pts); j, i = i, i+1 {
		xi, yi, xj, yj := pts[i][0], pts[i][1], pts[j][0], pts[j][1]
		if (yi > lat) != (yj > lat) && lon < (xj-xi)*(lat-yi)/(yj-yi)+xi {
			in = !in
		}
	}
	return in, nil
}
