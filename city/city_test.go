package city_test

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/paulmach/orb"
	"github.com/paulmach/orb/planar"

	"github.com/urbanbrain/urbanbrain/city"
	"github.com/urbanbrain/urbanbrain/city/citytest"
	"github.com/urbanbrain/urbanbrain/event"
)

// cityBound is where the demo city lies; its grids tile exactly this rectangle.
var cityBound = orb.Bound{Min: orb.Point{120.05, 30.15}, Max: orb.Point{120.35, 30.40}}

// demo is the demo city, loaded once: a Map is immutable, so parallel tests share it, which
// also puts its concurrent use under the race detector.
func demo(t testing.TB) *city.Map { return citytest.Demo(t) }

func TestConcurrentResolve(t *testing.T) {
	t.Parallel()
	m := demo(t)
	grids := m.Grids()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < len(grids); i += 4 {
				if a, ok := m.Resolve(grids[i].Centroid); !ok || a.Grid != grids[i].Code {
					t.Errorf("worker %d: %s resolved to %q", w, grids[i].Code, a.Grid)
				}
			}
		})
	}
	wg.Wait()
}

func TestDemoHierarchy(t *testing.T) {
	t.Parallel()
	m := demo(t)
	counts := map[string]int{
		"districts": len(m.Districts()), "streets": len(m.Streets()),
		"communities": len(m.Communities()), "grids": len(m.Grids()),
	}
	want := map[string]int{"districts": 4, "streets": 12, "communities": 36, "grids": 144}
	for k, n := range want {
		if counts[k] != n {
			t.Errorf("%s: %d, want %d", k, counts[k], n)
		}
	}
	patterns := []struct {
		what string
		re   *regexp.Regexp
		got  func() []string
	}{
		{"district", regexp.MustCompile(`^9901\d\d$`), func() []string { return codes(m.Districts()) }},
		{"street", regexp.MustCompile(`^9901\d\d\d{3}$`), func() []string { return codes(m.Streets()) }},
		{"community", regexp.MustCompile(`^9901\d{8}$`), func() []string { return codes(m.Communities()) }},
	}
	for _, p := range patterns {
		for _, c := range p.got() {
			if !p.re.MatchString(c) {
				t.Errorf("%s code %q does not match %s", p.what, c, p.re)
			}
		}
	}
	gridRe := regexp.MustCompile(`^(9901\d{8})-\d\d$`)
	for _, g := range m.Grids() {
		sub := gridRe.FindStringSubmatch(g.Code)
		if sub == nil || sub[1] != g.Community {
			t.Errorf("grid code %q does not extend community %q", g.Code, g.Community)
		}
		if !strings.HasSuffix(g.Name, "网格") || !strings.HasSuffix(g.CommunityName, "社区") ||
			!strings.HasSuffix(g.StreetName, "街道") || !strings.HasSuffix(g.DistrictName, "区") {
			t.Errorf("grid %s: names %q %q %q %q lack their 网格/社区/街道/区 suffix",
				g.Code, g.Name, g.CommunityName, g.StreetName, g.DistrictName)
		}
		a := g.Area()
		if a.Grid != g.Code || a.Street != g.Street || a.District != g.District || a.Key() != g.Street {
			t.Errorf("grid %s: Area() = %+v", g.Code, a)
		}
	}
	for _, s := range m.Streets() {
		if !strings.HasPrefix(s.Code, s.Parent) || len(s.Parent) != 6 {
			t.Errorf("street %+v: parent is not its district", s)
		}
	}
}

func codes(rs []city.Region) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Code)
	}
	return out
}

func TestResolveCentroids(t *testing.T) {
	t.Parallel()
	m := demo(t)
	for _, g := range m.Grids() {
		area, ok := m.Resolve(g.Centroid)
		if !ok || area.Grid != g.Code {
			t.Errorf("centroid %v of %s resolves to %q (ok %v)", g.Centroid, g.Code, area.Grid, ok)
			continue
		}
		if area != g.Area() {
			t.Errorf("Resolve(%s) = %+v, want %+v", g.Code, area, g.Area())
		}
	}
}

