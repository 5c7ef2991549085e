package incidents

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/urbanbrain/urbanbrain/event"
)

var benchT0 = time.Date(2025, 6, 3, 2, 0, 0, 0, time.UTC)

// The index answers as a scan of every open incident would, whatever the layout.
func TestSpatialIndexAgreesWithAScan(t *testing.T) {
	t.Parallel()
	pol := DefaultPolicy()
	ix := newSpatialIndex(pol.Correlation)
	r := rand.New(rand.NewPCG(1, 2))
	type entry struct {
		cat  string
		loc  event.Point
		last time.Time
	}
	all := map[string]entry{}
	cats := []string{"0104", "0202", "0301"}
	for i := range 3000 {
		id := fmt.Sprintf("i%05d", i)
		e := entry{cats[r.IntN(3)], event.Point{Lon: 102.7 + r.Float64()*0.05, Lat: 25.0 + r.Float64()*0.05},
			benchT0.Add(time.Duration(r.IntN(6*3600)) * time.Second)}
		all[id] = e
		ix.put(id, e.cat, e.loc, e.last)
	}
	for i := range 1000 { // move some, remove some
		id := fmt.Sprintf("i%05d", r.IntN(3000))
		if i%3 == 0 {
			ix.remove(id)
			delete(all, id)
			continue
		}
		if e, ok := all[id]; ok {
			e.last = e.last.Add(time.Duration(r.IntN(3600)) * time.Second)
			all[id] = e
			ix.put(id, e.cat, e.loc, e.last)
		}
	}
	for range 2000 {
		p := event.Point{Lon: 102.7 + r.Float64()*0.05, Lat: 25.0 + r.Float64()*0.05}
		at := benchT0.Add(time.Duration(r.IntN(8*3600)) * time.Second)
		radius, window := 300.0, 2*time.Hour
		want, wantD := "", 1e18
		for id, e := range all {
			if e.cat != "0104" && e.cat != "0202" {
				continue
			}
			if dt := e.last.Sub(at); dt > window || dt < -window {
				continue
			}
			if d := distance(p, e.loc); d <= radius && (d < wantD || (d == wantD && id < want)) {
				want, wantD = id, d
			}
		}
		got, gotD, _ := ix.nearest([]string{"0104", "0202"}, p, at, radius, window)
		if got != want || (got != "" && gotD != wantD) {
			t.Fatalf("nearest(%v, %s) = %q, a scan says %q", p, at, got, want)
		}
	}
}

func TestDefaultPolicyParsesAndRelatesFloodCategories(t *testing.T) {
	t.Parallel()
	p := DefaultPolicy()
	if err := p.Validate(); err != nil || p.Correlation.Categories["0202"].Related == nil {
		t.Fatalf("default policy: %v; 0202 related %v (want 0104, made symmetric)", err, p.Correlation.Categories["0202"].Related)
	}
	if d, wh := p.SLA.limit(event.StageHandle, "0301", event.SeverityYellow); d != 24*time.Hour || !wh {
		t.Errorf("0301 yellow handle limit %s working-hours %v, want 24h of working time", d, wh)
	}
	if d, wh := p.SLA.limit(event.StageHandle, "0103", event.SeverityRed); d != 2*time.Hour || wh {
		t.Errorf("gas red handle limit %s working-hours %v, want 2h around the clock", d, wh)
	}
	if d, _ := p.SLA.limit(event.StageHandle, "0104", event.SeverityBlue); d != 24*time.Hour {
		t.Errorf("an emergency's blue limit %s, want capped at the same day (24h)", d)
	}
	_, err := ParsePolicy([]byte(`
correlation: {cell_meters: 1, slot: 1s, categories: {"x": {radius_meters: 50}}}
sla:
  warn_at: 2
  limits: {sign: {red: 1h}, handle: {purple: -1h}}
  working_hours: {start: "18:00", end: "09:00", days: [someday], holidays: [tomorrow]}
`))
	for _, want := range []string{"cell_meters", "slot", "needs a window", "warn_at", `unknown stage "sign"`,
		`unknown severity "purple"`, "must be positive", "end 09:00 must be after", "someday", "tomorrow"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParsePolicy error %v, want it to mention %q", err, want)
		}
	}
	if _, err := ParsePolicy([]byte("sla: {limitz: {}}")); err == nil {
		t.Error("an unknown key was accepted")
	}
}

