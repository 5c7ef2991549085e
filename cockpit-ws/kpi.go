package cockpit

import (
	"cmp"
	"slices"
	"sync"
	"time"

	"github.com/urbanbrain/urbanbrain/event"
)

// KPIs are the leadership figures of one subscription's scope and filter. Events and sensors
// have no category or severity, so only the district and street of a filter narrow them.
type KPIs struct {
	// EventsPerSecond is the mean rate over the last RateWindowSeconds complete seconds, by
	// source: sensor, hotline, video, and total.
	EventsPerSecond   map[string]float64 `json:"events_per_second"`
	RateWindowSeconds int                `json:"rate_window_seconds"`
	// EventsSeries is the count of events in each of the last SeriesSeconds complete
	// seconds, by source, oldest first, for the wall screen's chart.
	EventsSeries EventsSeries `json:"events_series"`
	Open         OpenCounts   `json:"open"`
	// Stages are the durations of the stages completed within WindowSeconds, by stage
	// (dispatch 派遣, sign 签收, resolve 处置, verify 核查).
	Stages        map[string]StageKPI `json:"stages"`
	WindowSeconds int64               `json:"window_seconds"`
	Sensors       SensorKPI           `json:"sensors"`
	HotSpots      []HotSpot           `json:"hot_spots"`
}

// EventsSeries is a per-second event count by source.
type EventsSeries struct {
	Start   time.Time        `json:"start"` // the first second of the series
	Seconds int              `json:"seconds"`
	Counts  map[string][]int `json:"counts"` // by source
}

// OpenCounts are the open incidents, in total and by severity, category, district, status.
type OpenCounts struct {
	Total      int            `json:"total"`
	BySeverity map[string]int `json:"by_severity"`
	ByCategory map[string]int `json:"by_category"`
	ByDistrict map[string]int `json:"by_district"`
	ByStatus   map[string]int `json:"by_status"`
}

// StageKPI summarises one stage. OnTimeRate is the share completed within its limit (nil
// when none had a limit); MeanSeconds is the mean duration (0 when Count is 0).
type StageKPI struct {
	Count       int      `json:"count"`
	MeanSeconds float64  `json:"mean_seconds"`
	OnTimeRate  *float64 `json:"on_time_rate"`
}

// SensorKPI counts the sensors seen (Known) and those online: reported within the online
// window with a status other than offline or fault.
type SensorKPI struct {
	Online int `json:"online"`
	Known  int `json:"known"`
}

// HotSpot is a grid with many open incidents.
type HotSpot struct {
	Grid         string `json:"grid"`
	GridName     string `json:"grid_name,omitempty"`
	StreetName   string `json:"street_name,omitempty"`
	DistrictName string `json:"district_name,omitempty"`
	Open         int    `json:"open"`
	Red          int    `json:"red"` // of which red (most severe)
}

// Event sources, as KPIs name them.
const (
	SourceSensor  = "sensor"
	SourceHotline = "hotline"
	SourceVideo   = "video"
)

var sourceNames = [numSources]string{SourceSensor, SourceHotline, SourceVideo}

const (
	numSources    = 3
	seriesSeconds = 60 // the chart's span
	rateSeconds   = 5  // events_per_second averages this many complete seconds
	maxSensors    = 1 << 20
	sensorForget  = 24 * time.Hour // a sensor silent this long is no longer counted as known
)

func sourceOf(typ string) int {
	switch typ {
	case event.TypeSensorReading:
		return 0
	case event.TypeHotlineTicket:
		return 1
	case event.TypeVideoDetection:
		return 2
	}
	return -1
}

// place is the part of an area the KPIs scope by.
type place struct{ district, street, grid string }

func placeOf(a event.Area) place { return place{a.District, a.Street, a.Grid} }

func (p place) area() event.Area {
	return event.Area{District: p.district, Street: p.street, Grid: p.grid}
}