func TestResolveOutside(t *testing.T) {
	t.Parallel()
	m := demo(t)
	for _, p := range []event.Point{
		{Lon: 0, Lat: 0},
		{Lon: 116.40, Lat: 39.90},      // Beijing
		{Lon: 120.0499, Lat: 30.30},    // just west
		{Lon: 120.3501, Lat: 30.30},    // just east
		{Lon: 120.20, Lat: 30.1499},    // just south
		{Lon: 120.20, Lat: 30.4001},    // just north
		{Lon: 30.30, Lat: 120.20},      // lat and lon swapped
		{Lon: math.NaN(), Lat: 30.30},  // garbage
		{Lon: math.Inf(1), Lat: 30.30}, // garbage
	} {
		if a, ok := m.Resolve(p); ok {
			t.Errorf("Resolve(%v) = %s, want no grid", p, a.Grid)
		}
	}
}

// TestGridsTileTheCity checks that the grid polygons cover the city with no gap and no
// overlap: their areas add up to the city's, and random points lie in exactly one grid.
func TestGridsTileTheCity(t *testing.T) {
	t.Parallel()
	m := demo(t)
	grids := m.Grids()
	total := 0.0
	for _, g := range grids {
		a := planar.Area(g.Polygon)
		if a <= 0 {
			t.Errorf("grid %s has area %v", g.Code, a)
		}
		total += a
	}
	cityArea := (cityBound.Max[0] - cityBound.Min[0]) * (cityBound.Max[1] - cityBound.Min[1])
	if math.Abs(total-cityArea) > 1e-9 {
		t.Errorf("grids cover %.12f deg², city is %.12f", total, cityArea)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		p := orb.Point{
			cityBound.Min[0] + rng.Float64()*(cityBound.Max[0]-cityBound.Min[0]),
			cityBound.Min[1] + rng.Float64()*(cityBound.Max[1]-cityBound.Min[1]),
		}
		var in []string
		for _, g := range grids { // the linear scan is the test's oracle, not the code under test
			if planar.PolygonContains(g.Polygon, p) {
				in = append(in, g.Code)
			}
		}
		a, ok := m.Resolve(event.Point{Lon: p[0], Lat: p[1]})
		if len(in) != 1 || !ok || a.Grid != in[0] {
			t.Fatalf("point %v: in grids %v, Resolve = %q %v", p, in, a.Grid, ok)
		}
	}
}

func TestResolveBorderIsStable(t *testing.T) {
	t.Parallel()
	m := demo(t)
	// A vertex shared by several grids belongs to each; Resolve must pick the smallest code.
	for _, g := range m.Grids()[:20] {
		for _, v := range g.Polygon[0] {
			var in []string
			for _, h := range m.Grids() {
				if planar.PolygonContains(h.Polygon, v) {
					in = append(in, h.Code)
				}
			}
			a, ok := m.Resolve(event.Point{Lon: v[0], Lat: v[1]})
			if !ok || a.Grid != slices.Min(in) {
				t.Errorf("vertex %v of %s (in %v) resolves to %q", v, g.Code, in, a.Grid)
			}
		}
	}
}

func TestNeighbours(t *testing.T) {
	t.Parallel()
	m := demo(t)
	hist := map[int]int{}
	for _, g := range m.Grids() {
		ns := m.Neighbours(g.Code)
		hist[len(ns)]++
		for _, n := range ns {
			if n == g.Code {
				t.Errorf("%s is its own neighbour", g.Code)
			}
			if !slices.Contains(m.Neighbours(n), g.Code) {
				t.Errorf("%s lists %s as neighbour but not the other way round", g.Code, n)
			}
			if _, ok := m.Grid(n); !ok {
				t.Errorf("%s: unknown neighbour %s", g.Code, n)
			}
		}
	}
	// A 12×12 lattice: 4 corner cells with 3 neighbours, 40 edge cells with 5, 100 inner with 8.
	want := map[int]int{3: 4, 5: 40, 8: 100}
	if !mapsEqual(hist, want) {
		t.Errorf("neighbour counts %v, want %v", hist, want)
	}
	if got := m.Neighbours("nope"); len(got) != 0 {
		t.Errorf("Neighbours(unknown) = %v", got)
	}
}

