package simulate

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/paulmach/orb"
	"github.com/paulmach/orb/geo"
	"github.com/paulmach/orb/planar"

	"github.com/urbanbrain/urbanbrain/city"
	"github.com/urbanbrain/urbanbrain/event"
)

// Sensor kinds and how common each is in the fleet.
var sensorKinds = []struct {
	kind   string
	prefix string
	weight float64
	// battery-powered devices report their battery; mains-powered ones do not.
	battery bool
	// category of the real-world problem an excursion stands for (for follow-up reports).
	category string
}{
	{"water_level", "WL", 0.15, true, "0202"},
	{"gas", "GAS", 0.12, true, "0103"},
	{"manhole", "MH", 0.25, true, "0101"},
	{"street_lamp", "SL", 0.25, false, "0102"},
	{"noise", "NS", 0.08, false, "0401"},
	{"air", "AQ", 0.08, false, "0402"},
	{"bridge", "BR", 0.07, false, "0203"},
}

type device struct {
	id       string
	kind     int // index into sensorKinds
	grid     city.Grid
	at       event.Point
	base     float64   // the device's normal level of its main metric
	battery  float64   // percent; 0 for mains-powered
	alarm    time.Time // in excursion until then
	silent   time.Time // not reporting until then
	open     bool      // manhole excursion: cover open, not just tilted
	surge    bool      // street lamp fault: over-current rather than dark
	alarmLvl float64   // level of the main metric during the excursion
}

type camera struct {
	id   string
	grid city.Grid
	at   event.Point
}

// pointIn returns a uniformly random point inside the grid's polygon.
func pointIn(rng *rand.Rand, g city.Grid) event.Point {
	b := g.Polygon.Bound()
	for range 100 {
		p := orb.Point{b.Min[0] + rng.Float64()*(b.Max[0]-b.Min[0]), b.Min[1] + rng.Float64()*(b.Max[1]-b.Min[1])}
		if planar.PolygonContains(g.Polygon, p) {
			return event.Point{Lon: round7(p[0]), Lat: round7(p[1])}
		}
	}
	return g.Centroid
}

// near returns a point within about r metres of p.
func near(rng *rand.Rand, p event.Point, r float64) event.Point {
	q := geo.PointAtBearingAndDistance(orb.Point{p.Lon, p.Lat}, rng.Float64()*360, r*math.Sqrt(rng.Float64()))
	return event.Point{Lon: round7(q[0]), Lat: round7(q[1])}
}

func round7(v float64) float64 { return math.Round(v*1e7) / 1e7 }

func placeSensors(rng *rand.Rand, grids []city.Grid, n int) []*device {
	total := 0.0
	for _, k := range sensorKinds {
		total += k.weight
	}
	out := make([]*device, 0, n)
	for i := range n {
		x, kind := rng.Float64()*total, 0
		for kind < len(sensorKinds)-1 && x >= sensorKinds[kind].weight {
			x -= sensorKinds[kind].weight
			kind++
		}
		k := sensorKinds[kind]
		g := grids[rng.IntN(len(grids))]
		d := &device{
			id:   fmt.Sprintf("YC-%s-%05d", k.prefix, i+1),
			kind: kind,
			grid: g,
			at:   pointIn(rng, g),
		}
		switch k.kind {
		case "water_level":
			d.base = 25 + rng.Float64()*35
		case "gas":
			d.base = 1 + rng.Float64()*6
		case "air":
			d.base = 15 + rng.Float64()*40
		case "bridge":
			d.base = 100 + rng.Float64()*150
		case "noise":
			d.base = rng.Float64() * 6 // a quieter or busier spot
		}
		if k.battery {
			d.battery = 30 + rng.Float64()*70
			if rng.IntN(40) == 0 {
				d.battery = 5 + rng.Float64()*12 // a few are due for a battery change
			}
		}
		out = append(out, d)
	}
	return out
}

func placeCameras(rng *rand.Rand, grids []city.Grid, n int) []*camera {
	out := make([]*camera, 0, n)
	for i := range n {
		g := grids[i%len(grids)] // spread evenly: every grid gets one before any gets two
		out = append(out, &camera{id: fmt.Sprintf("YC-CAM-%05d", i+1), grid: g, at: pointIn(rng, g)})
	}
	return out
}

// reading produces the device's next reading at now, starting or ending an excursion.
func (s *Simulator) reading(d *device, now time.Time) event.SensorReading {
	rng := s.rng
	k := sensorKinds[d.kind]
	if now.After(d.alarm) && rng.Float64() < s.cfg.AlarmChance {
		d.alarm = now.Add(2*time.Minute + time.Duration(rng.Int64N(int64(8*time.Minute))))
		d.open = rng.IntN(2) == 0
		d.surge = rng.IntN(3) == 0
		d.alarmLvl = rng.Float64()
		s.addProblem(problem{category: k.category, at: d.at, grid: d.grid, left: 1 + rng.IntN(4), until: d.alarm.Add(20 * time.Minute)})
	}
	alarm := now.Before(d.alarm)
	hour := now.In(cst).Hour()
	night := hour >= 18 || hour < 6
	m := map[string]float64{}
	status := "ok"
	if alarm {
		status = "alarm"
	}
	noise := rng.NormFloat64
	switch k.kind {
	case "water_level":
		m["level_cm"] = d.base + 3*noise()
		if alarm {
			m["level_cm"] = 120 + 140*d.alarmLvl + 5*noise()
		}
	case "gas":
		m["ppm"] = math.Max(0, d.base+2*noise())
		if alarm {
			m["ppm"] = 75 + 425*d.alarmLvl + 4*noise()
		}
	case "manhole":
		m["tilt_deg"], m["open"] = math.Min(3, math.Abs(noise())), 0
		if alarm {
			m["tilt_deg"] = 12 + 48*d.alarmLvl
			if d.open {
				m["open"] = 1
			}
		}
	case "street_lamp":
		m["current_a"] = 0.02 * rng.Float64()
		if night {
			m["current_a"] = 0.8 + 0.5*rng.Float64()
		}
		if alarm {
			status = "fault"
			m["current_a"] = 0
			if d.surge {
				m["current_a"] = 3 + 3*rng.Float64()
			}
		}
	case "noise":
		db := 48 + d.base + 4*noise()
		if night {
			db = 38 + d.base + 3*noise()
		}
		m["db"] = db
		if alarm {
			m["db"] = 75 + 20*d.alarmLvl + 2*noise()
		}
	case "air":
		m["pm25"] = math.Max(3, d.base+6*noise())
		if alarm {
			m["pm25"] = 170 + 150*d.alarmLvl + 4*noise()
		}
	case "bridge":
		m["strain"] = d.base + 15*noise()
		if alarm {
			m["strain"] = 550 + 350*d.alarmLvl + 20*noise()
		}
	}
	for name, v := range m {
		m[name] = math.Round(v*100) / 100
	}
	r := event.SensorReading{
		DeviceID: d.id,
		Kind:     k.kind,
		Metrics:  m,
		Lat:      ptr(d.at.Lat),
		Lon:      ptr(d.at.Lon),
		CoordSys: event.CoordWGS84,
		Status:   status,
	}
	if d.battery > 0 {
		d.battery = math.Max(1, d.battery-0.001)
		r.Battery = ptr(math.Round(d.battery*10) / 10)
	}
	return r
}

func ptr[T any](v T) *T { return &v }
