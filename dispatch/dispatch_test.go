package dispatch_test

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/urbanbrain/urbanbrain/city"
	"github.com/urbanbrain/urbanbrain/city/citytest"
	"github.com/urbanbrain/urbanbrain/dispatch"
	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/incidents"
	"github.com/urbanbrain/urbanbrain/incidents/incidentstest"
)

var _ dispatch.Roster = (*city.Map)(nil)

var shanghai = time.FixedZone("CST", 8*3600)

var (
	tuesdayMorning = time.Date(2025, 6, 3, 10, 0, 0, 0, shanghai)
	tuesdayNight   = time.Date(2025, 6, 3, 3, 0, 0, 0, shanghai)
)

func demo(t testing.TB) *city.Map { return citytest.Demo(t) }

type harness struct {
	t     *testing.T
	clock *clockwork.FakeClock
	bus   *incidentstest.Bus
	d     *dispatch.Dispatcher
}

func newHarness(t *testing.T, roster dispatch.Roster, at time.Time) *harness {
	t.Helper()
	h := &harness{t: t, clock: clockwork.NewFakeClockAt(at), bus: &incidentstest.Bus{}}
	d, err := dispatch.New(dispatch.Config{Now: h.clock.Now}, roster, nil)
	if err != nil {
		t.Fatal(err)
	}
	h.d = d
	return h
}

// handle delivers one changelog record and writes what the dispatcher returns to the bus.
func (h *harness) handle(c event.IncidentChange) {
	h.t.Helper()
	out, err := h.d.HandleIncidentChange(h.t.Context(), c)
	if err != nil {
		h.t.Fatalf("HandleIncidentChange(%s v%d): %v", c.Incident.ID, c.Incident.Version, err)
	}
	h.bus.Write(h.t, out)
}

// last returns the last dispatch command and record, checking that they agree.
func (h *harness) last() (event.Command, event.Dispatch) {
	h.t.Helper()
	cmds, recs := h.bus.Commands(h.t), h.bus.Dispatches(h.t)
	if len(cmds) == 0 || len(cmds) != len(recs) {
		h.t.Fatalf("%d commands and %d dispatch records written, want the same non-zero number", len(cmds), len(recs))
	}
	c, r := cmds[len(cmds)-1], recs[len(recs)-1]
	if c.Assignment == nil || *c.Assignment != r.Assignment || c.IncidentID != r.IncidentID {
		h.t.Fatalf("command %+v disagrees with dispatch record %+v", c, r)
	}
	return c, r
}

// dispatched is a harness on the demo city on a Tuesday morning and the first version of a new
// incident of category in a grid with at least workers on duty, already handled: the returned
// command is its dispatch.
func dispatched(t *testing.T, workers int, category string) (*harness, city.Grid, event.IncidentChange, event.Command) {
	t.Helper()
	m := demo(t)
	g := findGrid(t, m, func(g city.Grid) bool { return len(onDuty(m, g.Code, tuesdayMorning)) >= workers })
	h := newHarness(t, m, tuesdayMorning)
	o := opened("INC-"+g.Street+"-0001", g, category)
	h.handle(o)
	cmd, _ := h.last()
	return h, g, o, cmd
}

// opened is the changelog record of a new incident in grid g (the first version).
func opened(id string, g city.Grid, category string) event.IncidentChange {
	inc := event.Incident{
		ID: id, Version: 1, Status: event.StatusNew, Category: category, Severity: event.SeverityOrange,
		Area: g.Area(), Reports: []event.Report{{EventID: "ev-" + id}}, ReportCount: 1,
	}
	return event.IncidentChange{Incident: inc, Change: event.Change{Action: incidents.ActionOpen, To: event.StatusNew}}
}

// assigned is a later version of an incident, dispatched to worker (or closed).
func assigned(c event.IncidentChange, version int64, status event.Status, worker string) event.IncidentChange {
	c.Incident.Version = version
	c.Incident.Status = status
	c.Incident.Assignment = event.Assignment{WorkerID: worker, Grid: c.Incident.Area.Grid}
	c.Change = event.Change{Action: event.ActionDispatch, To: status}
	return c
}

// onDuty lists the on-duty workers of a grid, sorted by ID.
func onDuty(m dispatch.Roster, grid string, at time.Time) []city.Worker {
	var ws []city.Worker
	for _, w := range m.Workers(grid) {
		if w.OnDuty(at) {
			ws = append(ws, w)
		}
	}
	slices.SortFunc(ws, func(a, b city.Worker) int { return strings.Compare(a.ID, b.ID) })
	return ws
}

