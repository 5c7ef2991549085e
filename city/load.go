package city

import (
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"slices"
	"strings"

	"github.com/paulmach/orb"
	"github.com/paulmach/orb/planar"
	"go.yaml.in/yaml/v3"

	"github.com/urbanbrain/urbanbrain/event"
)

//go:generate go run ./internal/gen -out demo

// DemoFS holds the demo city 云川市 (Yunchuan, a fictional city; code prefix 990000 is not a
// real administrative code): demo/grids.geojson, demo/categories.yaml, demo/agencies.yaml,
// demo/roster.yaml and the sample rules in demo/rules/*.yaml (which the map does not read:
// the rules engine takes fs.Sub(DemoFS, "demo/rules")).
//
//go:embed demo
var DemoFS embed.FS

// Files a city's data directory holds.
const (
	FileGrids      = "grids.geojson"
	FileCategories = "categories.yaml"
	FileAgencies   = "agencies.yaml"
	FileRoster     = "roster.yaml"
)

var severities = []string{event.SeverityRed, event.SeverityOrange, event.SeverityYellow, event.SeverityBlue}

// LoadDemo loads the embedded demo city.
func LoadDemo() (*Map, error) {
	sub, err := fs.Sub(DemoFS, "demo")
	if err != nil {
		return nil, fmt.Errorf("demo city: %w", err)
	}
	return Load(sub)
}

// Load reads a city from fsys (grids.geojson, categories.yaml, agencies.yaml, roster.yaml at
// its root) and checks every cross-reference; all problems are reported together.
func Load(fsys fs.FS) (*Map, error) {
	m := &Map{}
	var errs []error
	if err := m.loadGrids(fsys); err != nil {
		errs = append(errs, err)
	}
	if err := m.loadCategories(fsys); err != nil {
		errs = append(errs, err)
	}
	if err := m.loadAgencies(fsys); err != nil {
		errs = append(errs, err)
	}
	if err := m.loadRoster(fsys); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("load city: %w", err)
	}
	return m, nil
}

// ---- grids ----

type gridProps struct {
	Code          string `json:"code"`
	Name          string `json:"name"`
	Community     string `json:"community"`
	CommunityName string `json:"community_name"`
	Street        string `json:"street"`
	StreetName    string `json:"street_name"`
	District      string `json:"district"`
	DistrictName  string `json:"district_name"`
}

func (m *Map) loadGrids(fsys fs.FS) error {
	b, err := fs.ReadFile(fsys, FileGrids)
	if err != nil {
		return err
	}
	var fc featureCollection
	if err := json.Unmarshal(b, &fc); err != nil {
		return fmt.Errorf("%s: %w", FileGrids, err)
	}
	if fc.Type != "FeatureCollection" {
		return fmt.Errorf("%s: type %q, want FeatureCollection", FileGrids, fc.Type)
	}
	var errs []error
	m.gridIdx = make(map[string]int, len(fc.Features))
	for i, f := range fc.Features {
		g, err := gridFromFeature(f)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s feature %d: %w", FileGrids, i, err))
			continue
		}
		if _, dup := m.gridIdx[g.Code]; dup {
			errs = append(errs, fmt.Errorf("%s: grid %s defined twice", FileGrids, g.Code))
			continue
		}
		m.gridIdx[g.Code] = len(m.grids)
		m.grids = append(m.grids, g)
	}
	if len(m.grids) == 0 && len(errs) == 0 {
		errs = append(errs, fmt.Errorf("%s: no grids", FileGrids))
	}
	slices.SortFunc(m.grids, func(a, b Grid) int { return strings.Compare(a.Code, b.Code) })
	for i, g := range m.grids {
		m.gridIdx[g.Code] = i
	}
	errs = append(errs, m.buildRegions()...)
	m.index = NewIndex(m.grids)
	m.neighbours = neighbours(m.grids, m.index)
	if m.geojson, err = gridsGeoJSON(m.grids, event.CoordWGS84); err != nil {
		errs = append(errs, err)
	}
	if m.geojsonGCJ02, err = gridsGeoJSON(m.grids, event.CoordGCJ02); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func gridFromFeature(f feature) (Grid, error) {
	p := f.Properties
	var missing []string
	for name, v := range map[string]string{"code": p.Code, "name": p.Name, "community": p.Community,
		"street": p.Street, "district": p.District} {
		if v == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return Grid{}, fmt.Errorf("grid %q: missing properties %s", p.Code, strings.Join(missing, ", "))
	}
	var poly orb.Polygon
	switch f.Geometry.Type {
	case "Polygon":
		var rings [][]orb.Point
		if err := json.Unmarshal(f.Geometry.Coordinates, &rings); err != nil {
			return Grid{}, fmt.Errorf("grid %s: coordinates: %w", p.Code, err)
		}
		for _, r := range rings {
			poly = append(poly, orb.Ring(r))
		}
	default:
		return Grid{}, fmt.Errorf("grid %s: geometry %q, want Polygon", p.Code, f.Geometry.Type)
	}
	if err := checkPolygon(poly); err != nil {
		return Grid{}, fmt.Errorf("grid %s: %w", p.Code, err)
	}
	return Grid{
		Code: p.Code, Name: p.Name,
		Community: p.Community, CommunityName: p.CommunityName,
		Street: p.Street, StreetName: p.StreetName,
		District: p.District, DistrictName: p.DistrictName,
		Polygon:  poly,
		Centroid: interiorPoint(poly),
	}, nil
}

