package storagetest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/storage"
	"github.com/urbanbrain/urbanbrain/storage/internal/canon"
)

var flood = incidentSpec{
	id: "INC-s1-flood", category: "waterlogging", severity: event.SeverityRed,
	area: area("d1", "s1", "c1", "g1"), created: at(time.Hour), worker: "w1", steps: 7,
}

func testChangelogTwice(t *testing.T, open func(t *testing.T) Store) {
	s := open(t)
	ctx := t.Context()
	log := flood.changelog()
	for _, ch := range log {
		must(t, s.HandleIncidentChange(ctx, ch))
	}
	// The second pass as a consumer restarted from offset 0 would deliver it, in one batch.
	must(t, s.HandleIncidentChanges(ctx, log))

	got, err := s.GetIncident(ctx, flood.id)
	must(t, err)
	last := log[len(log)-1].Incident
	mustEqual(t, "incident", got.Incident, explained(canon.Incident(last), log...))
	mustEqual(t, "timeline", got.Timeline, timeline(log...))
	n, err := s.CountIncidents(ctx, storage.IncidentFilter{})
	must(t, err)
	if n != 1 {
		t.Errorf("CountIncidents = %d, want 1", n)
	}
	list, err := s.ListIncidents(ctx, storage.IncidentFilter{})
	must(t, err)
	mustEqual(t, "listed incidents", list, []event.Incident{canon.Incident(last)})
}

func testChangelogOutOfOrder(t *testing.T, open func(t *testing.T) Store) {
	log := flood.changelog()
	tests := []struct {
		name  string
		order []int // indexes into log
		want  int   // index of the state that must win
	}{
		{"v2 then v1", []int{1, 0}, 1},
		{"v1 v2 v1", []int{0, 1, 0}, 1},
		{"shuffled", []int{3, 0, 6, 2, 5, 1, 4}, 6},
		{"newest first", []int{6, 5, 4, 3, 2, 1, 0}, 6},
		{"gaps filled late", []int{0, 6, 1, 2}, 6},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			ctx := t.Context()
			applied := map[int]bool{}
			for _, i := range tc.order {
				must(t, s.HandleIncidentChange(ctx, log[i]))
				applied[i] = true
			}
			got, err := s.GetIncident(ctx, flood.id)
			must(t, err)
			var want []event.IncidentChange
			for i, ch := range log {
				if applied[i] {
					want = append(want, ch)
				}
			}
			mustEqual(t, "incident", got.Incident, explained(canon.Incident(log[tc.want].Incident), want...))
			mustEqual(t, "timeline", got.Timeline, timeline(want...))
		})
	}
}

// testFiltersSeeLatestVersion: list filters match the stored (newest) state, not a stale one
// that arrived late.
func testFiltersSeeLatest(t *testing.T, open func(t *testing.T) Store) {
	s := open(t)
	ctx := t.Context()
	log := flood.changelog()
	must(t, s.HandleIncidentChange(ctx, log[2])) // dispatched to w1
	must(t, s.HandleIncidentChange(ctx, log[0])) // new, arriving late

	tests := []struct {
		name string
		f    storage.IncidentFilter
		want []string
	}{
		{"stale status", storage.IncidentFilter{Status: []event.Status{event.StatusNew}}, []string{}},
		{"current status", storage.IncidentFilter{Status: []event.Status{event.StatusDispatched}}, []string{flood.id}},
		{"current assignee", storage.IncidentFilter{AssigneeWorker: "w1"}, []string{flood.id}},
		{"stale update time", storage.IncidentFilter{Until: log[0].Incident.UpdatedAt.Add(time.Millisecond)}, []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.ListIncidents(ctx, tc.f)
			must(t, err)
			mustEqual(t, "incident ids", incidentIDs(got), tc.want)
		})
	}
}