func TestWorkingCalendar(t *testing.T) {
	t.Parallel()
	cal, err := WorkingHours{Start: "08:30", End: "17:30", Holidays: []string{"2025-06-04"}}.compile()
	if err != nil {
		t.Fatal(err)
	}
	at := func(day, h, m int) time.Time { return time.Date(2025, 6, day, h, m, 0, 0, shanghai) }
	for _, tc := range []struct {
		from time.Time
		d    time.Duration
		want time.Time
	}{
		{at(3, 10, 0), 2 * time.Hour, at(3, 12, 0)},   // Tuesday, inside
		{at(3, 17, 0), time.Hour, at(5, 9, 0)},        // over a holiday Wednesday
		{at(3, 20, 0), time.Hour, at(5, 9, 30)},       // from the evening
		{at(6, 17, 0), 2 * time.Hour, at(9, 10, 0)},   // Friday over the weekend
		{at(7, 12, 0), 30 * time.Minute, at(9, 9, 0)}, // from a Saturday
		{at(3, 8, 30), 27 * time.Hour, at(6, 17, 30)}, // three working days: Tue, Thu, Fri
	} {
		if got := cal.add(tc.from, tc.d); !got.Equal(tc.want) {
			t.Errorf("add(%s, %s) = %s, want %s", tc.from, tc.d, got.In(shanghai), tc.want)
		}
		if got := cal.between(tc.from, tc.want); got != tc.d {
			t.Errorf("between(%s, %s) = %s, want %s", tc.from, tc.want, got, tc.d)
		}
	}
}

// spread is n open incidents of 16 categories over a city of side km, their latest reports
// spread over the last three days: the open backlog of a large city.
func spread(n int, side float64, r *rand.Rand) []*event.Incident {
	out := make([]*event.Incident, n)
	deg := side * 1000 / metersPerDegree
	for i := range out {
		loc := event.Point{Lon: 102.5 + r.Float64()*deg, Lat: 25.0 + r.Float64()*deg}
		at := benchT0.Add(-time.Duration(r.IntN(72*3600)) * time.Second)
		out[i] = &event.Incident{
			ID: fmt.Sprintf("INC-990101001-%07d", i), Version: 1, Status: event.StatusDispatched,
			Category: fmt.Sprintf("0%d0%d", 1+i%4, 1+(i/4)%4), Severity: event.SeverityYellow,
			CorrelationKey: fmt.Sprintf("k-%d", i), Area: event.Area{Street: "990101001"},
			Location: &loc, Reports: []event.Report{{EventID: fmt.Sprintf("e-%d", i), At: at}}, ReportCount: 1,
			CreatedAt: at, UpdatedAt: at,
		}
	}
	return out
}

// BenchmarkCorrelate is the spatial-temporal lookup a signal without a key match makes, with
// 1,000 to 100,000 open incidents in one street's shard (the worst case: one partition owns
// them all), spread over a 30 km city and three days. "index" is the bucket map; "scan" is
// the linear scan it replaces, for scale.
func BenchmarkCorrelate(b *testing.B) {
	for _, n := range []int{1_000, 10_000, 100_000} {
		r := rand.New(rand.NewPCG(7, 8))
		incs := spread(n, 30, r)
		pol := DefaultPolicy()
		ix := newSpatialIndex(pol.Correlation)
		for _, inc := range incs {
			ix.put(inc.ID, inc.Category, *inc.Location, latestReport(inc))
		}
		queries := make([]event.Point, 1024)
		deg := 30.0 * 1000 / metersPerDegree
		for i := range queries {
			queries[i] = event.Point{Lon: 102.5 + r.Float64()*deg, Lat: 25.0 + r.Float64()*deg}
		}
		cats := []string{"0104", "0202"}
		b.Run(fmt.Sprintf("index/open=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			before := ix.probes
			for b.Loop() {
				ix.nearest(cats, queries[i%len(queries)], benchT0, 300, 2*time.Hour)
				i++
			}
			b.ReportMetric(float64(ix.probes-before)/float64(i), "lookups/op")
		})
		b.Run(fmt.Sprintf("scan/open=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				p := queries[i%len(queries)]
				best, bestD := "", 1e18
				for _, inc := range incs {
					if inc.Category != "0104" && inc.Category != "0202" {
						continue
					}
					if dt := latestReport(inc).Sub(benchT0); dt > 2*time.Hour || dt < -2*time.Hour {
						continue
					}
					if d := distance(p, *inc.Location); d <= 300 && d < bestD {
						best, bestD = inc.ID, d
					}
				}
				_ = best
				i++
			}
		})
	}
}

