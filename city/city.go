package city

import (
	"slices"
	"strings"
	"time"

	"github.com/paulmach/orb"

	"github.com/urbanbrain/urbanbrain/event"
)

// Map is a loaded city: areas, grids, categories, agencies and roster. It is immutable after
// Load; slices it returns share its backing arrays and must be treated as read-only.
type Map struct {
	grids      []Grid // sorted by code
	gridIdx    map[string]int
	index      *Index
	neighbours map[string][]string

	districts   []Region
	streets     []Region
	communities []Region

	categories []Category // sorted by code
	catIdx     map[string]int
	aliases    map[string]string // normalised name, name part or alias → category code
	keywords   []keyword         // in category order, each category's as listed
	// keywordsByRune indexes keywords by their first rune.
	keywordsByRune map[rune][]int
	agencies       []Agency // sorted by code
	agencyIdx      map[string]int

	workers     []Worker // sorted by ID
	workerIdx   map[string]int
	gridWorkers map[string][]int // grid code → indexes into workers
	supervisors map[string]int   // community code → index into workers

	geojson      []byte // WGS-84
	geojsonGCJ02 []byte
}

// Region is an administrative area above the grid: a district (区), a street (街道) or a
// community (社区). Parent is the code of the enclosing region ("" for a district).
type Region struct {
	Code   string `json:"code"`
	Name   string `json:"name"`
	Parent string `json:"parent,omitempty"`
}

// Grid is the smallest management cell (网格), the unit a grid worker is responsible for.
// Polygon is in WGS-84 (lon, lat); Centroid is a point inside it.
type Grid struct {
	Code          string
	Name          string
	Community     string
	CommunityName string
	Street        string
	StreetName    string
	District      string
	DistrictName  string
	Polygon       orb.Polygon
	Centroid      event.Point
}

// Area returns the grid's place in the administrative hierarchy, as events carry it.
func (g Grid) Area() event.Area {
	return event.Area{
		District:      g.District,
		DistrictName:  g.DistrictName,
		Street:        g.Street,
		StreetName:    g.StreetName,
		Community:     g.Community,
		CommunityName: g.CommunityName,
		Grid:          g.Code,
		GridName:      g.Name,
	}
}

// Category is an event category in the style of GB/T 30428 (数字化城市管理信息系统 部件和事件):
// a two-digit major class and a four-digit minor class. Agency is the code of the agency that
// owns it in the 权责清单. Aliases are other names producers give it (a 12345 platform's
// 路面积水 for 道路积水); Keywords are the words that put a ticket's text in it (积水, 内涝).
type Category struct {
	Code            string
	Name            string
	Major           string
	MajorName       string
	Agency          string
	DefaultSeverity string
	Aliases         []string
	Keywords        []string
}

// Agency is a department that handles categories of incidents (水务, 燃气, 城管, 交警, 消防, ...).
// LegalBasis names the regulation that makes the category its responsibility. Webhook is
// where it is notified ("" when it only watches the cockpit).
type Agency struct {
	Code       string
	Name       string
	Categories []string
	LegalBasis string
	Webhook    string
}

// Roles in the roster.
const (
	RoleWorker     = "worker"     // 网格员
	RoleSupervisor = "supervisor" // 社区监督员
)

// Worker is a grid worker (网格员) or a community supervisor (社区监督员). Phone is personal
// data: mask it before it leaves the system.
type Worker struct {
	ID        string
	Name      string
	Phone     string
	Role      string
	Grids     []string
	Community string
	Shifts    []Shift
}

// Shift is a weekly recurring duty period in Asia/Shanghai time. Start and End are "HH:MM";
// End before Start means the shift runs overnight into the next day, and End "24:00" means
// midnight. The shift belongs to the day it starts on: Days [Monday] with 20:00–08:00 covers
// Monday 20:00 to Tuesday 08:00. Empty Days means every day.
type Shift struct {
	Days  []time.Weekday
	Start string
	End   string
}

// Resolve finds the grid that contains p (WGS-84) and returns its area. Points on a border
// shared by two grids resolve to the grid with the smaller code, so the answer is stable.
func (m *Map) Resolve(p event.Point) (event.Area, bool) {
	g, ok := m.index.Resolve(p)
	if !ok {
		return event.Area{}, false
	}
	return g.Area(), true
}