func testLinkedEvents(t *testing.T, open func(t *testing.T) Store) {
	s := open(t)
	ctx := t.Context()
	spec := flood
	spec.steps = 3
	log := spec.changelog()
	evs := spec.reportEvents()
	other := sensorEvent("unrelated", spec.area, "dev-9", at(0))

	// The first report's event is stored before the incident, the second one after it: the
	// events and the changelog are consumed independently.
	must(t, s.HandleEvents(ctx, []event.Event{evs[0], other}))
	must(t, s.HandleIncidentChanges(ctx, log))
	got, err := s.GetIncident(ctx, spec.id)
	must(t, err)
	mustEqual(t, "events before the second is stored", got.Events, canonEvents(evs[0]))
	if len(got.Incident.Reports) != 2 || got.Incident.ReportCount != 2 {
		t.Fatalf("incident has %d reports (count %d), want 2", len(got.Incident.Reports), got.Incident.ReportCount)
	}

	must(t, s.HandleEvent(ctx, evs[1]))
	must(t, s.HandleIncidentChanges(ctx, log)) // a replay must not duplicate links
	got, err = s.GetIncident(ctx, spec.id)
	must(t, err)
	mustEqual(t, "linked events, oldest first", got.Events, canonEvents(evs[0], evs[1]))
	if got.Events[1].Hotline.CallerPhone != "13812345678" {
		t.Errorf("caller phone = %q: the store must keep personal data unmasked", got.Events[1].Hotline.CallerPhone)
	}
	mustEqual(t, "caller in report", got.Incident.Reports[1].Caller, &event.Caller{Name: "张三", Phone: "13812345678"})
}

func testDispatches(t *testing.T, open func(t *testing.T) Store) {
	s := open(t)
	ctx := t.Context()
	spec := flood
	spec.steps = 3
	d3 := dispatchFor(spec, 3, "w1", spec.created.Add(2*time.Minute))
	d9 := dispatchFor(spec, 9, "w2", spec.created.Add(9*time.Minute)) // a later re-dispatch
	otherSpec := spec
	otherSpec.id = "INC-s1-other"
	other := dispatchFor(otherSpec, 3, "w1", spec.created)

	// The dispatch topic may run ahead of the changelog.
	must(t, s.HandleDispatch(ctx, d9))
	must(t, s.HandleIncidentChanges(ctx, spec.changelog()))
	for _, d := range []event.Dispatch{d3, d9, other, d3} {
		must(t, s.HandleDispatch(ctx, d))
	}
	got, err := s.GetIncident(ctx, spec.id)
	must(t, err)
	mustEqual(t, "dispatches, oldest first", got.Dispatches, []event.Dispatch{canon.Dispatch(d3), canon.Dispatch(d9)})

	fresh := incidentSpec{id: "INC-s1-fresh", category: "garbage", severity: event.SeverityBlue, area: spec.area, created: at(0), steps: 1}
	must(t, s.HandleIncidentChanges(ctx, fresh.changelog()))
	got, err = s.GetIncident(ctx, fresh.id)
	must(t, err)
	if got.Dispatches == nil || len(got.Dispatches) != 0 || got.Events == nil || len(got.Events) != 0 {
		t.Errorf("incident without dispatches or stored events: got %#v and %#v, want empty non-nil slices",
			got.Dispatches, got.Events)
	}
}

func testIncidentNotFound(t *testing.T, open func(t *testing.T) Store) {
	s := open(t)
	ctx := t.Context()
	_, err := s.GetIncident(ctx, "INC-s1-missing")
	isNotFound(t, "empty store", err)

	must(t, s.HandleIncidentChanges(ctx, flood.changelog()))
	// A dispatch alone does not make an incident.
	must(t, s.HandleDispatch(ctx, dispatchFor(incidentSpec{id: "INC-s1-ghost"}, 3, "w1", at(0))))
	for _, id := range []string{"INC-s1-missing", "INC-s1-ghost", "", "inc-s1-flood"} {
		_, err = s.GetIncident(ctx, id)
		isNotFound(t, "GetIncident("+id+")", err)
	}
}