// BenchmarkHandleSignalWithOpen is a signal's whole path through the service (correlation and
// the changelog record returned, not its encoding, which is the stage runner's) into a service holding 1,000 to 100,000 open incidents; each signal opens a new incident
// (no key or place matches), the case that looks at the most buckets.
func BenchmarkHandleSignalWithOpen(b *testing.B) {
	for _, n := range []int{1_000, 100_000} {
		b.Run(fmt.Sprintf("open=%d", n), func(b *testing.B) {
			r := rand.New(rand.NewPCG(9, 10))
			svc, err := New(Config{Now: func() time.Time { return benchT0 }, Policy: DefaultPolicy()}, nil)
			if err != nil {
				b.Fatal(err)
			}
			for _, inc := range spread(n, 30, r) {
				svc.Restore(event.IncidentChange{Incident: *inc, Change: event.Change{Action: ActionOpen, To: inc.Status, At: inc.CreatedAt}})
			}
			deg := 30.0 * 1000 / metersPerDegree
			ctx := context.Background()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				p := event.Point{Lon: 102.5 + r.Float64()*deg, Lat: 25.0 + r.Float64()*deg}
				sig := event.Signal{ID: fmt.Sprintf("s-%d", i), RuleID: "r", Category: "0202", Severity: event.SeverityOrange,
					CorrelationKey: fmt.Sprintf("new-%d", i), At: benchT0,
					Event: event.Event{ID: fmt.Sprintf("ev-%d", i), Time: benchT0, Location: &p, Area: event.Area{Street: "990101001"}}}
				if _, err := svc.HandleSignal(ctx, sig); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// BenchmarkRestoreIncidents rebuilds the service from a changelog of 100,000 incidents (five
// changes each: opened, a second report, dispatched with its SLA clock, accepted, and for one
// in two resolved), the start-up cost of a large city.
func BenchmarkRestoreIncidents(b *testing.B) {
	const n = 100_000
	r := rand.New(rand.NewPCG(11, 12))
	var changes []event.IncidentChange
	svc0, _ := New(Config{Policy: DefaultPolicy()}, nil)
	for _, inc := range spread(n, 30, r) {
		step := func(action string, to event.Status, f func()) {
			inc.Version++
			from := inc.Status
			inc.Status = to
			if f != nil {
				f()
			}
			changes = append(changes, event.IncidentChange{Incident: *inc, Change: event.Change{Action: action, From: from, To: to, At: inc.UpdatedAt,
				CommandID: fmt.Sprintf("%s/%d", inc.ID, inc.Version)}})
		}
		inc.Version, inc.Status = 0, event.StatusNew
		step(ActionOpen, event.StatusNew, nil)
		step(ActionLink, event.StatusNew, func() {
			inc.Reports = append(inc.Reports[:1:1], event.Report{EventID: inc.ID + "-2", SignalID: inc.ID + "-s2", At: inc.CreatedAt})
			inc.ReportCount = 2
		})
		step(event.ActionDispatch, event.StatusDispatched, func() {
			inc.Assignment = event.Assignment{WorkerID: "W-1"}
			inc.Clock = svc0.startClock(inc, event.StageSignFor, inc.CreatedAt)
		})
		step(event.ActionAccept, event.StatusAccepted, func() { inc.Clock = svc0.startClock(inc, event.StageHandle, inc.CreatedAt) })
		if r.IntN(2) == 0 {
			step(event.ActionResolve, event.StatusResolved, func() { inc.Clock = svc0.startClock(inc, event.StageVerify, inc.CreatedAt) })
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		svc, err := New(Config{Policy: DefaultPolicy()}, nil)
		if err != nil {
			b.Fatal(err)
		}
		for _, c := range changes {
			svc.Restore(c)
		}
	}
	b.ReportMetric(float64(len(changes)), "changes")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(changes)), "ns/change")
}
