package incidents

import (
	"math"
	"time"

	"github.com/paulmach/orb"
	"github.com/paulmach/orb/geo"

	"github.com/urbanbrain/urbanbrain/event"
)

// Spatial-temporal correlation (一事多报 without a shared key). Open incidents with a location
// sit in buckets keyed by (category, cell, time slot): cells are squares of Correlation.CellMeters,
// slots are Correlation.Slot long, and an incident's slot is that of its latest report. A
// signal looks only at the buckets its radius and window can reach — a handful of map lookups
// whatever the number of open incidents — and joins the nearest candidate that passes the
// exact distance and time test.

const metersPerDegree = 111_320.0 // along a meridian, and along the equator

// cellKey is small and string-free so that a lookup hashes a few words: categories are
// interned as numbers.
type cellKey struct {
	category uint32
	x, y     int32
	slot     int32
}

type indexed struct {
	id   string
	key  cellKey
	loc  event.Point
	last time.Time // latest report
	at   int       // position in its bucket
}

type spatialIndex struct {
	cell       float64       // meters
	slot       time.Duration // > 0
	buckets    map[cellKey][]*indexed
	where      map[string]*indexed // incident id → its place
	categories map[string]uint32   // interned category codes, from 1
	probes     uint64              // bucket lookups so far (benchmarks report it per query)
}

func newSpatialIndex(c Correlation) *spatialIndex {
	return &spatialIndex{cell: c.CellMeters, slot: c.Slot, buckets: make(map[cellKey][]*indexed),
		where: make(map[string]*indexed), categories: make(map[string]uint32)}
}

func (ix *spatialIndex) category(code string, add bool) uint32 {
	n, ok := ix.categories[code]
	if !ok && add {
		n = uint32(len(ix.categories) + 1)
		ix.categories[code] = n
	}
	return n
}

func (ix *spatialIndex) row(lat float64) int32 {
	return int32(math.Floor(lat * metersPerDegree / ix.cell))
}

// col is the column of lon in row y: a row's columns are sized at the row's middle latitude,
// so a cell stays square-ish at any latitude.
func (ix *spatialIndex) col(lon float64, y int32) int32 {
	mid := (float64(y) + 0.5) * ix.cell / metersPerDegree
	return int32(math.Floor(lon * metersPerDegree * math.Cos(mid*math.Pi/180) / ix.cell))
}

func (ix *spatialIndex) slotOf(t time.Time) int32 {
	return int32(math.Floor(float64(t.UnixNano()) / float64(ix.slot)))
}

// put indexes (or moves) an open incident.
func (ix *spatialIndex) put(id, category string, loc event.Point, last time.Time) {
	y := ix.row(loc.Lat)
	key := cellKey{category: ix.category(category, true), x: ix.col(loc.Lon, y), y: y, slot: ix.slotOf(last)}
	if cur, ok := ix.where[id]; ok {
		if cur.key == key {
			cur.loc, cur.last = loc, last
			return
		}
		ix.remove(id)
	}
	b := ix.buckets[key]
	e := &indexed{id: id, key: key, loc: loc, last: last, at: len(b)}
	ix.where[id] = e
	ix.buckets[key] = append(b, e)
}

// remove drops an incident from the index, if it is there.
func (ix *spatialIndex) remove(id string) {
	cur, ok := ix.where[id]
	if !ok {
		return
	}
	delete(ix.where, id)
	b := ix.buckets[cur.key]
	last := len(b) - 1
	if cur.at != last {
		b[cur.at] = b[last]
		b[cur.at].at = cur.at
	}
	b[last] = nil
	if last == 0 {
		delete(ix.buckets, cur.key)
	} else {
		ix.buckets[cur.key] = b[:last]
	}
}

// nearest is the indexed incident of one of categories nearest to p within radius meters whose
// latest report is within window of t. Ties go to the smaller id (the older incident). It
// visits only the cells that the circle's bounding box touches, in the slots the window
// reaches: a handful of lookups, whatever the number of incidents.
func (ix *spatialIndex) nearest(categories []string, p event.Point, t time.Time, radius float64, window time.Duration) (string, float64, bool) {
	dlat := radius / metersPerDegree
	// Longitude degrees shrink towards the poles: size the box at its widest latitude.
	far := math.Min(math.Abs(p.Lat)+dlat, 89.9)
	dlon := radius / (metersPerDegree * math.Cos(far*math.Pi/180))
	y0, y1 := ix.row(p.Lat-dlat), ix.row(p.Lat+dlat)
	s0, s1 := ix.slotOf(t.Add(-window)), ix.slotOf(t.Add(window))
	var best *indexed
	bestD := math.Inf(1)
	for _, code := range categories {
		cat := ix.category(code, false)
		if cat == 0 {
			continue // nothing of this category was ever indexed
		}
		for y := y0; y <= y1; y++ {
			x0, x1 := ix.col(p.Lon-dlon, y), ix.col(p.Lon+dlon, y)
			for x := x0; x <= x1; x++ {
				for s := s0; s <= s1; s++ {
					ix.probes++
					for _, e := range ix.buckets[cellKey{category: cat, x: x, y: y, slot: s}] {
						if dt := e.last.Sub(t); dt > window || dt < -window {
							continue
						}
						d := distance(p, e.loc)
						if d <= radius && (d < bestD || (d == bestD && e.id < best.id)) {
							best, bestD = e, d
						}
					}
				}
			}
		}
	}
	if best == nil {
		return "", 0, false
	}
	return best.id, bestD, true
}

// distance in meters, equirectangular (orb/geo's fast distance): exact enough within a city
// and cheap.
func distance(a, b event.Point) float64 {
	return geo.Distance(orb.Point{a.Lon, a.Lat}, orb.Point{b.Lon, b.Lat})
}

// latestReport is the time of an incident's newest report.
func latestReport(inc *event.Incident) time.Time {
	var t time.Time
	for _, r := range inc.Reports {
		if r.At.After(t) {
			t = r.At
		}
	}
	if t.IsZero() {
		t = inc.CreatedAt
	}
	return t
}

// index keeps inc's place in the spatial index after a change.
func (sh *shard) index(inc *event.Incident) {
	if inc.Status.Open() && inc.Location != nil {
		sh.spatial.put(inc.ID, inc.Category, *inc.Location, latestReport(inc))
	} else {
		sh.spatial.remove(inc.ID)
	}
}

// nearby is the open incident a signal without a key match joins by place and time, and its
// distance in meters, or nil.
func (s *Service) nearby(sh *shard, sig event.Signal, at time.Time) (*event.Incident, float64) {
	loc := sig.Event.Location
	if loc == nil {
		return nil, 0
	}
	rule := s.cfg.Policy.Correlation.rule(sig.Category)
	if rule.RadiusMeters <= 0 {
		return nil, 0
	}
	cats := append([]string{sig.Category}, rule.Related...)
	id, d, ok := sh.spatial.nearest(cats, *loc, at, rule.RadiusMeters, rule.Window)
	if !ok {
		return nil, 0
	}
	return sh.incidents[id], d
}