func mapsEqual(a, b map[int]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestCategoriesAndAgencies(t *testing.T) {
	t.Parallel()
	m := demo(t)
	// The codes rules refer to, and their owners.
	want := map[string]string{
		"0101": "urban", "0102": "urban", "0103": "gas", "0104": "water",
		"0201": "traffic", "0202": "water", "0203": "urban",
		"0301": "urban", "0302": "urban", "0303": "urban",
		"0401": "env", "0402": "env",
		"0501": "fire", "0502": "traffic",
		"0601": "street", "0602": "street",
	}
	cats := m.Categories()
	if len(cats) != len(want) {
		t.Errorf("%d categories, want %d", len(cats), len(want))
	}
	for _, c := range cats {
		owner, ok := want[c.Code]
		if !ok {
			t.Errorf("unexpected category %s", c.Code)
			continue
		}
		if c.Agency != owner {
			t.Errorf("category %s owned by %q, want %q", c.Code, c.Agency, owner)
		}
		a, ok := m.AgencyFor(c.Code)
		if !ok || a.Code != c.Agency || !slices.Contains(a.Categories, c.Code) {
			t.Errorf("AgencyFor(%s) = %+v %v, not consistent with category", c.Code, a, ok)
		}
		if c.Major != c.Code[:2] || c.MajorName == "" || c.Name == "" {
			t.Errorf("category %+v: bad major class or name", c)
		}
		if !slices.Contains([]string{event.SeverityRed, event.SeverityOrange, event.SeverityYellow, event.SeverityBlue}, c.DefaultSeverity) {
			t.Errorf("category %s: severity %q", c.Code, c.DefaultSeverity)
		}
	}
	agencies := map[string]string{"water": "市水务局", "gas": "市燃气集团", "urban": "市城市管理局",
		"traffic": "市公安交警支队", "fire": "市消防救援支队", "env": "市生态环境局", "street": "街道办事处"}
	if len(m.Agencies()) != len(agencies) {
		t.Errorf("%d agencies, want %d", len(m.Agencies()), len(agencies))
	}
	for _, a := range m.Agencies() {
		if agencies[a.Code] != a.Name {
			t.Errorf("agency %s named %q, want %q", a.Code, a.Name, agencies[a.Code])
		}
		if !strings.Contains(a.LegalBasis, "《") {
			t.Errorf("agency %s: legal basis %q names no regulation", a.Code, a.LegalBasis)
		}
		for _, c := range a.Categories {
			if cat, ok := m.Category(c); !ok || cat.Agency != a.Code {
				t.Errorf("agency %s lists %s, which is %+v", a.Code, c, cat)
			}
		}
	}
	if a, _ := m.Agency("urban"); !strings.Contains(a.LegalBasis, "《城市市容和环境卫生管理条例》") {
		t.Errorf("urban legal basis %q", a.LegalBasis)
	}
	if _, ok := m.AgencyFor("9999"); ok {
		t.Error("AgencyFor(unknown) found an agency")
	}
}

func TestRoster(t *testing.T) {
	t.Parallel()
	m := demo(t)
	phones := map[string]string{}
	phoneRe := regexp.MustCompile(`^1[3-9]\d{9}$`)
	for _, g := range m.Grids() {
		ws := m.Workers(g.Code)
		if len(ws) == 0 {
			t.Errorf("grid %s has no worker", g.Code)
		}
		for _, w := range ws {
			if w.Role != city.RoleWorker || !slices.Contains(w.Grids, g.Code) || w.Community != g.Community {
				t.Errorf("grid %s: worker %+v", g.Code, w)
			}
			if got, ok := m.Worker(w.ID); !ok || got.ID != w.ID {
				t.Errorf("Worker(%s) = %v", w.ID, ok)
			}
			if !phoneRe.MatchString(w.Phone) {
				t.Errorf("worker %s phone %q", w.ID, w.Phone)
			}
			if other, dup := phones[w.Phone]; dup && other != w.ID {
				t.Errorf("phone %s shared by %s and %s", w.Phone, other, w.ID)
			}
			phones[w.Phone] = w.ID
		}
	}
	for _, c := range m.Communities() {
		s, ok := m.Supervisor(c.Code)
		if !ok || s.Role != city.RoleSupervisor || s.Community != c.Code {
			t.Errorf("community %s: supervisor %+v %v", c.Code, s, ok)
		}
	}
	if _, ok := m.Supervisor("nope"); ok {
		t.Error("Supervisor(unknown) found someone")
	}
}

// TestSomeoneAlwaysOnDuty checks the promise dispatch relies on: at every half hour of the
// week, each grid has an on-duty worker in it or in a neighbouring grid.
func TestSomeoneAlwaysOnDuty(t *testing.T) {
	t.Parallel()
	m := demo(t)
	cst := time.FixedZone("CST", 8*3600)
	monday := time.Date(2025, 6, 2, 0, 0, 0, 0, cst)
	for step := range 7 * 48 {
		at := monday.Add(time.Duration(step) * 30 * time.Minute)
		for _, g := range m.Grids() {
			if !anyOnDuty(m, at, append([]string{g.Code}, m.Neighbours(g.Code)...)) {
				t.Fatalf("%s: nobody on duty in or next to %s", at, g.Code)
			}
		}
	}
}

func anyOnDuty(m *city.Map, at time.Time, grids []string) bool {
	for _, g := range grids {
		for _, w := range m.Workers(g) {
			if w.OnDuty(at) {
				return true
			}
		}
	}
	return false
}

func TestOnDuty(t *testing.T) {
	t.Parallel()
	cst := time.FixedZone("CST", 8*3600)
	at := func(day, hh, mm int) time.Time { // June 2025: the 1st is a Sunday
		return time.Date(2025, 6, day, hh, mm, 0, 0, cst)
	}
	day := city.Shift{Start: "08:00", End: "20:00"}
	night := city.Shift{Start: "20:00", End: "08:00"}
	sundayNight := city.Shift{Days: []time.Weekday{time.Sunday}, Start: "22:00", End: "06:00"}
	weekdays := city.Shift{Days: []time.Weekday{time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday}, Start: "08:30", End: "17:30"}
	allDay := city.Shift{Start: "00:00", End: "24:00"}
	tests := []struct {
		name  string
		shift city.Shift
		at    time.Time
		want  bool
	}{
		{"day shift at start", day, at(2, 8, 0), true},
		{"day shift before start", day, at(2, 7, 59), false},
		{"day shift at end is off", day, at(2, 20, 0), false},
		{"night before midnight", night, at(2, 23, 30), true},
		{"night after midnight", night, at(3, 0, 30), true},
		{"night at 07:59", night, at(3, 7, 59), true},
		{"night at noon", night, at(3, 12, 0), false},
		{"sunday night shift, sunday 23:00", sundayNight, at(1, 23, 0), true},
		{"sunday night shift, monday 05:00", sundayNight, at(2, 5, 0), true},
		{"sunday night shift, monday 23:00", sundayNight, at(2, 23, 0), false},
		{"sunday night shift, sunday 05:00 belongs to saturday", sundayNight, at(1, 5, 0), false},
		{"weekdays on friday", weekdays, at(6, 9, 0), true},
		{"weekdays on saturday", weekdays, at(7, 9, 0), false},
		{"all day at 23:59", allDay, at(4, 23, 59), true},
		// 01:00 UTC is 09:00 in Shanghai: the zone of t must not matter.
		{"utc input converted", day, time.Date(2025, 6, 2, 1, 0, 0, 0, time.UTC), true},
		{"utc input converted, off", day, time.Date(2025, 6, 2, 13, 0, 0, 0, time.UTC), false},
		{"malformed shift never on", city.Shift{Start: "8am", End: "20:00"}, at(2, 9, 0), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := city.Worker{ID: "w", Shifts: []city.Shift{tt.shift}}
			if got := w.OnDuty(tt.at); got != tt.want {
				t.Errorf("OnDuty(%s) = %v, want %v", tt.at, got, tt.want)
			}
		})
	}
}