// findGrid is the first demo grid for which ok holds; the roster is generated, so tests pick
// their cases by property rather than by name.
func findGrid(t *testing.T, m *city.Map, ok func(city.Grid) bool) city.Grid {
	t.Helper()
	for _, g := range m.Grids() {
		if ok(g) {
			return g
		}
	}
	t.Fatal("the demo city has no grid for this case")
	return city.Grid{}
}

func TestLeastLoadedOnDutyWorkerOfTheGrid(t *testing.T) {
	t.Parallel()
	m := demo(t)
	g := findGrid(t, m, func(g city.Grid) bool { return len(onDuty(m, g.Code, tuesdayMorning)) >= 2 })
	ws := onDuty(m, g.Code, tuesdayMorning)
	a, b := ws[0], ws[1]
	h := newHarness(t, m, tuesdayMorning)

	// Before: a holds two open incidents and b one (and one closed, which does not count),
	// learnt from the changelog on start.
	street := g.Street
	for i, who := range []string{a.ID, a.ID, b.ID, b.ID} {
		o := opened(fmt.Sprintf("INC-%s-old%d", street, i), g, "0202")
		h.d.Restore(o)
		h.d.Restore(assigned(o, 2, event.StatusDispatched, who))
		if i == 3 {
			h.d.Restore(assigned(o, 3, event.StatusClosed, who))
		}
	}
	if h.bus.Len() != 0 {
		t.Fatalf("Restore wrote %d records, want none", h.bus.Len())
	}
	if la, lb := h.d.Load(a.ID), h.d.Load(b.ID); la != 2 || lb != 1 {
		t.Fatalf("loads after restore: %s %d, %s %d; want 2 and 1", a.ID, la, b.ID, lb)
	}

	id := "INC-" + street + "-0001"
	h.handle(opened(id, g, "0202"))
	cmd, rec := h.last()
	wantA := event.Assignment{WorkerID: b.ID, WorkerName: b.Name, Grid: g.Code, Agency: "water", AgencyName: "市水务局"}
	wantCmd := event.Command{
		ID: "dispatch:" + id, IncidentID: id, Action: event.ActionDispatch, Actor: event.SystemActor,
		Reason: fmt.Sprintf("grid %s on-duty least loaded (1 open)", g.Code), Assignment: &wantA, At: h.clock.Now().UTC(),
	}
	if !reflect.DeepEqual(cmd, wantCmd) {
		t.Errorf("command\n got %+v\nwant %+v", cmd, wantCmd)
	}
	wantRec := event.Dispatch{ID: id + "/1", IncidentID: id, Assignment: wantA, Reason: wantCmd.Reason, At: h.clock.Now().UTC()}
	if !reflect.DeepEqual(rec, wantRec) {
		t.Errorf("dispatch record\n got %+v\nwant %+v", rec, wantRec)
	}
	for _, r := range h.bus.Records("") {
		if r.Key != street {
			t.Errorf("record on %s keyed %q, want the street %q", r.Topic, r.Key, street)
		}
	}

	// The decision counts at once: with a and b now level at 2, the next goes by ID to a.
	h.handle(opened("INC-"+street+"-0002", g, "0202"))
	if cmd, _ := h.last(); cmd.Assignment.WorkerID != a.ID {
		t.Errorf("next incident went to %s, want %s (tie at 2 open, lower ID)", cmd.Assignment.WorkerID, a.ID)
	}
	if la, lb := h.d.Load(a.ID), h.d.Load(b.ID); la != 3 || lb != 2 {
		t.Errorf("loads %d and %d, want 3 and 2", la, lb)
	}
}

func TestNeighbourGridAtNight(t *testing.T) {
	t.Parallel()
	m := demo(t)
	g := findGrid(t, m, func(g city.Grid) bool {
		return len(m.Workers(g.Code)) > 0 && len(onDuty(m, g.Code, tuesdayNight)) == 0
	})
	want, wantGrid, tier := nearestNeighbour(m, g, tuesdayNight, nil)
	if wantGrid == "" {
		t.Fatalf("grid %s has no on-duty neighbour of its district at night in the demo", g.Code)
	}
	h := newHarness(t, m, tuesdayNight)
	h.handle(opened("INC-"+g.Street+"-0001", g, "0301"))
	cmd, _ := h.last()
	if cmd.Assignment.WorkerID != want.ID || cmd.Assignment.Grid != g.Code || cmd.Assignment.Agency != "urban" {
		t.Errorf("assignment %+v, want %s for grid %s with agency urban", *cmd.Assignment, want.ID, g.Code)
	}
	if wantReason := fmt.Sprintf("neighbour grid %s (same %s) on-duty least loaded (0 open)", wantGrid, tier); cmd.Reason != wantReason {
		t.Errorf("reason %q, want %q", cmd.Reason, wantReason)
	}
}