func testListIncidentsFilters(t *testing.T, open func(t *testing.T) Store) {
	s := open(t)
	ctx := t.Context()
	specs := []incidentSpec{
		{id: "INC-s1-a", category: "waterlogging", severity: event.SeverityRed, area: area("d1", "s1", "c1", "g1"), created: at(0), steps: 1},
		{id: "INC-s1-b", category: "garbage", severity: event.SeverityYellow, area: area("d1", "s1", "c1", "g2"), created: at(time.Hour), worker: "w1", steps: 3},
		{id: "INC-s2-c", category: "waterlogging", severity: event.SeverityBlue, area: area("d1", "s2", "c2", "g3"), created: at(2 * time.Hour), worker: "w2", steps: 7},
		{id: "INC-s3-d", category: "gas", severity: event.SeverityRed, area: area("d2", "s3", "c3", "g4"), created: at(3 * time.Hour), worker: "w1", steps: 5},
		{id: "INC-s3-e", category: "garbage", severity: event.SeverityOrange, area: area("d2", "s3", "c3", "g4"), created: at(4 * time.Hour), steps: 2},
		// Updated at the same millisecond as a: ties break by id, descending.
		{id: "INC-s1-f", category: "garbage", severity: event.SeverityBlue, area: area("d1", "s1", "c1", "g1"), created: at(0), steps: 1},
	}
	// updated: a 0, b 1h2m, c 2h6m, d 3h4m, e 4h1m, f 0
	updated := map[string]time.Time{}
	for _, sp := range specs {
		log := sp.changelog()
		must(t, s.HandleIncidentChanges(ctx, log))
		updated[sp.id] = log[len(log)-1].Incident.UpdatedAt
	}

	tests := []struct {
		name string
		f    storage.IncidentFilter
		want []string
	}{
		{"all, latest update first", storage.IncidentFilter{}, []string{"INC-s3-e", "INC-s3-d", "INC-s2-c", "INC-s1-b", "INC-s1-f", "INC-s1-a"}},
		{"one status", storage.IncidentFilter{Status: []event.Status{event.StatusNew}}, []string{"INC-s3-e", "INC-s1-f", "INC-s1-a"}},
		{"two statuses", storage.IncidentFilter{Status: []event.Status{event.StatusDispatched, event.StatusInProgress}}, []string{"INC-s3-d", "INC-s1-b"}},
		{"category", storage.IncidentFilter{Category: "waterlogging"}, []string{"INC-s2-c", "INC-s1-a"}},
		{"severity", storage.IncidentFilter{Severity: event.SeverityRed}, []string{"INC-s3-d", "INC-s1-a"}},
		{"district", storage.IncidentFilter{District: "d2"}, []string{"INC-s3-e", "INC-s3-d"}},
		{"street", storage.IncidentFilter{Street: "s1"}, []string{"INC-s1-b", "INC-s1-f", "INC-s1-a"}},
		{"grid", storage.IncidentFilter{Grid: "g1"}, []string{"INC-s1-f", "INC-s1-a"}},
		{"assignee", storage.IncidentFilter{AssigneeWorker: "w1"}, []string{"INC-s3-d", "INC-s1-b"}},
		{"open only", storage.IncidentFilter{OpenOnly: true}, []string{"INC-s3-e", "INC-s3-d", "INC-s1-b", "INC-s1-f", "INC-s1-a"}},
		{"closed", storage.IncidentFilter{Status: []event.Status{event.StatusClosed}}, []string{"INC-s2-c"}},
		{"since", storage.IncidentFilter{Since: at(time.Hour)}, []string{"INC-s3-e", "INC-s3-d", "INC-s2-c", "INC-s1-b"}},
		{"until", storage.IncidentFilter{Until: at(2 * time.Hour)}, []string{"INC-s1-b", "INC-s1-f", "INC-s1-a"}},
		{"since inclusive, until exclusive", storage.IncidentFilter{Since: updated["INC-s2-c"], Until: updated["INC-s3-d"]}, []string{"INC-s2-c"}},
		{"combined", storage.IncidentFilter{District: "d1", OpenOnly: true, Category: "garbage"}, []string{"INC-s1-b", "INC-s1-f"}},
		{"open only and closed status", storage.IncidentFilter{OpenOnly: true, Status: []event.Status{event.StatusClosed}}, []string{}},
		{"limit", storage.IncidentFilter{Limit: 2}, []string{"INC-s3-e", "INC-s3-d"}},
		{"limit and offset", storage.IncidentFilter{Limit: 2, Offset: 2}, []string{"INC-s2-c", "INC-s1-b"}},
		{"offset past the end", storage.IncidentFilter{Offset: 6}, []string{}},
		{"no match", storage.IncidentFilter{District: "nowhere"}, []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.ListIncidents(ctx, tc.f)
			must(t, err)
			if got == nil {
				t.Fatal("ListIncidents returned nil, want an empty slice")
			}
			mustEqual(t, "incident ids", incidentIDs(got), tc.want)

			n, err := s.CountIncidents(ctx, tc.f)
			must(t, err)
			unpaged := tc.f
			unpaged.Limit, unpaged.Offset = 0, 0
			all, err := s.ListIncidents(ctx, unpaged)
			must(t, err)
			if n != len(all) {
				t.Errorf("CountIncidents = %d, want %d (the unpaged list)", n, len(all))
			}
		})
	}

	// An incident no grid holds (a report outside every grid, for an operator to triage).
	must(t, s.HandleIncidentChanges(ctx, incidentSpec{id: "INC-s9-h", category: "garbage", severity: event.SeverityBlue,
		area: area("d1", "s9", "", ""), created: at(5 * time.Hour), steps: 1}.changelog()))
	for _, tc := range []struct {
		name string
		f    storage.IncidentFilter
		want []string
	}{
		{"ungridded", storage.IncidentFilter{Ungridded: true}, []string{"INC-s9-h"}},
		{"ungridded in a district", storage.IncidentFilter{Ungridded: true, District: "d2"}, []string{}},
		{"ungridded and a grid", storage.IncidentFilter{Ungridded: true, Grid: "g1"}, []string{}},
	} {
		got, err := s.ListIncidents(ctx, tc.f)
		must(t, err)
		mustEqual(t, tc.name, incidentIDs(got), tc.want)
		if n, err := s.CountIncidents(ctx, tc.f); err != nil || n != len(tc.want) {
			t.Errorf("%s: CountIncidents = %d (%v), want %d", tc.name, n, err, len(tc.want))
		}
	}
}