func TestGridsGeoJSON(t *testing.T) {
	t.Parallel()
	m := demo(t)
	raw := m.GridsGeoJSON()
	var fc struct {
		Type     string `json:"type"`
		CoordSys string `json:"coordsys"`
		Features []struct {
			Type       string            `json:"type"`
			Properties map[string]string `json:"properties"`
			Geometry   struct {
				Type        string         `json:"type"`
				Coordinates [][][2]float64 `json:"coordinates"`
			} `json:"geometry"`
		} `json:"features"`
	}
	if err := json.Unmarshal(raw, &fc); err != nil {
		t.Fatal(err)
	}
	if fc.Type != "FeatureCollection" || fc.CoordSys != "wgs84" || len(fc.Features) != 144 {
		t.Fatalf("type %q coordsys %q features %d", fc.Type, fc.CoordSys, len(fc.Features))
	}
	for _, f := range fc.Features {
		g, ok := m.Grid(f.Properties["code"])
		if !ok || f.Properties["street"] != g.Street || f.Properties["district"] != g.District ||
			f.Properties["name"] != g.Name || f.Properties["street_name"] != g.StreetName {
			t.Errorf("feature properties %v do not match grid %+v", f.Properties, g)
		}
		if f.Geometry.Type != "Polygon" || len(f.Geometry.Coordinates) != 1 || len(f.Geometry.Coordinates[0]) < 4 {
			t.Errorf("feature %s geometry %s with %d rings", g.Code, f.Geometry.Type, len(f.Geometry.Coordinates))
		}
	}
	// The output is valid input: a map loaded from it resolves like the original.
	fsys := demoFiles(t)
	fsys[city.FileGrids] = &fstest.MapFile{Data: raw}
	again, err := city.Load(fsys)
	if err != nil {
		t.Fatalf("load from GridsGeoJSON: %v", err)
	}
	for _, g := range m.Grids() {
		if a, ok := again.Resolve(g.Centroid); !ok || a.Grid != g.Code {
			t.Errorf("reloaded map resolves %s to %q", g.Code, a.Grid)
		}
	}
	// On request the same grids come in GCJ-02, a few hundred metres off, labelled as such.
	gcj, err := m.GridsGeoJSONIn(event.CoordGCJ02)
	if err != nil {
		t.Fatal(err)
	}
	var fcGCJ struct {
		CoordSys string `json:"coordsys"`
		Features []struct {
			Geometry struct {
				Coordinates [][][2]float64 `json:"coordinates"`
			} `json:"geometry"`
		} `json:"features"`
	}
	if err := json.Unmarshal(gcj, &fcGCJ); err != nil {
		t.Fatal(err)
	}
	w0 := fc.Features[0].Geometry.Coordinates[0][0]
	g0 := fcGCJ.Features[0].Geometry.Coordinates[0][0]
	want := city.WGS84ToGCJ02(event.Point{Lon: w0[0], Lat: w0[1]})
	if fcGCJ.CoordSys != "gcj02" || len(fcGCJ.Features) != 144 ||
		math.Abs(g0[0]-want.Lon) > 1e-6 || math.Abs(g0[1]-want.Lat) > 1e-6 {
		t.Errorf("gcj02 collection: coordsys %q, first vertex %v, want %v", fcGCJ.CoordSys, g0, want)
	}
	if b, err := m.GridsGeoJSONIn(event.CoordBD09); err != nil || !strings.Contains(string(b), `"coordsys":"bd09"`) {
		t.Errorf("bd09 collection: %v", err)
	}
	if _, err := m.GridsGeoJSONIn("utm"); err == nil {
		t.Error("unknown coordsys accepted")
	}

	raw[0] = 'X' // the caller owns the bytes
	if m.GridsGeoJSON()[0] != '{' {
		t.Error("GridsGeoJSON returned the map's own buffer")
	}
}

