package storagetest

import (
	"errors"
	"testing"
	"time"

	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/storage"
)

// breakdownWorld stores the incidents of the breakdown tests: a (closed), b (dispatched) and
// c (new) of one category in grid g1, d (resolved) in g4, and e and f outside the day the
// tests ask about. Each names its opening rule, and its first report says where it came from.
func breakdownWorld(t *testing.T, s Store) {
	specs := []struct {
		incidentSpec
		rule, source string
	}{
		{incidentSpec{id: "INC-s1-ra", category: "flood", severity: event.SeverityRed, area: area("d1", "s1", "c1", "g1"), created: at(0), worker: "w1", steps: 7}, "rule-flood", event.TypeSensorReading},
		{incidentSpec{id: "INC-s1-rb", category: "flood", severity: event.SeverityRed, area: area("d1", "s1", "c1", "g1"), created: at(time.Hour), worker: "w1", steps: 3}, "rule-flood", event.TypeHotlineTicket},
		{incidentSpec{id: "INC-s1-rc", category: "flood", severity: event.SeverityRed, area: area("d1", "s1", "c1", "g1"), created: at(2 * time.Hour), steps: 1}, "rule-flood", event.TypeVideoDetection},
		{incidentSpec{id: "INC-s3-rd", category: "garbage", severity: event.SeverityYellow, area: area("d2", "s3", "c3", "g4"), created: at(3 * time.Hour), worker: "w3", steps: 6}, "rule-garbage", event.TypeHotlineTicket},
		{incidentSpec{id: "INC-s3-re", category: "garbage", severity: event.SeverityBlue, area: area("d2", "s3", "c3", "g4"), created: at(30 * time.Hour), steps: 2}, "rule-garbage", event.TypeHotlineTicket},
		{incidentSpec{id: "INC-s3-rf", category: "garbage", severity: event.SeverityBlue, area: area("d2", "s3", "c3", "g4"), created: at(-time.Hour), steps: 2}, "rule-garbage", event.TypeHotlineTicket},
	}
	for _, sp := range specs {
		log := sp.changelog()
		for i := range log {
			log[i].Incident.RuleID = sp.rule
			log[i].Incident.Reports[0].EventType = sp.source // versions share the slice: same value
		}
		must(t, s.HandleIncidentChanges(t.Context(), log))
		must(t, s.HandleIncidentChanges(t.Context(), log[:1])) // replays do not count twice
	}
}

func testIncidentBreakdown(t *testing.T, open func(t *testing.T) Store) {
	s := open(t)
	breakdownWorld(t, s)
	day := storage.KPIFilter{Since: at(0), Until: at(24 * time.Hour)}
	// Dispatch (2 minutes after creation) is late for red; sign-for (1 minute) for yellow.
	opts := storage.BreakdownOptions{Limits: storage.StageLimits{
		event.StageDispatch: {event.SeverityRed: time.Minute},
		event.StageSignFor:  {event.SeverityYellow: 30 * time.Second},
	}}
	reported := func(id, category, district, grid string) storage.ReportedIncident {
		return storage.ReportedIncident{ID: id, Title: category + " at 街道" + map[string]string{"d1": "s1", "d2": "s3"}[district],
			Category: category, District: district, Grid: grid, Reports: 2}
	}
	tests := []struct {
		name string
		f    storage.KPIFilter
		o    storage.BreakdownOptions
		want storage.Breakdown
	}{
		{"city", day, opts, storage.Breakdown{
			Total:      4,
			BySource:   []storage.Count{cnt(event.TypeHotlineTicket, 2), cnt(event.TypeSensorReading, 1), cnt(event.TypeVideoDetection, 1)},
			ByCategory: []storage.Count{cnt("flood", 3), cnt("garbage", 1)},
			ByDistrict: []storage.Count{cnt("d1", 3), cnt("d2", 1)},
			Grids:      []storage.GridCount{{Grid: "g1", District: "d1", Incidents: 3, Overdue: 2}, {Grid: "g4", District: "d2", Incidents: 1, Overdue: 1}},
			Repeats:    []storage.RepeatCount{{Grid: "g1", Category: "flood", Incidents: 3}},
			Reported: []storage.ReportedIncident{reported("INC-s1-ra", "flood", "d1", "g1"), reported("INC-s1-rb", "flood", "d1", "g1"),
				reported("INC-s3-rd", "garbage", "d2", "g4")},
			Rules: []storage.RuleHits{{Rule: "rule-flood", Incidents: 3, Reports: 5}, {Rule: "rule-garbage", Incidents: 1, Reports: 2}},
		}},
		{"district, stricter thresholds", storage.KPIFilter{District: "d2", Since: at(0), Until: at(24 * time.Hour)},
			storage.BreakdownOptions{MinRepeat: 4, MinReports: 3, MaxReported: 1}, storage.Breakdown{
				Total:      1,
				BySource:   []storage.Count{cnt(event.TypeHotlineTicket, 1)},
				ByCategory: []storage.Count{cnt("garbage", 1)},
				ByDistrict: []storage.Count{cnt("d2", 1)},
				Grids:      []storage.GridCount{{Grid: "g4", District: "d2", Incidents: 1}},
				Repeats:    []storage.RepeatCount{},
				Reported:   []storage.ReportedIncident{},
				Rules:      []storage.RuleHits{{Rule: "rule-garbage", Incidents: 1, Reports: 2}},
			}},
		{"grids, capped list", storage.KPIFilter{Grids: []string{"g1"}, Since: at(0), Until: at(24 * time.Hour)},
			storage.BreakdownOptions{MaxReported: 1}, storage.Breakdown{
				Total:      3,
				BySource:   []storage.Count{cnt(event.TypeHotlineTicket, 1), cnt(event.TypeSensorReading, 1), cnt(event.TypeVideoDetection, 1)},
				ByCategory: []storage.Count{cnt("flood", 3)},
				ByDistrict: []storage.Count{cnt("d1", 3)},
				Grids:      []storage.GridCount{{Grid: "g1", District: "d1", Incidents: 3}},
				Repeats:    []storage.RepeatCount{{Grid: "g1", Category: "flood", Incidents: 3}},
				Reported:   []storage.ReportedIncident{reported("INC-s1-ra", "flood", "d1", "g1")},
				Rules:      []storage.RuleHits{{Rule: "rule-flood", Incidents: 3, Reports: 5}},
			}},
		{"nothing", storage.KPIFilter{Since: at(100 * time.Hour), Until: at(101 * time.Hour)}, opts, storage.Breakdown{
			BySource: []storage.Count{}, ByCategory: []storage.Count{}, ByDistrict: []storage.Count{},
			Grids: []storage.GridCount{}, Repeats: []storage.RepeatCount{}, Reported: []storage.ReportedIncident{}, Rules: []storage.RuleHits{},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.IncidentBreakdown(t.Context(), tc.f, tc.o)
			must(t, err)
			mustEqual(t, "breakdown", got, tc.want)
		})
	}

	for _, f := range []storage.KPIFilter{
		{},
		{Since: at(0), Until: at(storage.MaxReportRange + time.Minute)},
		{Since: at(0), Until: at(time.Hour), Grids: []string{""}},
	} {
		if _, err := s.IncidentBreakdown(t.Context(), f, opts); !errors.Is(err, storage.ErrInvalidFilter) {
			t.Errorf("IncidentBreakdown(%+v) error = %v, want ErrInvalidFilter", f, err)
		}
	}
}