// eventStats counts events per second and place, and remembers when each sensor last
// reported. It has its own lock because it is fed at the event rate.
type eventStats struct {
	mu      sync.Mutex
	seconds [seriesSeconds + 1]secondCount // ring by unix second
	sensors map[string]*sensorSeen
}

type secondCount struct {
	sec    int64
	counts map[place]*[numSources]int
}

type sensorSeen struct {
	place  place
	last   time.Time
	status string
}

func newEventStats() *eventStats { return &eventStats{sensors: make(map[string]*sensorSeen)} }

// Seen is what the KPIs read of an event of city.events. The cockpit's route decodes only
// this: an event's readings, ticket text and detections are skipped (BenchmarkDecodeSeen).
type Seen struct {
	Type     string      `json:"type"`
	Time     time.Time   `json:"time"`
	Received time.Time   `json:"received"`
	Area     event.Area  `json:"area"`
	Sensor   *SeenSensor `json:"sensor,omitempty"`
}

// SeenSensor is what the KPIs read of a sensor reading.
type SeenSensor struct {
	DeviceID string `json:"device_id"`
	Status   string `json:"status,omitempty"`
}

// SeenOf is what the KPIs read of ev.
func SeenOf(ev event.Event) Seen {
	s := Seen{Type: ev.Type, Time: ev.Time, Received: ev.Received, Area: ev.Area}
	if ev.Sensor != nil {
		s.Sensor = &SeenSensor{DeviceID: ev.Sensor.DeviceID, Status: ev.Sensor.Status}
	}
	return s
}

func (e *eventStats) observe(ev Seen, now time.Time) {
	src := sourceOf(ev.Type)
	if src < 0 {
		return
	}
	at := ev.Received
	if at.IsZero() {
		at = ev.Time
	}
	if at.IsZero() || at.After(now) {
		at = now
	}
	p := placeOf(ev.Area)
	e.mu.Lock()
	defer e.mu.Unlock()
	if sec := at.Unix(); sec > now.Unix()-int64(len(e.seconds)) {
		b := &e.seconds[sec%int64(len(e.seconds))]
		if b.sec != sec {
			b.sec = sec
			if b.counts == nil {
				b.counts = make(map[place]*[numSources]int)
			}
			clear(b.counts)
		}
		n := b.counts[p]
		if n == nil {
			n = new([numSources]int)
			b.counts[p] = n
		}
		n[src]++
	}
	if s := ev.Sensor; s != nil && s.DeviceID != "" {
		d := e.sensors[s.DeviceID]
		if d == nil {
			if len(e.sensors) >= maxSensors {
				return
			}
			d = &sensorSeen{}
			e.sensors[s.DeviceID] = d
		}
		if !at.Before(d.last) {
			d.place, d.last, d.status = p, at, s.Status
		}
	}
}

// kpisFor fills the event and sensor KPIs for the places in, series ending before now.
func (e *eventStats) kpisFor(k *KPIs, in func(place) bool, now time.Time, onlineWindow time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	nowSec := now.Unix()
	first := nowSec - seriesSeconds
	k.EventsSeries = EventsSeries{Start: time.Unix(first, 0).UTC(), Seconds: seriesSeconds, Counts: map[string][]int{}}
	for _, name := range sourceNames {
		k.EventsSeries.Counts[name] = make([]int, seriesSeconds)
	}
	for i := range seriesSeconds {
		sec := first + int64(i)
		b := &e.seconds[sec%int64(len(e.seconds))]
		if b.sec != sec {
			continue
		}
		for p, n := range b.counts {
			if !in(p) {
				continue
			}
			for src, name := range sourceNames {
				k.EventsSeries.Counts[name][i] += n[src]
			}
		}
	}
	k.RateWindowSeconds = rateSeconds
	k.EventsPerSecond = map[string]float64{}
	total := 0
	for _, name := range sourceNames {
		sum := 0
		for _, v := range k.EventsSeries.Counts[name][seriesSeconds-rateSeconds:] {
			sum += v
		}
		k.EventsPerSecond[name] = float64(sum) / rateSeconds
		total += sum
	}
	k.EventsPerSecond["total"] = float64(total) / rateSeconds

	for id, d := range e.sensors {
		age := now.Sub(d.last)
		if age > sensorForget {
			delete(e.sensors, id)
			continue
		}
		if !in(d.place) {
			continue
		}
		k.Sensors.Known++
		if age <= onlineWindow && d.status != "offline" && d.status != "fault" {
			k.Sensors.Online++
		}
	}
}

