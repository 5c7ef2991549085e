package simulate

import (
	"math"
	"time"

	"github.com/urbanbrain/urbanbrain/city"
	"github.com/urbanbrain/urbanbrain/event"
)

// Video algorithms, how often each fires, the category of what it sees, and how many
// objects a detection typically counts.
var algorithms = []struct {
	name       string
	weight     float64
	category   string
	minN, maxN int
}{
	{"illegal_parking", 0.30, "0201", 1, 4},
	{"garbage_overflow", 0.20, "0301", 1, 3},
	{"street_vending", 0.20, "0302", 1, 5},
	{"crowding", 0.15, "0502", 30, 300},
	{"waterlogging", 0.10, "0202", 1, 1},
	{"smoke_fire", 0.05, "0501", 1, 2},
}

func algorithmFor(category string) int {
	for i, a := range algorithms {
		if a.category == category {
			return i
		}
	}
	return -1
}

// detection produces an AI camera detection, fresh or of an existing problem. Detections of
// a known problem are reported at the problem's position (video platforms geolocate the
// target, not the pole), by the camera that watches that grid.
func (s *Simulator) detection(now time.Time) event.VideoDetection {
	rng := s.rng
	var (
		cam  *camera
		algo int
		at   event.Point
		conf float64
	)
	p := s.takeProblem(s.cfg.RepeatChance, func(p *problem) bool {
		return algorithmFor(p.category) >= 0 && len(s.camerasByGrid[p.grid.Code]) > 0
	})
	if p != nil {
		algo = algorithmFor(p.category)
		cam = pick(rng, s.camerasByGrid[p.grid.Code])
		at = near(rng, p.at, 20)
		conf = 0.75 + 0.24*rng.Float64()
	} else {
		total := 0.0
		for _, a := range algorithms {
			total += a.weight
		}
		r := rng.Float64() * total
		for algo = 0; algo < len(algorithms)-1; algo++ {
			if r -= algorithms[algo].weight; r < 0 {
				break
			}
		}
		cam = pick(rng, s.cameras)
		at = near(rng, cam.at, 40)
		conf = 0.5 + 0.49*rng.Float64()
	}
	a := algorithms[algo]
	w, h := 40+rng.Float64()*400, 40+rng.Float64()*300
	if a.name == "crowding" {
		w, h = 600+rng.Float64()*900, 300+rng.Float64()*500
	}
	x, y := rng.Float64()*(1920-w), rng.Float64()*(1080-h)
	d := event.VideoDetection{
		CameraID:    cam.id,
		Algorithm:   a.name,
		Confidence:  math.Round(conf*1000) / 1000,
		BBox:        []float64{math.Round(x), math.Round(y), math.Round(w), math.Round(h)},
		SnapshotURL: "https://vss.yunchuan.example/snapshots/" + cam.id + "/" + now.In(cst).Format("20060102T150405.000") + ".jpg",
		ObjectCount: a.minN + rng.IntN(a.maxN-a.minN+1),
		Lat:         ptr(at.Lat),
		Lon:         ptr(at.Lon),
		CoordSys:    event.CoordWGS84,
	}
	if p == nil && conf > 0.8 && rng.Float64() < s.cfg.RepeatChance {
		s.addProblem(problem{category: a.category, at: at, grid: cam.grid, left: 1 + rng.IntN(4), until: now.Add(20 * time.Minute)})
	}
	return d
}

// problem is a real-world problem more than one source may report (一事多报).
type problem struct {
	category string
	grid     city.Grid
	at       event.Point
	left     int       // follow-up reports still to come
	until    time.Time // forgotten after this
}

const maxProblems = 64

func (s *Simulator) addProblem(p problem) {
	if len(s.problems) >= maxProblems {
		s.problems = s.problems[1:]
	}
	s.problems = append(s.problems, &p)
}

// takeProblem returns, with probability chance, a live problem that fits and counts the
// report against it; nil means "report something new".
func (s *Simulator) takeProblem(chance float64, fits func(*problem) bool) *problem {
	now := s.cfg.Now()
	live := s.problems[:0]
	for _, p := range s.problems {
		if p.left > 0 && now.Before(p.until) {
			live = append(live, p)
		}
	}
	clear(s.problems[len(live):])
	s.problems = live
	if len(live) == 0 || s.rng.Float64() >= chance {
		return nil
	}
	var cands []*problem
	for _, p := range live {
		if fits(p) {
			cands = append(cands, p)
		}
	}
	if len(cands) == 0 {
		return nil
	}
	p := pick(s.rng, cands)
	p.left--
	return p
}
