package storagetest

import (
	"errors"
	"testing"
	"time"

	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/storage"
)

func testKPIEventRates(t *testing.T, open func(t *testing.T) Store) {
	s := open(t)
	ctx := t.Context()
	a1 := area("d1", "s1", "c1", "g1")
	a2 := area("d2", "s3", "c3", "g4")
	must(t, s.HandleEvents(ctx, []event.Event{
		sensorEvent("r1", a1, "dev-1", at(10*time.Second)),
		sensorEvent("r2", a1, "dev-2", at(20*time.Second)),
		hotlineEvent("r3", a1, at(59*time.Second+999*time.Millisecond)),
		videoEvent("r4", a1, "cam-1", at(time.Minute+5*time.Second)),
		sensorEvent("r5", a2, "dev-3", at(2*time.Minute)),
		sensorEvent("r6", a1, "dev-1", at(3*time.Minute)), // outside the range
		sensorEvent("r0", a1, "dev-1", at(-time.Second)),  // outside the range
	}))
	must(t, s.HandleEvents(ctx, []event.Event{sensorEvent("r1", a1, "dev-1", at(10*time.Second))})) // replayed
	m := func(i int) time.Time { return at(time.Duration(i) * time.Minute) }
	tests := []struct {
		name string
		f    storage.KPIFilter
		want []storage.EventRate
	}{
		{"all", storage.KPIFilter{Since: at(0), Until: at(3 * time.Minute)}, []storage.EventRate{
			rate(m(0), event.TypeHotlineTicket, 1), rate(m(0), event.TypeSensorReading, 2),
			rate(m(1), event.TypeVideoDetection, 1), rate(m(2), event.TypeSensorReading, 1)}},
		{"district", storage.KPIFilter{District: "d1", Since: at(0), Until: at(3 * time.Minute)}, []storage.EventRate{
			rate(m(0), event.TypeHotlineTicket, 1), rate(m(0), event.TypeSensorReading, 2), rate(m(1), event.TypeVideoDetection, 1)}},
		{"grids", storage.KPIFilter{Grids: []string{"g4"}, Since: at(0), Until: at(3 * time.Minute)}, []storage.EventRate{
			rate(m(2), event.TypeSensorReading, 1)}},
		{"empty", storage.KPIFilter{Since: at(time.Hour), Until: at(2 * time.Hour)}, []storage.EventRate{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.EventRates(ctx, tc.f)
			must(t, err)
			mustEqual(t, "event rates", got, tc.want)
		})
	}
}

func rate(m time.Time, typ string, n int) storage.EventRate {
	return storage.EventRate{Minute: m, Type: typ, Count: n}
}

func cnt(key string, n int) storage.Count { return storage.Count{Key: key, Count: n} }

// kpiWorld stores the incidents of the KPI tests. Each step of a changelog is one minute after
// the previous one: dispatched at +2m, accepted +3m, in progress +4m, resolved +5m, closed +6m.
func kpiWorld(t *testing.T, s Store) {
	specs := []incidentSpec{
		{id: "INC-s1-ka", category: "flood", severity: event.SeverityRed, area: area("d1", "s1", "c1", "g1"), created: at(0), worker: "w1", steps: 7},
		{id: "INC-s1-kb", category: "flood", severity: event.SeverityRed, area: area("d1", "s1", "c1", "g2"), created: at(time.Hour), worker: "w2", steps: 3},
		{id: "INC-s3-kc", category: "garbage", severity: event.SeverityYellow, area: area("d2", "s3", "c3", "g4"), created: at(2 * time.Hour), worker: "w3", steps: 6},
		{id: "INC-s3-kd", category: "garbage", severity: event.SeverityBlue, area: area("d2", "s3", "c3", "g4"), created: at(3 * time.Hour), steps: 1},
		{id: "INC-s1-ke", category: "flood", severity: event.SeverityRed, area: area("d1", "s1", "c1", "g1"), created: at(20 * time.Hour), worker: "w1", steps: 7},
	}
	for _, sp := range specs {
		log := sp.changelog()
		must(t, s.HandleIncidentChanges(t.Context(), log))
		must(t, s.HandleIncidentChanges(t.Context(), log[:1])) // replays do not count twice
	}
}

func testKPIOpenIncidents(t *testing.T, open func(t *testing.T) Store) {
	s := open(t)
	kpiWorld(t, s)
	tests := []struct {
		name string
		f    storage.KPIFilter
		want storage.OpenIncidents
	}{
		{"city", storage.KPIFilter{}, storage.OpenIncidents{Total: 3,
			BySeverity: []storage.Count{cnt("blue", 1), cnt("red", 1), cnt("yellow", 1)},
			ByCategory: []storage.Count{cnt("garbage", 2), cnt("flood", 1)},
			ByDistrict: []storage.Count{cnt("d2", 2), cnt("d1", 1)}}},
		{"district", storage.KPIFilter{District: "d1"}, storage.OpenIncidents{Total: 1,
			BySeverity: []storage.Count{cnt("red", 1)}, ByCategory: []storage.Count{cnt("flood", 1)}, ByDistrict: []storage.Count{cnt("d1", 1)}}},
		{"grids", storage.KPIFilter{Grids: []string{"g4"}}, storage.OpenIncidents{Total: 2,
			BySeverity: []storage.Count{cnt("blue", 1), cnt("yellow", 1)}, ByCategory: []storage.Count{cnt("garbage", 2)}, ByDistrict: []storage.Count{cnt("d2", 2)}}},
		{"nothing", storage.KPIFilter{District: "d9"}, storage.OpenIncidents{Total: 0,
			BySeverity: []storage.Count{}, ByCategory: []storage.Count{}, ByDistrict: []storage.Count{}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.OpenIncidents(t.Context(), tc.f)
			must(t, err)
			mustEqual(t, "open incidents", got, tc.want)
		})
	}
}