// Grid returns the grid with this code.
func (m *Map) Grid(code string) (Grid, bool) {
	i, ok := m.gridIdx[code]
	if !ok {
		return Grid{}, false
	}
	return m.grids[i], true
}

// Grids returns every grid, sorted by code.
func (m *Map) Grids() []Grid { return slices.Clone(m.grids) }

// Neighbours returns the codes of the grids that share an edge or a corner with grid, sorted.
func (m *Map) Neighbours(grid string) []string { return slices.Clone(m.neighbours[grid]) }

// Category returns the category with this code ("0101").
func (m *Map) Category(code string) (Category, bool) {
	i, ok := m.catIdx[code]
	if !ok {
		return Category{}, false
	}
	return m.categories[i], true
}

// Categories returns every category, sorted by code.
func (m *Map) Categories() []Category { return slices.Clone(m.categories) }

// Agency returns the agency with this code ("water").
func (m *Map) Agency(code string) (Agency, bool) {
	i, ok := m.agencyIdx[code]
	if !ok {
		return Agency{}, false
	}
	return m.agencies[i], true
}

// Agencies returns every agency, sorted by code.
func (m *Map) Agencies() []Agency { return slices.Clone(m.agencies) }

// AgencyFor returns the agency that owns a category in the 权责清单.
func (m *Map) AgencyFor(category string) (Agency, bool) {
	c, ok := m.Category(category)
	if !ok {
		return Agency{}, false
	}
	return m.Agency(c.Agency)
}

// Workers returns every worker assigned to grid, sorted by ID. Supervisors are not assigned
// to grids; see Supervisor.
func (m *Map) Workers(grid string) []Worker {
	idx := m.gridWorkers[grid]
	out := make([]Worker, 0, len(idx))
	for _, i := range idx {
		out = append(out, m.workers[i])
	}
	return out
}

// Worker returns the worker or supervisor with this ID.
func (m *Map) Worker(id string) (Worker, bool) {
	i, ok := m.workerIdx[id]
	if !ok {
		return Worker{}, false
	}
	return m.workers[i], true
}

// StreetPost is a street's duty post (街道监督员): id "SS-<street code>", named after the
// street. Street names already end in 街道 ("桂苑街道"), so the post is "桂苑街道监督员",
// never "桂苑街道街道监督员"; a name without the suffix gets it. Dispatch sends what returns
// twice there, and the demo's people staff it.
func StreetPost(code, name string) Worker {
	if name = strings.TrimSpace(name); name == "" {
		name = code
	}
	return Worker{ID: "SS-" + code, Name: strings.TrimSuffix(name, "街道") + "街道监督员", Role: RoleSupervisor}
}

// Supervisor returns the supervisor (社区监督员) of a community.
func (m *Map) Supervisor(community string) (Worker, bool) {
	i, ok := m.supervisors[community]
	if !ok {
		return Worker{}, false
	}
	return m.workers[i], true
}

// GridsGeoJSON returns the grids as a GeoJSON FeatureCollection in WGS-84, each feature with
// the properties code, name, community, community_name, street, street_name, district and
// district_name. The caller owns the returned bytes.
func (m *Map) GridsGeoJSON() []byte { return slices.Clone(m.geojson) }

// GridsGeoJSONIn is GridsGeoJSON with coordinates in the named system ("", wgs84, gcj02,
// bd09); the collection's "coordsys" member says which. Wall screens on AMap or Tencent base
// maps ask for gcj02.
func (m *Map) GridsGeoJSONIn(coordsys string) ([]byte, error) {
	switch coordsys {
	case "", event.CoordWGS84:
		return m.GridsGeoJSON(), nil
	case event.CoordGCJ02:
		return slices.Clone(m.geojsonGCJ02), nil
	}
	if _, err := FromWGS84(coordsys, event.Point{}); err != nil {
		return nil, err
	}
	return gridsGeoJSON(m.grids, coordsys)
}

// Districts returns the districts (区), sorted by code.
func (m *Map) Districts() []Region { return slices.Clone(m.districts) }

// Streets returns the streets (街道), sorted by code; Parent is the district.
func (m *Map) Streets() []Region { return slices.Clone(m.streets) }

// Communities returns the communities (社区), sorted by code; Parent is the street.
func (m *Map) Communities() []Region { return slices.Clone(m.communities) }