func checkPolygon(p orb.Polygon) error {
	if len(p) == 0 {
		return errors.New("empty polygon")
	}
	for i, r := range p {
		if len(r) < 4 {
			return fmt.Errorf("ring %d has %d points, want at least 4", i, len(r))
		}
		for _, pt := range r {
			if !InChina(event.Point{Lon: pt[0], Lat: pt[1]}) {
				return fmt.Errorf("ring %d: point %v is not a WGS-84 position in China (lon, lat order?)", i, pt)
			}
		}
		if r[0] != r[len(r)-1] {
			return fmt.Errorf("ring %d is not closed", i)
		}
	}
	if planar.Area(p) == 0 {
		return errors.New("polygon has zero area")
	}
	return nil
}

// interiorPoint returns the centroid when it lies inside the polygon, and otherwise the middle
// of the widest span of the horizontal line through the centroid, which is always inside.
func interiorPoint(p orb.Polygon) event.Point {
	c, _ := planar.CentroidArea(p)
	if planar.PolygonContains(p, c) {
		return event.Point{Lon: c[0], Lat: c[1]}
	}
	y := c[1]
	var xs []float64
	for _, r := range p {
		for i := 0; i+1 < len(r); i++ {
			a, b := r[i], r[i+1]
			if (a[1] <= y) != (b[1] <= y) {
				xs = append(xs, a[0]+(y-a[1])*(b[0]-a[0])/(b[1]-a[1]))
			}
		}
	}
	slices.Sort(xs)
	best, bestW := c, -1.0
	for i := 0; i+1 < len(xs); i += 2 {
		if w := xs[i+1] - xs[i]; w > bestW {
			best, bestW = orb.Point{(xs[i] + xs[i+1]) / 2, y}, w
		}
	}
	return event.Point{Lon: best[0], Lat: best[1]}
}