func testKPIStageTimes(t *testing.T, open func(t *testing.T) Store) {
	s := open(t)
	kpiWorld(t, s)
	limits := storage.StageLimits{
		event.StageDispatch: {event.SeverityRed: 3 * time.Minute},
		event.StageSignFor:  {event.SeverityRed: 30 * time.Second, event.SeverityYellow: 2 * time.Minute},
	}
	ratio := func(r float64) *float64 { return &r }
	min := int64(time.Minute / time.Millisecond)
	tests := []struct {
		name string
		f    storage.KPIFilter
		want []storage.StageStat
	}{
		// In range: a (closed), b (dispatched), c (resolved), d (new); e was created later.
		{"city", storage.KPIFilter{Since: at(0), Until: at(10 * time.Hour)}, []storage.StageStat{
			{Stage: event.StageDispatch, Completed: 3, MeanMs: 2 * min, Limited: 2, OnTime: 2, OnTimeRate: ratio(1)},
			{Stage: event.StageSignFor, Completed: 2, MeanMs: min, Limited: 2, OnTime: 1, OnTimeRate: ratio(0.5)},
			{Stage: event.StageHandle, Completed: 2, MeanMs: 2 * min},
			{Stage: event.StageVerify, Completed: 1, MeanMs: min},
			{Stage: event.StageResolve, Completed: 2, MeanMs: 5 * min},
		}},
		{"district", storage.KPIFilter{District: "d1", Since: at(0), Until: at(10 * time.Hour)}, []storage.StageStat{
			{Stage: event.StageDispatch, Completed: 2, MeanMs: 2 * min, Limited: 2, OnTime: 2, OnTimeRate: ratio(1)},
			{Stage: event.StageSignFor, Completed: 1, MeanMs: min, Limited: 1, OnTime: 0, OnTimeRate: ratio(0)},
			{Stage: event.StageHandle, Completed: 1, MeanMs: 2 * min},
			{Stage: event.StageVerify, Completed: 1, MeanMs: min},
			{Stage: event.StageResolve, Completed: 1, MeanMs: 5 * min},
		}},
		{"nothing in range", storage.KPIFilter{Since: at(100 * time.Hour), Until: at(101 * time.Hour)}, []storage.StageStat{
			{Stage: event.StageDispatch}, {Stage: event.StageSignFor}, {Stage: event.StageHandle},
			{Stage: event.StageVerify}, {Stage: event.StageResolve},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.StageTimes(t.Context(), tc.f, limits)
			must(t, err)
			mustEqual(t, "stage times", got, tc.want)
		})
	}
}

func testKPIReportCounts(t *testing.T, open func(t *testing.T) Store) {
	s := open(t)
	kpiWorld(t, s)
	got, err := s.ReportCounts(t.Context(), storage.KPIFilter{Since: at(0), Until: at(10 * time.Hour)})
	must(t, err)
	mustEqual(t, "report counts", got, []storage.ReportCount{{Reports: 1, Incidents: 1}, {Reports: 2, Incidents: 3}})
	got, err = s.ReportCounts(t.Context(), storage.KPIFilter{District: "d2", Since: at(0), Until: at(24 * time.Hour)})
	must(t, err)
	mustEqual(t, "report counts in d2", got, []storage.ReportCount{{Reports: 1, Incidents: 1}, {Reports: 2, Incidents: 1}})
}

func testKPIInvalidFilters(t *testing.T, open func(t *testing.T) Store) {
	s := open(t)
	ctx := t.Context()
	bad := []storage.KPIFilter{
		{},                                   // no range
		{Since: at(time.Hour), Until: at(0)}, // backwards
		{Since: at(0), Until: at(time.Hour), Grids: []string{""}},
	}
	for _, f := range bad {
		if _, err := s.EventRates(ctx, f); !errors.Is(err, storage.ErrInvalidFilter) {
			t.Errorf("EventRates(%+v) error = %v, want ErrInvalidFilter", f, err)
		}
		if _, err := s.StageTimes(ctx, f, nil); !errors.Is(err, storage.ErrInvalidFilter) {
			t.Errorf("StageTimes(%+v) error = %v, want ErrInvalidFilter", f, err)
		}
		if _, err := s.ReportCounts(ctx, f); !errors.Is(err, storage.ErrInvalidFilter) {
			t.Errorf("ReportCounts(%+v) error = %v, want ErrInvalidFilter", f, err)
		}
	}
	if _, err := s.EventRates(ctx, storage.KPIFilter{Since: at(0), Until: at(storage.MaxKPIRange + time.Minute)}); !errors.Is(err, storage.ErrInvalidFilter) {
		t.Errorf("EventRates over more than %s: error = %v, want ErrInvalidFilter", storage.MaxKPIRange, err)
	}
	if _, err := s.OpenIncidents(ctx, storage.KPIFilter{Grids: []string{""}}); !errors.Is(err, storage.ErrInvalidFilter) {
		t.Errorf("OpenIncidents with an empty grid: error = %v, want ErrInvalidFilter", err)
	}
}