func testRestart(t *testing.T, open func(t *testing.T) Store) {
	s := open(t)
	ctx := t.Context()
	log := flood.changelog()
	evs := flood.reportEvents()
	d := dispatchFor(flood, 3, "w1", flood.created.Add(2*time.Minute))
	must(t, s.HandleEvents(ctx, evs))
	must(t, s.HandleIncidentChanges(ctx, log[:4]))
	must(t, s.HandleDispatch(ctx, d))
	before, err := s.GetIncident(ctx, flood.id)
	must(t, err)
	must(t, s.Close())

	s = open(t)
	after, err := s.GetIncident(ctx, flood.id)
	must(t, err)
	mustEqual(t, "incident after restart", after, before)
	ev, err := s.GetEvent(ctx, evs[1].Type, evs[1].ID)
	must(t, err)
	mustEqual(t, "event after restart", ev, canon.Event(evs[1]))

	// A consumer that restarts from an older offset replays what the store already has.
	must(t, s.HandleEvents(ctx, evs))
	must(t, s.HandleIncidentChanges(ctx, log))
	must(t, s.HandleDispatch(ctx, d))
	got, err := s.GetIncident(ctx, flood.id)
	must(t, err)
	mustEqual(t, "incident after replay", got.Incident, explained(canon.Incident(log[len(log)-1].Incident), log...))
	mustEqual(t, "timeline after replay", got.Timeline, timeline(log...))
	mustEqual(t, "events after replay", got.Events, before.Events)
	mustEqual(t, "dispatches after replay", got.Dispatches, before.Dispatches)
	must(t, s.Close())

	// And once more: reopening a store whose schema is current must not fail.
	s = open(t)
	n, err := s.CountIncidents(ctx, storage.IncidentFilter{})
	must(t, err)
	if n != 1 {
		t.Errorf("CountIncidents after second restart = %d, want 1", n)
	}
}