// buildRegions derives districts, streets and communities from the grids' properties and
// checks that every code nests in its parent and every name is consistent.
func (m *Map) buildRegions() []error {
	var errs []error
	type level struct {
		seen map[string]Region
		out  *[]Region
		kind string
	}
	levels := [3]level{
		{map[string]Region{}, &m.districts, "district"},
		{map[string]Region{}, &m.streets, "street"},
		{map[string]Region{}, &m.communities, "community"},
	}
	for _, g := range m.grids {
		regs := [3]Region{
			{Code: g.District, Name: g.DistrictName},
			{Code: g.Street, Name: g.StreetName, Parent: g.District},
			{Code: g.Community, Name: g.CommunityName, Parent: g.Street},
		}
		if !strings.HasPrefix(g.Code, g.Community) || !strings.HasPrefix(g.Community, g.Street) ||
			!strings.HasPrefix(g.Street, g.District) {
			errs = append(errs, fmt.Errorf("grid %s: codes do not nest (district %s, street %s, community %s)",
				g.Code, g.District, g.Street, g.Community))
		}
		for i, r := range regs {
			lv := levels[i]
			if old, ok := lv.seen[r.Code]; ok {
				if old != r {
					errs = append(errs, fmt.Errorf("grid %s: %s %s is %+v here but %+v elsewhere", g.Code, lv.kind, r.Code, r, old))
				}
				continue
			}
			lv.seen[r.Code] = r
			*lv.out = append(*lv.out, r)
		}
	}
	for _, lv := range levels {
		slices.SortFunc(*lv.out, func(a, b Region) int { return strings.Compare(a.Code, b.Code) })
	}
	return errs
}

// ---- categories and agencies ----

type categoriesFile struct {
	Majors []struct {
		Code       string `yaml:"code"`
		Name       string `yaml:"name"`
		Categories []struct {
			Code     string   `yaml:"code"`
			Name     string   `yaml:"name"`
			Severity string   `yaml:"severity"`
			Aliases  []string `yaml:"aliases"`
			Keywords []string `yaml:"keywords"`
		} `yaml:"categories"`
	} `yaml:"majors"`
}

func (m *Map) loadCategories(fsys fs.FS) error {
	var f categoriesFile
	if err := readYAML(fsys, FileCategories, &f); err != nil {
		return err
	}
	var errs []error
	m.catIdx = map[string]int{}
	for _, mj := range f.Majors {
		if len(mj.Code) != 2 || mj.Name == "" {
			errs = append(errs, fmt.Errorf("%s: major class %q %q: want a two-digit code and a name", FileCategories, mj.Code, mj.Name))
		}
		for _, c := range mj.Categories {
			switch {
			case len(c.Code) != 4 || !strings.HasPrefix(c.Code, mj.Code):
				errs = append(errs, fmt.Errorf("%s: category %q: want four digits starting with its major class %s", FileCategories, c.Code, mj.Code))
				continue
			case c.Name == "":
				errs = append(errs, fmt.Errorf("%s: category %s has no name", FileCategories, c.Code))
			case !slices.Contains(severities, c.Severity):
				errs = append(errs, fmt.Errorf("%s: category %s: severity %q, want one of %v", FileCategories, c.Code, c.Severity, severities))
			}
			if _, dup := m.catIdx[c.Code]; dup {
				errs = append(errs, fmt.Errorf("%s: category %s defined twice", FileCategories, c.Code))
				continue
			}
			m.catIdx[c.Code] = len(m.categories)
			m.categories = append(m.categories, Category{
				Code: c.Code, Name: c.Name, Major: mj.Code, MajorName: mj.Name, DefaultSeverity: c.Severity,
				Aliases: c.Aliases, Keywords: c.Keywords,
			})
		}
	}
	slices.SortFunc(m.categories, func(a, b Category) int { return strings.Compare(a.Code, b.Code) })
	for i, c := range m.categories {
		m.catIdx[c.Code] = i
	}
	errs = append(errs, m.buildVocabulary()...)
	return errors.Join(errs...)
}

type agenciesFile struct {
	Agencies []struct {
		Code       string   `yaml:"code"`
		Name       string   `yaml:"name"`
		LegalBasis string   `yaml:"legal_basis"`
		Webhook    string   `yaml:"webhook"`
		Categories []string `yaml:"categories"`
	} `yaml:"agencies"`
}