// stageLog derives stage durations from the changelog: when an incident is dispatched,
// signed for, resolved and verified. It is guarded by the hub's lock.
type stageLog struct {
	limits  StageLimits
	stamps  map[string]*stageStamps // by open incident
	records []stageRecord           // ring of completed stages
	size    int
	next    int
}

type stageStamps struct{ dispatched, accepted, resolved time.Time }

type stageRecord struct {
	stage    string
	place    place
	category string
	severity string
	dur      time.Duration
	limited  bool // a limit applies
	onTime   bool
	at       time.Time
}

func newStageLog(size int, limits StageLimits) *stageLog {
	return &stageLog{limits: limits, stamps: make(map[string]*stageStamps), size: size}
}

// observe notes the transition from prev (nil if it was not open) to inc.
func (l *stageLog) observe(prev, inc *event.Incident, ch event.Change, now time.Time) {
	if !inc.Status.Open() {
		delete(l.stamps, inc.ID)
		return
	}
	if prev != nil && prev.Status == inc.Status {
		return
	}
	at := ch.At
	if at.IsZero() {
		at = inc.UpdatedAt
	}
	if at.IsZero() {
		at = now
	}
	st := l.stamps[inc.ID]
	if st == nil {
		st = &stageStamps{}
		l.stamps[inc.ID] = st
	}
	from := event.Status("")
	if prev != nil {
		from = prev.Status
	}
	switch {
	case inc.Status == event.StatusDispatched && from == event.StatusNew && !inc.CreatedAt.IsZero():
		l.record(event.StageDispatch, prev, inc, at.Sub(inc.CreatedAt), at)
	case inc.Status == event.StatusAccepted && from == event.StatusDispatched && !st.dispatched.IsZero():
		l.record(event.StageSignFor, prev, inc, at.Sub(st.dispatched), at)
	case inc.Status == event.StatusResolved && (from == event.StatusAccepted || from == event.StatusInProgress) && !st.accepted.IsZero():
		l.record(event.StageHandle, prev, inc, at.Sub(st.accepted), at)
	case inc.Status == event.StatusVerified && from == event.StatusResolved && !st.resolved.IsZero():
		l.record(event.StageVerify, prev, inc, at.Sub(st.resolved), at)
	}
	switch inc.Status {
	case event.StatusDispatched:
		st.dispatched = at
	case event.StatusAccepted:
		st.accepted = at
	case event.StatusResolved:
		st.resolved = at
	}
}

// record keeps a completed stage. Whether it was on time comes from the incident's own SLA
// clock of that stage when it has one, else from the configured limits.
func (l *stageLog) record(stage string, prev, inc *event.Incident, d time.Duration, at time.Time) {
	r := stageRecord{stage: stage, place: placeOf(inc.Area), category: inc.Category, severity: inc.Severity,
		dur: max(d, 0), at: at}
	if c := prev.Clock; c != nil && c.Stage == stage { // the stage's SLA clock (dispatch has none)
		r.limited = true
		r.onTime = !c.Breached && (!c.PausedAt.IsZero() || !at.After(c.DueAt))
	} else if limit, ok := l.limits[stage][inc.Severity]; ok {
		r.limited = true
		r.onTime = d <= limit
	}
	if len(l.records) < l.size {
		l.records = append(l.records, r)
		return
	}
	l.records[l.next] = r
	l.next = (l.next + 1) % l.size
}