// nearestNeighbour is the lowest-ID on-duty worker (not in exclude) of a neighbouring grid
// in the nearest tier of the organisation — same community, else same street, else same
// district — with their grid and the tier; never one of another district.
func nearestNeighbour(m *city.Map, g city.Grid, at time.Time, exclude []string) (city.Worker, string, string) {
	for _, tier := range []string{"community", "street", "district"} {
		var (
			best     city.Worker
			bestGrid string
		)
		for _, code := range m.Neighbours(g.Code) {
			n, _ := m.Grid(code)
			in := n.District == g.District && map[string]bool{
				"community": n.Community == g.Community,
				"street":    n.Street == g.Street && n.Community != g.Community,
				"district":  n.Street != g.Street,
			}[tier]
			if !in {
				continue
			}
			for _, w := range onDuty(m, code, at) {
				if !slices.Contains(exclude, w.ID) && (bestGrid == "" || w.ID < best.ID) {
					best, bestGrid = w, code
				}
			}
		}
		if bestGrid != "" {
			return best, bestGrid, tier
		}
	}
	return city.Worker{}, "", ""
}

// districtOf is the district a worker or supervisor of the demo roster works in.
func districtOf(t *testing.T, m *city.Map, id string) string {
	t.Helper()
	w, ok := m.Worker(id)
	if !ok {
		t.Fatalf("%s is not on the roster", id)
	}
	for _, c := range m.Communities() {
		if c.Code == w.Community {
			for _, s := range m.Streets() {
				if s.Code == c.Parent {
					return s.Parent
				}
			}
		}
	}
	t.Fatalf("no district for %s (community %s)", id, w.Community)
	return ""
}

// Regression (issue 12): at night a 云湖区 grid on the border went to a 青山区 worker as a
// "neighbour grid" while its own community supervisor was on duty. At 21:00 (day workers off,
// supervisors on until 22:00) a border grid without a night worker, whose own district's
// neighbours are busier than the other district's: the incident stays in its district, in the
// nearest tier; and when everyone of its district nearby has let it lapse, it goes to the
// grid's community supervisor, never across the line.
func TestNeighbourFallbackStaysInTheDistrict(t *testing.T) {
	t.Parallel()
	m := demo(t)
	night := time.Date(2025, 6, 3, 21, 0, 0, 0, shanghai)
	across := func(g city.Grid) []city.Worker { // on-duty workers next door in another district
		var ws []city.Worker
		for _, code := range m.Neighbours(g.Code) {
			if n, _ := m.Grid(code); n.District != g.District {
				ws = append(ws, onDuty(m, code, night)...)
			}
		}
		return ws
	}
	g := findGrid(t, m, func(g city.Grid) bool {
		return len(onDuty(m, g.Code, night)) == 0 && len(across(g)) > 0
	})
	sup, ok := m.Supervisor(g.Community)
	if !ok || !sup.OnDuty(night) {
		t.Fatalf("community %s: supervisor %+v not on duty at %s", g.Community, sup, night)
	}
	var own []string // on-duty workers of the grid's own district next door
	for _, code := range m.Neighbours(g.Code) {
		if n, _ := m.Grid(code); n.District == g.District {
			for _, w := range onDuty(m, code, night) {
				own = append(own, w.ID)
			}
		}
	}
	if len(own) == 0 {
		t.Fatalf("grid %s has no on-duty neighbour of its own district at %s", g.Code, night)
	}

	h := newHarness(t, m, night)
	// The own district's neighbours are busy (three open incidents each), the other district's
	// idle: a least-loaded choice over all neighbours crosses the line.
	for i, id := range own {
		for k := range 3 {
			o := opened(fmt.Sprintf("INC-%s-busy%d-%d", g.Street, i, k), g, "0301")
			h.d.Restore(o)
			h.d.Restore(assigned(o, 2, event.StatusDispatched, id))
		}
	}
	o := opened("INC-"+g.Street+"-0001", g, "0301")
	h.handle(o)
	cmd, _ := h.last()
	want, wantGrid, tier := nearestNeighbour(m, g, night, nil)
	if d := districtOf(t, m, cmd.Assignment.WorkerID); d != g.District {
		t.Fatalf("grid %s of district %s dispatched to %s of district %s (%s)", g.Code, g.District, cmd.Assignment.WorkerID, d, cmd.Reason)
	}
	if cmd.Assignment.WorkerID != want.ID || !strings.Contains(cmd.Reason, "neighbour grid "+wantGrid+" (same "+tier+")") {
		t.Errorf("dispatched to %s (%s), want %s of %s, the nearest tier (%s)", cmd.Assignment.WorkerID, cmd.Reason, want.ID, wantGrid, tier)
	}

	// Nobody of the district next door signed for it in time: the community supervisor, on
	// duty, at community level — not the idle worker across the border.
	breach := assigned(o, 5, event.StatusDispatched, own[len(own)-1])
	breach.Incident.Lapsed = own
	breach.Incident.Clock = &event.Clock{Stage: event.StageSignFor, Breached: true}
	breach.Change = event.Change{Action: incidents.ActionSLABreach, Stage: event.StageSignFor, From: event.StatusDispatched, To: event.StatusDispatched}
	h.handle(breach)
	cmd, _ = h.last()
	if cmd.Action != event.ActionReassign || cmd.Assignment.WorkerID != sup.ID || cmd.Level != event.LevelCommunity {
		t.Errorf("after the district's neighbours lapsed: %s to %s level %q (%s); want %s, the community supervisor on duty",
			cmd.Action, cmd.Assignment.WorkerID, cmd.Level, cmd.Reason, sup.ID)
	}
}