// loadAgencies reads the 权责清单. The agency list is the single source of ownership: each
// category gets its Agency from the one agency that lists it. Needs categories loaded.
func (m *Map) loadAgencies(fsys fs.FS) error {
	var f agenciesFile
	if err := readYAML(fsys, FileAgencies, &f); err != nil {
		return err
	}
	var errs []error
	m.agencyIdx = map[string]int{}
	for _, a := range f.Agencies {
		if a.Code == "" || a.Name == "" {
			errs = append(errs, fmt.Errorf("%s: agency %q %q: want a code and a name", FileAgencies, a.Code, a.Name))
			continue
		}
		if _, dup := m.agencyIdx[a.Code]; dup {
			errs = append(errs, fmt.Errorf("%s: agency %s defined twice", FileAgencies, a.Code))
			continue
		}
		for _, c := range a.Categories {
			i, ok := m.catIdx[c]
			switch {
			case !ok:
				errs = append(errs, fmt.Errorf("%s: agency %s owns unknown category %q", FileAgencies, a.Code, c))
			case m.categories[i].Agency != "":
				errs = append(errs, fmt.Errorf("%s: category %s owned by both %s and %s", FileAgencies, c, m.categories[i].Agency, a.Code))
			default:
				m.categories[i].Agency = a.Code
			}
		}
		m.agencyIdx[a.Code] = len(m.agencies)
		m.agencies = append(m.agencies, Agency{
			Code: a.Code, Name: a.Name, Categories: slices.Sorted(slices.Values(a.Categories)),
			LegalBasis: a.LegalBasis, Webhook: a.Webhook,
		})
	}
	slices.SortFunc(m.agencies, func(a, b Agency) int { return strings.Compare(a.Code, b.Code) })
	for i, a := range m.agencies {
		m.agencyIdx[a.Code] = i
	}
	for _, c := range m.categories {
		if c.Agency == "" {
			errs = append(errs, fmt.Errorf("%s: no agency owns category %s %s", FileAgencies, c.Code, c.Name))
		}
	}
	return errors.Join(errs...)
}

// ---- roster ----

type rosterFile struct {
	Workers []struct {
		ID        string   `yaml:"id"`
		Name      string   `yaml:"name"`
		Phone     string   `yaml:"phone"`
		Role      string   `yaml:"role"`
		Grids     []string `yaml:"grids"`
		Community string   `yaml:"community"`
		Shifts    []struct {
			Days  []string `yaml:"days"`
			Start string   `yaml:"start"`
			End   string   `yaml:"end"`
		} `yaml:"shifts"`
	} `yaml:"workers"`
}

// loadRoster reads workers and supervisors. Needs grids loaded.
func (m *Map) loadRoster(fsys fs.FS) error {
	var f rosterFile
	if err := readYAML(fsys, FileRoster, &f); err != nil {
		return err
	}
	var errs []error
	communities := map[string]bool{}
	for _, c := range m.communities {
		communities[c.Code] = true
	}
	m.workerIdx = map[string]int{}
	for _, w := range f.Workers {
		fail := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("%s: worker %q: %s", FileRoster, w.ID, fmt.Sprintf(format, args...)))
		}
		if w.ID == "" || w.Name == "" {
			fail("want an id and a name")
			continue
		}
		if _, dup := m.workerIdx[w.ID]; dup {
			fail("defined twice")
			continue
		}
		switch w.Role {
		case RoleWorker:
			if len(w.Grids) == 0 {
				fail("a grid worker needs at least one grid")
			}
		case RoleSupervisor:
			if w.Community == "" {
				fail("a supervisor needs a community")
			}
		default:
			fail("role %q, want %s or %s", w.Role, RoleWorker, RoleSupervisor)
		}
		for _, g := range w.Grids {
			if _, ok := m.gridIdx[g]; !ok {
				fail("unknown grid %q", g)
			}
		}
		if w.Community != "" && !communities[w.Community] {
			fail("unknown community %q", w.Community)
		}
		worker := Worker{ID: w.ID, Name: w.Name, Phone: w.Phone, Role: w.Role,
			Grids: w.Grids, Community: w.Community}
		for i, s := range w.Shifts {
			days, err := parseDays(s.Days)
			if err != nil {
				fail("shift %d: %v", i, err)
			}
			start, err1 := parseClock(s.Start)
			end, err2 := parseClock(s.End)
			if err := errors.Join(err1, err2); err != nil {
				fail("shift %d: %v", i, err)
			} else if start == end || start == 24*60 {
				fail("shift %d: %s–%s is empty", i, s.Start, s.End)
			}
			worker.Shifts = append(worker.Shifts, Shift{Days: days, Start: s.Start, End: s.End})
		}
		if len(worker.Shifts) == 0 {
			fail("no shifts")
		}
		m.workerIdx[w.ID] = len(m.workers)
		m.workers = append(m.workers, worker)
	}
	slices.SortFunc(m.workers, func(a, b Worker) int { return strings.Compare(a.ID, b.ID) })
	m.gridWorkers = map[string][]int{}
	m.supervisors = map[string]int{}
	for i, w := range m.workers {
		m.workerIdx[w.ID] = i
		for _, g := range w.Grids {
			m.gridWorkers[g] = append(m.gridWorkers[g], i)
		}
		if w.Role == RoleSupervisor {
			if j, dup := m.supervisors[w.Community]; dup {
				errs = append(errs, fmt.Errorf("%s: community %s has two supervisors, %s and %s", FileRoster, w.Community, m.workers[j].ID, w.ID))
				continue
			}
			m.supervisors[w.Community] = i
		}
	}
	return errors.Join(errs...)
}