// The changelog carries each explanation on its signal's change only; the detail explains
// every report from the timeline, and a report a merge moved from another incident from that
// incident's timeline.
func testReportsExplained(t *testing.T, open func(t *testing.T) Store) {
	s := open(t)
	ctx := t.Context()
	spec := flood
	spec.steps = 3
	must(t, s.HandleIncidentChanges(ctx, spec.changelog()))
	got, err := s.GetIncident(ctx, spec.id)
	must(t, err)
	for i, r := range got.Incident.Reports {
		mustEqual(t, fmt.Sprintf("report %d explained", i), r.Explanation, explanationOf(r.EventID))
	}

	// Incident B's one report is merged into A (A v4 names B; B v2 is merged).
	a := spec.changelog()[2]
	other := spec
	other.id = spec.id + "-b"
	other.steps = 1
	b := other.changelog()[0]
	moved := b.Incident.Reports[0]
	merged := a
	merged.Incident.Version, merged.Incident.UpdatedAt = 4, a.Incident.UpdatedAt.Add(time.Minute)
	merged.Incident.Reports = append(slices.Clone(a.Incident.Reports), moved)
	merged.Incident.ReportCount = len(merged.Incident.Reports)
	merged.Change = event.Change{Action: event.ActionMerge, From: a.Incident.Status, To: a.Incident.Status,
		Actor: event.Actor{Subject: "op-1", Role: "operator"}, Related: other.id, CommandID: "cmd-merge", At: merged.Incident.UpdatedAt}
	gone := b
	gone.Incident.Version, gone.Incident.Status, gone.Incident.MergedInto = 2, event.StatusMerged, spec.id
	gone.Change = event.Change{Action: event.ActionMerge, From: event.StatusNew, To: event.StatusMerged,
		Actor: merged.Change.Actor, Related: spec.id, CommandID: "cmd-merge", At: merged.Change.At}
	must(t, s.HandleIncidentChanges(ctx, []event.IncidentChange{b, merged, gone}))
	got, err = s.GetIncident(ctx, spec.id)
	must(t, err)
	if n := len(got.Incident.Reports); n != 3 {
		t.Fatalf("%d reports after the merge, want 3", n)
	}
	mustEqual(t, "the moved report explained from its first incident", got.Incident.Reports[2].Explanation, explanationOf(moved.EventID))

	// Then A is merged into C: B's report, moved twice, is explained from B's timeline.
	third := spec
	third.id = spec.id + "-c"
	third.steps = 1
	c1 := third.changelog()[0]
	cMerged := c1
	cMerged.Incident.Version, cMerged.Incident.UpdatedAt = 2, merged.Incident.UpdatedAt.Add(time.Minute)
	cMerged.Incident.Reports = append(slices.Clone(c1.Incident.Reports), merged.Incident.Reports...)
	cMerged.Incident.ReportCount = len(cMerged.Incident.Reports)
	cMerged.Change = event.Change{Action: event.ActionMerge, From: event.StatusNew, To: event.StatusNew,
		Actor: merged.Change.Actor, Related: spec.id, CommandID: "cmd-merge-2", At: cMerged.Incident.UpdatedAt}
	must(t, s.HandleIncidentChanges(ctx, []event.IncidentChange{c1, cMerged}))
	got, err = s.GetIncident(ctx, third.id)
	must(t, err)
	if n := len(got.Incident.Reports); n != 4 {
		t.Fatalf("%d reports on C, want 4", n)
	}
	for i, r := range got.Incident.Reports {
		mustEqual(t, fmt.Sprintf("C's report %d (%s) explained", i, r.EventID), r.Explanation, explanationOf(r.EventID))
	}
}

// explained is inc as the detail shows it: its reports explained by the changes stored.
func explained(inc event.Incident, log ...event.IncidentChange) event.Incident {
	changes := make([]event.Change, len(log))
	for i, c := range log {
		changes[i] = c.Change
	}
	event.ExplainReports(&inc, changes)
	return inc
}

// Every time of an incident's reports is stored as UTC milliseconds, as every other time: an
// episode's latest reading and the further rules' matches as well as the report's first.
func testIncidentTimesCanonical(t *testing.T, open func(t *testing.T) Store) {
	s := open(t)
	ctx := t.Context()
	spec := flood
	spec.steps = 1
	log := spec.changelog()
	// Nanoseconds and a +08:00 offset, as a producer's clock may give them.
	odd := time.Date(2026, 3, 1, 16, 0, 0, 123_456_789, time.FixedZone("CST", 8*3600))
	r := &log[0].Incident.Reports[0]
	r.At = odd.Add(-time.Minute)
	r.LastEventID, r.LastAt, r.Count = r.EventID+"-latest", odd, 2
	r.Rules = []event.RuleMatch{{RuleID: "rule-held", SignalID: "sig-held", EventID: r.EventID, At: odd}}
	must(t, s.HandleIncidentChanges(ctx, log))
	got, err := s.GetIncident(ctx, spec.id)
	must(t, err)
	want := time.Date(2026, 3, 1, 8, 0, 0, 123_000_000, time.UTC)
	gr := got.Incident.Reports[0]
	if len(gr.Rules) != 1 {
		t.Fatalf("report rules = %+v, want one", gr.Rules)
	}
	for name, tm := range map[string]time.Time{"at": gr.At.Add(time.Minute), "last_at": gr.LastAt, "rules[0].at": gr.Rules[0].At} {
		if !tm.Equal(want) || tm.Location() != time.UTC {
			t.Errorf("report %s = %s (%s), want %s in UTC", name, tm, tm.Location(), want)
		}
	}
}