// kpiWork is one subscription's KPIs being computed.
type kpiWork struct {
	s      *subscription
	k      *KPIs
	grids  map[string]*HotSpot
	stages map[string]*stageAcc
	seen   map[place]bool // CanSee and the filter, once per place
}

type stageAcc struct {
	n, limited, onTime int
	sum                time.Duration
}

func (w *kpiWork) inScope(p place) bool {
	v, ok := w.seen[p]
	if !ok {
		v = w.s.view.claims.CanSee(p.area()) && w.s.filter.matchArea(p.area())
		w.seen[p] = v
	}
	return v
}

// computeKPIsLocked computes the KPIs of each subscription's scope and filter, in one pass
// over the open incidents and one over the stage log for all of them: with many incidents a
// pass costs memory traffic more than matching.
func (h *Hub) computeKPIsLocked(subs []*subscription, now time.Time) []*KPIs {
	works := make([]*kpiWork, len(subs))
	for i, s := range subs {
		w := &kpiWork{s: s, grids: map[string]*HotSpot{}, seen: map[place]bool{}, k: &KPIs{
			Open: OpenCounts{BySeverity: map[string]int{}, ByCategory: map[string]int{}, ByDistrict: map[string]int{},
				ByStatus: map[string]int{}},
			Stages:        map[string]StageKPI{},
			WindowSeconds: int64(h.cfg.KPIWindow / time.Second),
			HotSpots:      []HotSpot{},
		}, stages: map[string]*stageAcc{event.StageDispatch: {}, event.StageSignFor: {}, event.StageHandle: {}, event.StageVerify: {}}}
		h.events.kpisFor(w.k, w.inScope, now, h.cfg.SensorOnlineWindow)
		works[i] = w
	}

	for _, inc := range h.open {
		for _, w := range works {
			if !w.s.match(inc) {
				continue
			}
			o := &w.k.Open
			o.Total++
			o.BySeverity[inc.Severity]++
			o.ByCategory[inc.Category]++
			o.ByDistrict[inc.Area.District]++
			o.ByStatus[string(inc.Status)]++
			if inc.Area.Grid == "" {
				continue
			}
			g := w.grids[inc.Area.Grid]
			if g == nil {
				a := inc.Area
				g = &HotSpot{Grid: a.Grid, GridName: a.GridName, StreetName: a.StreetName, DistrictName: a.DistrictName}
				w.grids[a.Grid] = g
			}
			g.Open++
			if inc.Severity == event.SeverityRed {
				g.Red++
			}
		}
	}

	since := now.Add(-h.cfg.KPIWindow)
	for _, r := range h.stages.records {
		if r.at.Before(since) {
			continue
		}
		for _, w := range works {
			if !w.inScope(r.place) || !in(w.s.filter.Category, r.category) || !in(w.s.filter.Severity, r.severity) {
				continue
			}
			a := w.stages[r.stage]
			a.n++
			a.sum += r.dur
			if r.limited {
				a.limited++
				if r.onTime {
					a.onTime++
				}
			}
		}
	}

	out := make([]*KPIs, len(works))
	for i, w := range works {
		k := w.k
		for _, g := range w.grids {
			k.HotSpots = append(k.HotSpots, *g)
		}
		slices.SortFunc(k.HotSpots, func(a, b HotSpot) int {
			return cmp.Or(cmp.Compare(b.Open, a.Open), cmp.Compare(b.Red, a.Red), cmp.Compare(a.Grid, b.Grid))
		})
		k.HotSpots = k.HotSpots[:min(len(k.HotSpots), h.cfg.HotSpots)]
		for stage, a := range w.stages {
			kp := StageKPI{Count: a.n}
			if a.n > 0 {
				kp.MeanSeconds = a.sum.Seconds() / float64(a.n)
			}
			if a.limited > 0 {
				rate := float64(a.onTime) / float64(a.limited)
				kp.OnTimeRate = &rate
			}
			k.Stages[stage] = kp
		}
		out[i] = k
	}
	return out
}