// demoFiles copies the demo city into a MapFS that a test can spoil.
func demoFiles(t *testing.T) fstest.MapFS {
	t.Helper()
	out := fstest.MapFS{}
	for _, name := range []string{city.FileGrids, city.FileCategories, city.FileAgencies, city.FileRoster} {
		b, err := city.DemoFS.ReadFile("demo/" + name)
		if err != nil {
			t.Fatal(err)
		}
		out[name] = &fstest.MapFile{Data: b}
	}
	return out
}

func TestLoadRefusesBadData(t *testing.T) {
	t.Parallel()
	replace := func(name, old, new string) func(fstest.MapFS) {
		return func(fs fstest.MapFS) {
			s := string(fs[name].Data)
			if !strings.Contains(s, old) {
				panic("test fixture: " + old + " not in " + name)
			}
			fs[name] = &fstest.MapFile{Data: []byte(strings.Replace(s, old, new, 1))}
		}
	}
	tests := []struct {
		name    string
		spoil   func(fstest.MapFS)
		wantErr []string
	}{
		{"roster names an unknown grid", replace(city.FileRoster, `grids: ["990101001001-01"]`, `grids: ["990101001001-99"]`),
			[]string{`unknown grid "990101001001-99"`}},
		{"category owned twice", replace(city.FileAgencies, `categories: ["0103"]`, `categories: ["0103", "0104"]`),
			[]string{"category 0104 owned by both"}},
		{"category owned by nobody", replace(city.FileAgencies, `categories: ["0501"]`, `categories: []`),
			[]string{"no agency owns category 0501"}},
		{"agency owns an unknown category", replace(city.FileAgencies, `categories: ["0501"]`, `categories: ["0501", "0999"]`),
			[]string{`unknown category "0999"`}},
		{"bad severity", replace(city.FileCategories, `severity: red}`, `severity: purple}`),
			[]string{`severity "purple"`}},
		{"alias of two categories", replace(city.FileCategories, `aliases: [违停,`, `aliases: [积水, 违停,`),
			[]string{`"积水" names both category 0201 and 0202`}},
		{"keyword of two categories", replace(city.FileCategories, `keywords: [违停,`, `keywords: [积水, 违停,`),
			[]string{`keyword "积水" is listed for both category 0201 and 0202`}},
		{"empty keyword", replace(city.FileCategories, `keywords: [违停,`, `keywords: [" ", 违停,`),
			[]string{"category 0201: empty keyword"}},
		{"bad shift", replace(city.FileRoster, `start: "08:00", end: "20:00"`, `start: "8 am", end: "20:00"`),
			[]string{`time "8 am"`}},
		{"unknown field", replace(city.FileRoster, `role: worker`, `rank: worker`),
			[]string{"field rank not found"}},
		{"grid missing its street", replace(city.FileGrids, `"street":"990101001",`, ``),
			[]string{"missing properties street"}},
		{"lat and lon swapped", replace(city.FileGrids, `[[[120.05,30.`, `[[[30.05,120.`),
			[]string{"not a WGS-84 position in China"}},
		{"missing roster", func(fs fstest.MapFS) { delete(fs, city.FileRoster) },
			[]string{"roster.yaml"}},
		{"two problems reported together",
			func(fs fstest.MapFS) {
				replace(city.FileCategories, `severity: red}`, `severity: purple}`)(fs)
				replace(city.FileAgencies, `categories: ["0501"]`, `categories: []`)(fs)
			},
			[]string{`severity "purple"`, "no agency owns category 0501"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fsys := demoFiles(t)
			tt.spoil(fsys)
			m, err := city.Load(fsys)
			if err == nil {
				t.Fatalf("Load succeeded (%d grids), want errors %q", len(m.Grids()), tt.wantErr)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestLoadOwnData(t *testing.T) {
	t.Parallel()
	m, err := city.Load(demoFiles(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Grids()) != 144 {
		t.Errorf("%d grids", len(m.Grids()))
	}
}