// Every grid of the demo city, at night and by day: whoever dispatch picks works in the grid's
// own district, and a neighbour comes from the nearest tier that has someone on duty.
func TestEveryDispatchStaysInItsDistrict(t *testing.T) {
	t.Parallel()
	m := demo(t)
	for _, at := range []time.Time{tuesdayNight, time.Date(2025, 6, 3, 21, 0, 0, 0, shanghai), tuesdayMorning} {
		h := newHarness(t, m, at)
		for i, g := range m.Grids() {
			h.handle(opened(fmt.Sprintf("INC-%s-%04d", g.Street, i), g, "0301"))
			cmd, _ := h.last()
			if d := districtOf(t, m, cmd.Assignment.WorkerID); d != g.District {
				t.Errorf("%s: grid %s (%s) dispatched to %s of %s (%s)", at.Format("15:04"), g.Code, g.District, cmd.Assignment.WorkerID, d, cmd.Reason)
			}
			if len(onDuty(m, g.Code, at)) > 0 {
				continue
			}
			if _, wantGrid, tier := nearestNeighbour(m, g, at, nil); wantGrid == "" ||
				!strings.HasPrefix(cmd.Reason, "neighbour grid ") || !strings.Contains(cmd.Reason, "(same "+tier+")") {
				t.Errorf("%s: grid %s: %q, want a neighbour of the same %s", at.Format("15:04"), g.Code, cmd.Reason, tier)
			}
		}
	}
}

// edgeOfTown is the demo map with no neighbours anywhere, as for a grid on the city's edge.
type edgeOfTown struct{ *city.Map }

func (edgeOfTown) Neighbours(string) []string { return nil }

func TestCommunitySupervisorWhenNobodyNearIsOnDuty(t *testing.T) {
	t.Parallel()
	m := demo(t)
	g := findGrid(t, m, func(g city.Grid) bool { return len(onDuty(m, g.Code, tuesdayNight)) == 0 })
	sup, ok := m.Supervisor(g.Community)
	if !ok {
		t.Fatalf("community %s has no supervisor in the demo", g.Community)
	}
	h := newHarness(t, edgeOfTown{m}, tuesdayNight)
	h.handle(opened("INC-"+g.Street+"-0001", g, "0103"))
	cmd, _ := h.last()
	want := event.Assignment{WorkerID: sup.ID, WorkerName: sup.Name, Grid: g.Code, Agency: "gas", AgencyName: "市燃气集团"}
	if *cmd.Assignment != want {
		t.Errorf("assignment %+v, want %+v", *cmd.Assignment, want)
	}
	wantReason := "community supervisor"
	if !sup.OnDuty(tuesdayNight) {
		wantReason += " (off duty)"
	}
	if cmd.Reason != wantReason {
		t.Errorf("reason %q, want %q", cmd.Reason, wantReason)
	}
}

func TestAgencyChoice(t *testing.T) {
	t.Parallel()
	m := demo(t)
	g := m.Grids()[0]
	for _, tc := range []struct {
		name, category, hint, want string
	}{
		{"owner in the 权责清单", "0501", "", "fire"},
		{"rule's routing hint first", "0202", "traffic", "traffic"},
		{"unknown hint ignored", "0202", "nasa", "water"},
		{"unknown category to the street office", "9999", "", "street"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, m, tuesdayMorning)
			o := opened("INC-"+g.Street+"-0001", g, tc.category)
			o.Incident.Assignment.Agency = tc.hint
			h.handle(o)
			cmd, _ := h.last()
			ag, _ := m.Agency(tc.want)
			if cmd.Assignment.Agency != tc.want || cmd.Assignment.AgencyName != ag.Name {
				t.Errorf("agency %s %s, want %s %s", cmd.Assignment.Agency, cmd.Assignment.AgencyName, tc.want, ag.Name)
			}
		})
	}
}