func readYAML(fsys fs.FS, name string, out any) error {
	b, err := fs.ReadFile(fsys, name)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(out); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// ---- GeoJSON ----

// The few GeoJSON (RFC 7946) shapes the map reads and writes. orb's geojson package would
// pull in a BSON driver for a feature we do not use, so the map spells them out.
type featureCollection struct {
	Type     string    `json:"type"`
	CoordSys string    `json:"coordsys,omitempty"` // foreign member: RFC 7946 dropped named CRS
	Features []feature `json:"features"`
}

type feature struct {
	Type       string    `json:"type"`
	ID         string    `json:"id,omitempty"`
	Geometry   geometry  `json:"geometry"`
	Properties gridProps `json:"properties"`
}

type geometry struct {
	Type        string          `json:"type"`
	Coordinates json.RawMessage `json:"coordinates"`
}

func gridsGeoJSON(grids []Grid, coordsys string) ([]byte, error) {
	fc := featureCollection{Type: "FeatureCollection", CoordSys: coordsys}
	for _, g := range grids {
		poly, err := convertPolygon(g.Polygon, coordsys)
		if err != nil {
			return nil, fmt.Errorf("grids geojson: %w", err)
		}
		coords, err := json.Marshal(poly)
		if err != nil {
			return nil, fmt.Errorf("grids geojson: %w", err)
		}
		fc.Features = append(fc.Features, feature{
			Type: "Feature", ID: g.Code,
			Geometry: geometry{Type: "Polygon", Coordinates: coords},
			Properties: gridProps{
				Code: g.Code, Name: g.Name,
				Community: g.Community, CommunityName: g.CommunityName,
				Street: g.Street, StreetName: g.StreetName,
				District: g.District, DistrictName: g.DistrictName,
			},
		})
	}
	b, err := json.Marshal(fc)
	if err != nil {
		return nil, fmt.Errorf("grids geojson: %w", err)
	}
	return b, nil
}

// convertPolygon converts a WGS-84 polygon to coordsys, keeping 7 decimals (about 1 cm),
// which halves the size of the GeoJSON.
func convertPolygon(p orb.Polygon, coordsys string) (orb.Polygon, error) {
	out := make(orb.Polygon, len(p))
	for i, r := range p {
		out[i] = make(orb.Ring, len(r))
		for j, pt := range r {
			c, err := FromWGS84(coordsys, event.Point{Lon: pt[0], Lat: pt[1]})
			if err != nil {
				return nil, err
			}
			out[i][j] = orb.Point{math.Round(c.Lon*1e7) / 1e7, math.Round(c.Lat*1e7) / 1e7}
		}
	}
	return out, nil
}