func TestNoGridIsLeftForTriage(t *testing.T) {
	t.Parallel()
	h := newHarness(t, demo(t), tuesdayMorning)
	o := opened("INC-unknown-0001", city.Grid{}, "0202")
	h.handle(o)
	if n := h.bus.Len(); n != 0 {
		t.Errorf("wrote %d records for an incident without a grid, want none", n)
	}
	if s := h.d.Stats(); s.Untriaged != 1 || s.Dispatched != 0 {
		t.Errorf("stats %+v, want one untriaged", s)
	}
}

func TestRedeliveredOpenRepeatsTheDecision(t *testing.T) {
	t.Parallel()
	h, _, o, _ := dispatched(t, 2, "0202")
	first, firstRec := h.last()
	worker := first.Assignment.WorkerID

	// The stage runner resumes a partition from its last committed offset after an error, so
	// a change whose outputs were returned may be delivered again.
	h.clock.Advance(time.Minute)
	h.handle(o) // the redelivery
	h.handle(o) // and once more
	cmds, recs := h.bus.Commands(t), h.bus.Dispatches(t)
	if len(cmds) != 3 || len(recs) != 3 {
		t.Fatalf("%d commands and %d records, want 3 and 3", len(cmds), len(recs))
	}
	for i := range cmds[1:] {
		if !reflect.DeepEqual(cmds[i+1], first) || !reflect.DeepEqual(recs[i+1], firstRec) {
			t.Errorf("repeated decision\n got %+v %+v\nwant %+v %+v (same ids, same decision)", cmds[i+1], recs[i+1], first, firstRec)
		}
	}
	if h.d.Load(worker) != 1 {
		t.Errorf("load of %s is %d, want 1: one incident, however often it is delivered", worker, h.d.Load(worker))
	}

	// The incident moved on; an old open delivered late changes nothing.
	h.handle(assigned(o, 2, event.StatusDispatched, worker))
	before := h.bus.Len()
	h.handle(o)
	if h.bus.Len() != before || h.d.Stats().Stale != 1 {
		t.Errorf("a stale open wrote %d records (stats %+v), want none", h.bus.Len()-before, h.d.Stats())
	}
	h.handle(assigned(o, 3, event.StatusClosed, worker))
	if h.d.Load(worker) != 0 {
		t.Errorf("load of %s after close is %d, want 0", worker, h.d.Load(worker))
	}
	h.handle(assigned(o, 2, event.StatusDispatched, worker)) // a late duplicate of v2
	if h.d.Load(worker) != 0 {
		t.Errorf("a late duplicate revived a closed incident's load: %d", h.d.Load(worker))
	}
}

// The outputs are typed and in order: the command, which takes effect, then the record of
// why; both keyed by the street, with the ids and times their CloudEvents carry.
func TestOutputsAreTheCommandThenTheRecord(t *testing.T) {
	t.Parallel()
	m := demo(t)
	g := findGrid(t, m, func(g city.Grid) bool { return len(onDuty(m, g.Code, tuesdayMorning)) >= 1 })
	d, err := dispatch.New(dispatch.Config{Now: clockwork.NewFakeClockAt(tuesdayMorning).Now}, m, nil)
	if err != nil {
		t.Fatal(err)
	}
	o := opened("INC-"+g.Street+"-0001", g, "0202")
	out, err := d.HandleIncidentChange(t.Context(), o)
	if err != nil || len(out) != 2 {
		t.Fatalf("HandleIncidentChange = %d outputs, %v; want 2", len(out), err)
	}
	cmd, ok := out[0].Data.(event.Command)
	if !ok {
		t.Fatalf("first output is %T, want event.Command", out[0].Data)
	}
	rec, ok := out[1].Data.(event.Dispatch)
	if !ok {
		t.Fatalf("second output is %T, want event.Dispatch", out[1].Data)
	}
	at := tuesdayMorning.UTC()
	if out[0].Key != g.Street || out[0].ID != "dispatch:"+o.Incident.ID || !out[0].Time.Equal(at) || cmd.ID != out[0].ID {
		t.Errorf("command output %+v, want key %s id dispatch:%s at %v", out[0], g.Street, o.Incident.ID, at)
	}
	if out[1].Key != g.Street || out[1].ID != o.Incident.ID+"/1" || !out[1].Time.Equal(at) || rec.ID != out[1].ID {
		t.Errorf("dispatch output %+v, want key %s id %s/1 at %v", out[1], g.Street, o.Incident.ID, at)
	}
	if *cmd.Assignment != rec.Assignment {
		t.Errorf("command assignment %+v, record %+v: want the same", *cmd.Assignment, rec.Assignment)
	}
}

// Regression guard: a report linked between the open and the dispatch landing has no
// assignment yet, and must not make the dispatcher forget the worker it chose.
func TestLinkBeforeDispatchLandsKeepsTheLoad(t *testing.T) {
	t.Parallel()
	h, _, o, cmd := dispatched(t, 1, "0202")
	worker := cmd.Assignment.WorkerID

	link := o
	link.Incident.Version, link.Incident.ReportCount = 2, 2
	link.Change = event.Change{Action: incidents.ActionLink, From: event.StatusNew, To: event.StatusNew}
	h.handle(link)
	if n := h.d.Load(worker); n != 1 {
		t.Errorf("after a link, load of %s is %d, want 1", worker, n)
	}
	h.handle(assigned(o, 3, event.StatusDispatched, worker))
	if n := h.d.Load(worker); n != 1 {
		t.Errorf("after the dispatch landed, load of %s is %d, want 1", worker, n)
	}
	if n := len(h.bus.Commands(t)); n != 1 {
		t.Errorf("%d dispatch commands, want 1", n)
	}
}

// After a restart the decisions are gone (they are not on the changelog). An incident still
// new at the version Restore reached is dispatched when that record is delivered again, even
// if it is a link and not the open.
func TestRestartDispatchesAnIncidentStillNew(t *testing.T) {
	t.Parallel()
	m := demo(t)
	g := findGrid(t, m, func(g city.Grid) bool { return len(onDuty(m, g.Code, tuesdayMorning)) >= 1 })
	h := newHarness(t, m, tuesdayMorning)
	o := opened("INC-"+g.Street+"-0001", g, "0202")
	link := o
	link.Incident.Version, link.Incident.ReportCount = 2, 2
	link.Change = event.Change{Action: incidents.ActionLink, From: event.StatusNew, To: event.StatusNew}
	h.d.Restore(o)
	h.d.Restore(link)

	h.handle(o) // older than what Restore reached
	if n := h.bus.Len(); n != 0 {
		t.Fatalf("a stale open wrote %d records", n)
	}
	h.handle(link)
	cmd, rec := h.last()
	if want := onDuty(m, g.Code, tuesdayMorning)[0].ID; cmd.Assignment.WorkerID != want || rec.ID != o.Incident.ID+"/2" {
		t.Errorf("dispatched %s as %s, want %s as %s/2", cmd.Assignment.WorkerID, rec.ID, want, o.Incident.ID)
	}
}

// The whole loop in one process: signal → incidents → changelog → dispatch → command →
// incidents → result, with each record delivered as the composition root's router would.
func TestDispatchLoop(t *testing.T) {
	t.Parallel()
	m := demo(t)
	g := findGrid(t, m, func(g city.Grid) bool { return len(onDuty(m, g.Code, tuesdayMorning)) >= 1 })
	clock := clockwork.NewFakeClockAt(tuesdayMorning)
	bus := &incidentstest.Bus{}
	svc, err := incidents.New(incidents.Config{Now: clock.Now}, nil)
	if err != nil {
		t.Fatal(err)
	}
	d, err := dispatch.New(dispatch.Config{Now: clock.Now}, m, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	disp := d // where changelog records go
	delivered := 0
	pump := func() {
		t.Helper()
		for ; delivered < bus.Len(); delivered++ {
			r := bus.Records("")[delivered]
			var (
				out event.Outputs
				err error
			)
			switch r.Topic {
			case event.TopicIncidents:
				out, err = disp.HandleIncidentChange(ctx, incidentstest.Decode[event.IncidentChange](t, r, event.TypeIncidentChanged))
			case event.TopicCommands:
				out, err = svc.HandleCommand(ctx, incidentstest.Decode[event.Command](t, r, event.TypeCommand))
			}
			if err != nil {
				t.Fatal(err)
			}
			bus.Write(t, out)
		}
	}
	sig := event.Signal{
		ID: "flood@1/ev-1", RuleID: "flood", Category: "0202", Severity: event.SeverityOrange,
		CorrelationKey: "flood:" + g.Code, At: clock.Now(),
		Event: event.Event{ID: "ev-1", Type: event.TypeSensorReading, Time: clock.Now(), Area: g.Area()},
	}
	out, err := svc.HandleSignal(ctx, sig)
	if err != nil {
		t.Fatal(err)
	}
	bus.Write(t, out)
	pump()

	open := svc.Open()
	if len(open) != 1 {
		t.Fatalf("open incidents %+v, want one", open)
	}
	inc := open[0]
	want := onDuty(m, g.Code, tuesdayMorning)[0]
	if inc.Status != event.StatusDispatched || inc.Version != 2 || inc.Assignment.WorkerID != want.ID || inc.Assignment.Agency != "water" {
		t.Fatalf("incident %s v%d assigned %+v, want dispatched v2 to %s and water", inc.Status, inc.Version, inc.Assignment, want.ID)
	}
	if rs := bus.Results(t); len(rs) != 1 || !rs[0].OK || rs[0].CommandID != "dispatch:"+inc.ID {
		t.Errorf("results %+v, want the dispatch command's success", rs)
	}
	if d.Load(want.ID) != 1 {
		t.Errorf("load of %s is %d, want 1", want.ID, d.Load(want.ID))
	}

	// A dispatcher that lost its state and its offsets reads the changelog again from the
	// start: it decides again, and the incidents service answers the repeated command id with
	// its first outcome, so nothing changes in effect.
	disp, err = dispatch.New(dispatch.Config{Now: clock.Now}, m, nil)
	if err != nil {
		t.Fatal(err)
	}
	changes := bus.Changes(t)
	for _, c := range changes {
		out, err := disp.HandleIncidentChange(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		bus.Write(t, out)
	}
	pump()
	if got := len(bus.Changes(t)); got != len(changes) {
		t.Errorf("replay wrote %d more changes, want none", got-len(changes))
	}
	rs := bus.Results(t)
	if len(bus.Commands(t)) != 2 || len(rs) != 2 || !reflect.DeepEqual(rs[1], rs[0]) {
		t.Errorf("replay: %d commands, results %+v; want the command again and the first result again", len(bus.Commands(t)), rs)
	}
	if inc2, _ := svc.Get(inc.ID); inc2.Version != 2 || disp.Load(want.ID) != 1 {
		t.Errorf("after replay: v%d, load %d; want v2 and 1", inc2.Version, disp.Load(want.ID))
	}
}

func TestNewRefusesMissingParts(t *testing.T) {
	t.Parallel()
	if _, err := dispatch.New(dispatch.Config{MaxReturns: -1}, nil, nil); err == nil ||
		!strings.Contains(err.Error(), "Roster") || !strings.Contains(err.Error(), "MaxReturns") {
		t.Errorf("New(MaxReturns -1, nil roster) error %v, want both problems", err)
	}
}

// The promise the district rule relies on (city's TestSomeoneAlwaysOnDuty, narrowed): at every
// half hour of the week, each demo grid has an on-duty worker in it or in a neighbouring grid
// of its own district, so no grid falls to its supervisor only because the border is closed.
func TestSomeoneOnDutyWithinEveryDistrict(t *testing.T) {
	t.Parallel()
	m := demo(t)
	monday := time.Date(2025, 6, 2, 0, 0, 0, 0, shanghai)
	for step := range 7 * 48 {
		at := monday.Add(time.Duration(step) * 30 * time.Minute)
		for _, g := range m.Grids() {
			if len(onDuty(m, g.Code, at)) > 0 {
				continue
			}
			if _, n, _ := nearestNeighbour(m, g, at, nil); n == "" {
				t.Fatalf("%s: nobody on duty in %s or next to it in district %s", at, g.Code, g.District)
			}
		}
	}
}

// A dispatch command that is refused or lost leaves the incident new on the changelog. After
// RetryAfter the owner of the street decides again under a new command id; the record of that
// decision goes out only when the changelog shows its command applied (a first command that
// was only slow leaves no record of the retry). The new owner after a move retries what the
// previous one left unanswered.
func TestUnansweredDispatchIsDecidedAgain(t *testing.T) {
	t.Parallel()
	h, g, o, first := dispatched(t, 1, "0202")
	all := func(string) bool { return true }
	commands, records := func() int { return len(h.bus.Commands(t)) }, func() int { return len(h.bus.Dispatches(t)) }

	h.clock.Advance(time.Minute)
	if out := h.d.Retry(h.clock.Now(), all); len(out) != 0 {
		t.Fatalf("a dispatch a minute old was retried: %d outputs", len(out))
	}
	h.clock.Advance(90 * time.Second)
	if out := h.d.Retry(h.clock.Now(), func(string) bool { return false }); len(out) != 0 {
		t.Fatalf("a street this instance does not own was retried: %d outputs", len(out))
	}
	h.bus.Write(t, h.d.Retry(h.clock.Now(), all))
	cmds := h.bus.Commands(t)
	again := cmds[len(cmds)-1]
	if len(cmds) != 2 || records() != 1 || again.ID == first.ID || !strings.HasPrefix(again.ID, "dispatch:"+o.Incident.ID+"/1/retry-") {
		t.Fatalf("after the retry: %d commands (last %s), %d records; want a second command with a retry id and no record yet", len(cmds), again.ID, records())
	}
	if h.d.Stats().Retried != 1 || h.d.Load(again.Assignment.WorkerID) != 1 {
		t.Errorf("stats %+v, load of %s %d; want one retry and the incident counted once", h.d.Stats(), again.Assignment.WorkerID, h.d.Load(again.Assignment.WorkerID))
	}
	// A redelivered open repeats the retried decision, under the retry's id, still without a record.
	h.handle(o)
	if c := h.bus.Commands(t); c[len(c)-1].ID != again.ID || records() != 1 {
		t.Errorf("redelivered open sent %s (%d records), want the retried %s and no record", c[len(c)-1].ID, records(), again.ID)
	}
	if out := h.d.Retry(h.clock.Now(), all); len(out) != 0 {
		t.Errorf("retried again at once: %d outputs", len(out))
	}

	// The retry lands: its record goes out, once per delivery of that change, and nothing is
	// retried any more.
	landed := assigned(o, 2, event.StatusDispatched, again.Assignment.WorkerID)
	landed.Change.CommandID = again.ID
	h.handle(landed)
	recs := h.bus.Dispatches(t)
	if len(recs) != 2 || "dispatch:"+recs[1].ID != again.ID || !strings.Contains(recs[1].Reason, "unanswered") {
		t.Fatalf("after the retry landed: records %+v, want the retry's, with why", recs)
	}
	h.handle(landed) // delivered again
	if records() != 3 || h.bus.Dispatches(t)[2].ID != recs[1].ID {
		t.Errorf("a redelivered landing sent %d records, want the same record again", records()-2)
	}
	h.clock.Advance(time.Hour)
	if out := h.d.Retry(h.clock.Now(), all); len(out) != 0 {
		t.Errorf("a dispatched incident was retried: %d outputs", len(out))
	}

	// A first command that was only slow lands after the retry went out: no record for the
	// retry, whose command the incident service will refuse.
	o2 := opened("INC-"+g.Street+"-0002", g, "0202")
	h.handle(o2)
	firstOf2 := h.bus.Commands(t)[commands()-1]
	h.clock.Advance(3 * time.Minute)
	h.bus.Write(t, h.d.Retry(h.clock.Now(), all))
	before := records()
	slow := assigned(o2, 2, event.StatusDispatched, firstOf2.Assignment.WorkerID)
	slow.Change.CommandID = firstOf2.ID
	h.handle(slow)
	if records() != before {
		t.Errorf("the slow first command's landing sent %d records for the retry, want none", records()-before)
	}

	// After a move: the new owner, restored from the changelog, retries an incident the
	// previous owner's command never dispatched, and nothing it has seen change meanwhile.
	h2 := newHarness(t, demo(t), tuesdayMorning)
	o3 := opened("INC-"+g.Street+"-0003", g, "0202")
	h2.d.Restore(o3)
	h2.clock.Advance(time.Minute)
	if out := h2.d.Retry(h2.clock.Now(), all); len(out) != 0 {
		t.Fatalf("retried a minute after the load: %d outputs", len(out))
	}
	h2.clock.Advance(2 * time.Minute)
	out := h2.d.Retry(h2.clock.Now(), all)
	if len(out) != 1 {
		t.Fatalf("the new owner's retry: %d outputs, want the command", len(out))
	}
	if c, ok := out[0].Data.(event.Command); !ok || c.IncidentID != o3.Incident.ID || !strings.Contains(c.ID, "/retry-") {
		t.Errorf("the new owner's retry %+v, want a retry command for %s", out[0].Data, o3.Incident.ID)
	}
}

// Retry runs on a timer beside the partitions' handlers: meaningful with -race.
func TestRetryBesideHandling(t *testing.T) {
	t.Parallel()
	m := demo(t)
	g := findGrid(t, m, func(g city.Grid) bool { return len(onDuty(m, g.Code, tuesdayMorning)) >= 1 })
	d, err := dispatch.New(dispatch.Config{Now: func() time.Time { return tuesdayMorning }, RetryAfter: time.Nanosecond}, m, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 300 {
			d.Retry(tuesdayMorning.Add(time.Duration(i)*time.Minute), func(string) bool { return true })
		}
	}()
	for i := range 300 {
		if _, err := d.HandleIncidentChange(t.Context(), opened(fmt.Sprintf("INC-%s-%04d", g.Street, i), g, "0202")); err != nil {
			t.Fatal(err)
		}
	}
	<-done
	if d.Stats().Dispatched != 300 {
		t.Errorf("dispatched %d, want 300", d.Stats().Dispatched)
	}
}
