package cockpit_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/urbanbrain/urbanbrain/auth"
	"github.com/urbanbrain/urbanbrain/auth/authtest"
	"github.com/urbanbrain/urbanbrain/city"
	"github.com/urbanbrain/urbanbrain/city/citytest"
	cockpit "github.com/urbanbrain/urbanbrain/cockpit-ws"
	"github.com/urbanbrain/urbanbrain/event"
)

// screen is a client that keeps the state a wall screen would: a snapshot, then deltas
// whose seq must follow one another.
type screen struct {
	*client
	name  string
	match func(event.Incident) bool // what the filter promises
	seq   uint64
	state map[string]event.Incident
}

// readUntil applies frames until the screen's seq reaches seq, checking every upsert
// against the filter and every seq against the last.
func (s *screen) readUntil(t *testing.T, seq uint64) {
	t.Helper()
	for s.seq < seq {
		f := s.next()
		switch f.Type {
		case cockpit.FrameSnapshot:
			s.seq, s.state = f.Seq, map[string]event.Incident{}
			for _, inc := range f.Incidents {
				s.check(t, inc)
				s.state[inc.ID] = inc
			}
		case cockpit.FrameDelta:
			if f.Seq != s.seq+1 {
				t.Fatalf("%s: delta %d after %d", s.name, f.Seq, s.seq)
			}
			s.seq = f.Seq
			for _, inc := range f.Upsert {
				s.check(t, inc)
				s.state[inc.ID] = inc
			}
			for _, r := range f.Remove {
				delete(s.state, r.ID)
			}
		default:
			t.Fatalf("%s: unexpected frame %s", s.name, f.raw)
		}
	}
}

func (s *screen) check(t *testing.T, inc event.Incident) {
	t.Helper()
	if !s.match(inc) {
		t.Fatalf("%s received %s (%s %s %s %s), which its filter excludes", s.name, inc.ID,
			inc.Area.District, inc.Area.Street, inc.Category, inc.Severity)
	}
}

// A filter only ever delivers matching incidents, and after a random stream of changes
// (new, moved between districts, re-graded, closed, reopened) each screen's state built
// from its snapshot and deltas is exactly the set its filter and scope select.
func TestFilterOnlyDeliversMatching(t *testing.T) {
	t.Parallel()
	f := start(t, cockpit.Config{})
	type sub struct {
		name   string
		claims auth.Claims
		query  []string
		match  func(event.Incident) bool
	}
	isIn := func(v string, set ...string) bool { return slices.Contains(set, v) }
	subs := []sub{
		{"admin, everything", admin, nil, func(event.Incident) bool { return true }},
		{"district D1", operator, []string{"district=D1"}, func(i event.Incident) bool { return i.Area.District == "D1" }},
		{"red and orange", viewer, []string{"severity=red,orange"}, func(i event.Incident) bool {
			return isIn(i.Severity, event.SeverityRed, event.SeverityOrange)
		}},
		{"waterlogging in D2 or D3", viewer, []string{"category=0202", "district=D2,D3"}, func(i event.Incident) bool {
			return i.Category == "0202" && isIn(i.Area.District, "D2", "D3")
		}},
		{"D2 operator, street D2-s1", auth.Claims{Subject: "op-d2", Role: auth.RoleOperator, District: "D2"}, []string{"street=D2-s1"},
			func(i event.Incident) bool { return i.Area.Street == "D2-s1" }},
		{"D2 operator asking for D1", auth.Claims{Subject: "op-d2", Role: auth.RoleOperator, District: "D2"}, []string{"district=D1"},
			func(event.Incident) bool { return false }},
		{"worker of G1, G4", auth.Claims{Subject: "w-1", Role: auth.RoleWorker, Grids: []string{"G1", "G4"}}, nil,
			func(i event.Incident) bool { return isIn(i.Area.Grid, "G1", "G4") }},
	}
	var screens []*screen
	for _, s := range subs {
		c := f.connect(t, s.claims, s.query...)
		sc := &screen{client: c, name: s.name, match: s.match}
		sc.readUntil(t, 0)
		screens = append(screens, sc)
	}

	rng := rand.New(rand.NewPCG(6, 6))
	districts := []string{"D1", "D2", "D3"}
	categories := []string{"0101", "0202", "0301"}
	sevs := []string{event.SeverityRed, event.SeverityOrange, event.SeverityYellow, event.SeverityBlue}
	statuses := []event.Status{event.StatusNew, event.StatusDispatched, event.StatusAccepted, event.StatusClosed}
	last := map[string]event.Incident{}
	for i := range 400 {
		id := fmt.Sprintf("INC-%02d", rng.IntN(25))
		d := districts[rng.IntN(len(districts))]
		inc := event.Incident{ID: id, Version: last[id].Version + 1, Status: statuses[rng.IntN(len(statuses))],
			Category: categories[rng.IntN(len(categories))], Severity: sevs[rng.IntN(len(sevs))],
			Area: event.Area{District: d, Street: d + "-s" + fmt.Sprint(rng.IntN(2)+1), Grid: fmt.Sprintf("G%d", rng.IntN(6))}}
		last[id] = inc
		f.change(t, event.IncidentChange{Incident: inc})
		if i%7 == 6 {
			f.flush()
		}
		if i%23 == 11 {
			// A screen joining mid-tick gets a snapshot equal, version for version, to what a
			// screen that was there all along holds at that seq.
			k := (i / 23) % len(subs)
			snap := f.connect(t, subs[k].claims, subs[k].query...).next()
			screens[k].readUntil(t, snap.Seq)
			want := map[string]int64{}
			for id, inc := range screens[k].state {
				want[id] = inc.Version
			}
			got := map[string]int64{}
			for _, inc := range snap.Incidents {
				got[inc.ID] = inc.Version
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("%s: snapshot at seq %d mid-tick holds %v; the screen there all along holds %v", subs[k].name, snap.Seq, got, want)
			}
		}
	}
	f.flush()

	for i, s := range subs {
		// A screen connecting now tells the final seq and state of the subscription.
		fresh := f.connect(t, s.claims, s.query...)
		head := fresh.next()
		sc := screens[i]
		sc.readUntil(t, head.Seq)
		var want []string
		for id, inc := range last {
			if inc.Status.Open() && s.match(inc) && s.claims.CanSee(inc.Area) {
				want = append(want, id)
			}
		}
		slices.Sort(want)
		var got []string
		for id, inc := range sc.state {
			got = append(got, id)
			if inc.Version != last[id].Version {
				t.Errorf("%s holds %s version %d, latest is %d", s.name, id, inc.Version, last[id].Version)
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, want) || !slices.Equal(ids(head.Incidents), orEmpty(want)) {
			t.Errorf("%s: state %v, fresh snapshot %v, want %v", s.name, got, ids(head.Incidents), want)
		}
	}
}

// A client may change its subscription with a message; bad messages get an error frame and
// leave the subscription as it was.
func TestSubscribeMessages(t *testing.T) {
	t.Parallel()
	f := start(t, cockpit.Config{})
	f.hub.Restore(incident("INC-A", 1, event.StatusNew, "D1", "G1"))
	f.hub.Restore(incident("INC-B", 1, event.StatusNew, "D2", "G2"))
	c := f.connect(t, admin)
	c.snapshot(0, "INC-A", "INC-B")

	c.send(`{"type":"subscribe","filter":{"district":["D2"]}}`)
	d2 := c.snapshot(0, "INC-B")
	for _, tc := range []struct{ msg, code string }{
		{`{"type":"subscribe","fliter":{"district":["D1"]}}`, cockpit.ErrCodeInvalidRequest},
		{`not json`, cockpit.ErrCodeInvalidRequest},
		{`{"type":"hello"}`, cockpit.ErrCodeInvalidRequest},
		{`{"type":"subscribe","filter":{"severity":["purple"]}}`, cockpit.ErrCodeInvalidRequest},
		{`{"type":"subscribe","map":true}`, cockpit.ErrCodeInvalidRequest}, // no city loaded
	} {
		c.send(tc.msg)
		if e := c.expect(cockpit.FrameError); e.Code != tc.code {
			t.Errorf("%s: error code %q, want %q", tc.msg, e.Code, tc.code)
		}
	}
	// Still on D2: a D1 change sends nothing, a D2 change arrives.
	f.change(t, incident("INC-A", 2, event.StatusDispatched, "D1", "G1"))
	f.change(t, incident("INC-B", 2, event.StatusDispatched, "D2", "G2"))
	f.flush()
	c.delta(1, list("INC-B"), nil)

	// Resume by message, on the same subscription.
	c.send(fmt.Sprintf(`{"type":"subscribe","filter":{"district":["D2"]},"resume":{"epoch":%q,"seq":0}}`, d2.Epoch))
	c.expect(cockpit.FrameResumed)
	c.delta(1, list("INC-B"), nil)

	// Subscribing costs a snapshot, so it is rate limited.
	for range 20 {
		c.send(`{"type":"subscribe"}`)
	}
	limited := 0
	for range 20 {
		switch fr := c.next(); fr.Type {
		case cockpit.FrameError:
			if fr.Code != cockpit.ErrCodeRateLimited {
				t.Fatalf("error %s", fr.raw)
			}
			limited++
		case cockpit.FrameSnapshot:
		default:
			t.Fatalf("unexpected %s", fr.raw)
		}
	}
	if limited == 0 || limited == 20 {
		t.Errorf("%d of 20 quick subscribes refused; want some, not all", limited)
	}
}

func demoCity(t testing.TB) *city.Map { return citytest.Demo(t) }

// The map layer and the positions come in the coordinate system the client asks for, and
// say which.
func TestCoordinateSystems(t *testing.T) {
	t.Parallel()
	m := demoCity(t)
	f := start(t, cockpit.Config{City: m})
	ch := incident("INC-A", 1, event.StatusNew, "D1", "G1")
	p := event.Point{Lon: 120.1551, Lat: 30.2741}
	ch.Incident.Location = &p
	f.hub.Restore(ch)

	wgs := f.connect(t, viewer, "map=1")
	gcj := f.connect(t, viewer, "map=1", "coordsys=gcj02")
	ws, gs := wgs.snapshot(0, "INC-A"), gcj.snapshot(0, "INC-A")
	if ws.CoordSys != event.CoordWGS84 || *ws.Incidents[0].Location != p {
		t.Errorf("wgs84 snapshot: coordsys %q location %+v", ws.CoordSys, ws.Incidents[0].Location)
	}
	if want := city.WGS84ToGCJ02(p); gs.CoordSys != event.CoordGCJ02 || *gs.Incidents[0].Location != want {
		t.Errorf("gcj02 snapshot: coordsys %q location %+v, want %+v", gs.CoordSys, gs.Incidents[0].Location, want)
	}
	wm, gm := wgs.expect(cockpit.FrameMap), gcj.expect(cockpit.FrameMap)
	if wm.CoordSys != event.CoordWGS84 || gm.CoordSys != event.CoordGCJ02 {
		t.Errorf("map frames say %q and %q", wm.CoordSys, gm.CoordSys)
	}
	wantG, _ := m.GridsGeoJSONIn(event.CoordGCJ02)
	if !strings.Contains(string(gm.Grids), `"coordsys":"gcj02"`) || len(gm.Grids) != len(wantG) || string(wm.Grids) == string(gm.Grids) {
		t.Errorf("gcj02 map frame does not carry the gcj02 grid layer")
	}
	if !strings.Contains(string(wm.raw), `"0202":"道路积水"`) {
		t.Errorf("map frame lacks the category names")
	}

	f.change(t, incident("INC-B", 1, event.StatusNew, "D1", "G1"))
	f.hub.HandleIncidentChange(context.Background(), func() event.IncidentChange {
		c := incident("INC-A", 2, event.StatusDispatched, "D1", "G1")
		c.Incident.Location = &p
		return c
	}())
	f.flush()
	if d := gcj.delta(1, list("INC-A", "INC-B"), nil); *d.Upsert[0].Location != city.WGS84ToGCJ02(p) {
		t.Errorf("gcj02 delta location %+v", d.Upsert[0].Location)
	}
	if s := f.hub.Stats(); s.Subscriptions != 2 {
		t.Errorf("%d subscriptions, want one per coordinate system", s.Subscriptions)
	}
}

// KPIs are computed on the server for the subscription's scope and filter.
func TestKPIs(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	T := clock.Now()
	f := start(t, cockpit.Config{Now: clock.Now, StageLimits: cockpit.StageLimits{
		event.StageDispatch: {event.SeverityRed: 10 * time.Minute, event.SeverityOrange: 30 * time.Minute, event.SeverityYellow: time.Hour},
		event.StageSignFor:  {event.SeverityRed: 15 * time.Minute, event.SeverityOrange: 30 * time.Minute, event.SeverityYellow: time.Hour},
		event.StageHandle:   {event.SeverityRed: 2 * time.Hour, event.SeverityOrange: 12 * time.Hour, event.SeverityYellow: 24 * time.Hour},
	}})
	ev := func(typ, district, device, status string, at time.Time) event.Event {
		e := event.Event{ID: fmt.Sprint(at.UnixNano(), device), Type: typ, Received: at,
			Area: event.Area{District: district, Street: district + "001", Grid: district + "-G"}}
		if typ == event.TypeSensorReading {
			e.Sensor = &event.SensorReading{DeviceID: device, Kind: "water_level", Status: status}
		}
		return e
	}
	events := []event.Event{
		ev(event.TypeSensorReading, "D1", "S1", "ok", T.Add(-2*time.Second)),
		ev(event.TypeSensorReading, "D2", "S2", "offline", T.Add(-3*time.Second)),
		ev(event.TypeSensorReading, "D1", "S3", "ok", T.Add(-20*time.Minute)), // known, silent too long
		ev(event.TypeVideoDetection, "D2", "", "", T.Add(-65*time.Second)),    // before the chart
		ev(event.TypeVideoDetection, "D2", "", "", T.Add(-65*time.Second)),
	}
	for i := range 4 {
		events = append(events, ev(event.TypeHotlineTicket, "D1", "", "", T.Add(-time.Second).Add(time.Duration(i)*time.Millisecond)))
	}
	for _, e := range events {
		if err := f.hub.HandleEvent(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}

	step := func(id string, v int64, st event.Status, sev, district, grid string, at time.Time, clk *event.Clock) {
		ch := incident(id, v, st, district, grid)
		ch.Incident.Severity = sev
		ch.Incident.CreatedAt = T.Add(-time.Hour)
		ch.Incident.Area.GridName = grid + "网格"
		ch.Incident.Clock = clk
		ch.Change.At = at
		f.change(t, ch)
	}
	// INC-1 (red): dispatched in 10 min (limit 10 min: on time), signed for 10 min later but
	// after its sign-for clock was due (late), resolved in 30 min (limit 2 h: on time).
	step("INC-1", 1, event.StatusNew, event.SeverityRed, "D1", "G1", T.Add(-time.Hour), nil)
	step("INC-1", 2, event.StatusDispatched, event.SeverityRed, "D1", "G1", T.Add(-50*time.Minute),
		&event.Clock{Stage: event.StageSignFor, DueAt: T.Add(-45 * time.Minute)})
	step("INC-1", 3, event.StatusAccepted, event.SeverityRed, "D1", "G1", T.Add(-40*time.Minute), nil)
	step("INC-1", 4, event.StatusResolved, event.SeverityRed, "D1", "G1", T.Add(-10*time.Minute), nil)
	step("INC-2", 1, event.StatusNew, event.SeverityYellow, "D2", "G5", T.Add(-time.Minute), nil)
	step("INC-3", 1, event.StatusNew, event.SeverityOrange, "D1", "G1", T.Add(-time.Minute), nil)

	all := f.connect(t, admin, "kpi=1")
	all.snapshot(0, "INC-1", "INC-2", "INC-3")
	k := all.expect(cockpit.FrameKPI).KPI
	eq := func(what string, got, want any) {
		t.Helper()
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s = %v, want %v", what, got, want)
		}
	}
	eq("events per second", k.EventsPerSecond, map[string]float64{"sensor": 0.4, "hotline": 0.8, "video": 0, "total": 1.2})
	eq("sensor series tail", k.EventsSeries.Counts["sensor"][56:], []int{0, 1, 1, 0})
	eq("hotline series tail", k.EventsSeries.Counts["hotline"][58:], []int{0, 4})
	eq("video series", slices.Max(k.EventsSeries.Counts["video"]), 0)
	eq("sensors", k.Sensors, cockpit.SensorKPI{Online: 1, Known: 3})
	eq("open", k.Open.Total, 3)
	eq("by severity", k.Open.BySeverity, map[string]int{"orange": 1, "red": 1, "yellow": 1})
	eq("by district", k.Open.ByDistrict, map[string]int{"D1": 2, "D2": 1})
	eq("by status", k.Open.ByStatus, map[string]int{"new": 2, "resolved": 1})
	eq("hot spots", k.HotSpots, []cockpit.HotSpot{{Grid: "G1", GridName: "G1网格", Open: 2, Red: 1}, {Grid: "G5", GridName: "G5网格", Open: 1}})
	rate := func(s cockpit.StageKPI) string {
		if s.OnTimeRate == nil {
			return fmt.Sprintf("%d/%.0fs/-", s.Count, s.MeanSeconds)
		}
		return fmt.Sprintf("%d/%.0fs/%.2f", s.Count, s.MeanSeconds, *s.OnTimeRate)
	}
	eq("dispatch", rate(k.Stages[event.StageDispatch]), "1/600s/1.00")
	eq("sign_for", rate(k.Stages[event.StageSignFor]), "1/600s/0.00")
	eq("handle", rate(k.Stages[event.StageHandle]), "1/1800s/1.00")
	eq("verify", rate(k.Stages[event.StageVerify]), "0/0s/-")

	d1 := f.connect(t, viewer, "kpi=1", "district=D1")
	d1.snapshot(0, "INC-1", "INC-3")
	k1 := d1.expect(cockpit.FrameKPI).KPI
	eq("D1 events per second", k1.EventsPerSecond, map[string]float64{"sensor": 0.2, "hotline": 0.8, "video": 0, "total": 1})
	eq("D1 sensors", k1.Sensors, cockpit.SensorKPI{Online: 1, Known: 2})
	eq("D1 open", k1.Open.Total, 2)

	// Later KPI frames go to the clients that asked for them, and only to them.
	plain := f.connect(t, admin)
	plain.next()
	clock.Advance(time.Minute)
	cockpit.PublishKPIs(f.hub)
	if k := all.expect(cockpit.FrameKPI).KPI; k.EventsPerSecond["total"] != 0 {
		t.Errorf("a minute later the rate is %v, want 0", k.EventsPerSecond["total"])
	}
	f.change(t, incident("INC-9", 1, event.StatusNew, "D1", "G1"))
	f.flush()
	plain.delta(1, list("INC-9"), nil)
}

// /ws/worker carries a grid worker's own tasks with the same snapshot, deltas and resume.
func TestWorkerFeed(t *testing.T) {
	t.Parallel()
	f := start(t, cockpit.Config{})
	w := auth.Claims{Subject: "w-1", Role: auth.RoleWorker, Grids: []string{"G1"}}
	assigned := func(ch event.IncidentChange, worker string) event.IncidentChange {
		ch.Incident.Assignment = event.Assignment{WorkerID: worker, Grid: ch.Incident.Area.Grid}
		return ch
	}
	f.hub.Restore(assigned(incident("INC-A", 1, event.StatusDispatched, "D1", "G1"), "w-2")) // in their grid
	f.hub.Restore(assigned(incident("INC-B", 1, event.StatusDispatched, "D1", "G7"), "w-1")) // a neighbour's grid, theirs
	f.hub.Restore(incident("INC-C", 1, event.StatusNew, "D1", "G2"))                         // not theirs
	c := f.connectTo(t, "/ws/worker", w)
	snap := c.snapshot(0, "INC-A", "INC-B")
	if snap.Feed != "worker" {
		t.Errorf("feed %q", snap.Feed)
	}
	f.change(t, assigned(incident("INC-C", 2, event.StatusDispatched, "D1", "G2"), "w-1"))
	f.flush()
	c.delta(1, list("INC-C"), nil)
	_ = c.ws.Close()
	f.change(t, withCaller(assigned(incident("INC-B", 2, event.StatusClosed, "D1", "G7"), "w-1")))
	f.flush()
	f.change(t, withCaller(assigned(incident("INC-D", 1, event.StatusDispatched, "D1", "G1"), "")))
	f.flush()

	back := f.connectTo(t, "/ws/worker", w, "epoch="+snap.Epoch, "seq=1")
	back.expect(cockpit.FrameResumed)
	if d := back.delta(2, nil, list("INC-B")); d.Remove[0].Reason != cockpit.RemoveClosed {
		t.Errorf("closed task removed with reason %q", d.Remove[0].Reason)
	}
	d := back.delta(3, list("INC-D"), nil)
	if d.Upsert[0].Reports[0].Caller.Phone != "138****5678" {
		t.Errorf("worker sees caller %+v, want masked", d.Upsert[0].Reports[0].Caller)
	}
	// Another worker's feed is another subscription, numbered on its own: w-2 sees INC-A
	// (their task) only.
	other := f.connectTo(t, "/ws/worker", auth.Claims{Subject: "w-2", Role: auth.RoleWorker, Grids: []string{"G3"}})
	other.snapshot(0, "INC-A")
}

func TestCloseGoingAway(t *testing.T) {
	t.Parallel()
	f := start(t, cockpit.Config{})
	a, b := f.connect(t, admin), f.connect(t, operator)
	a.snapshot(0)
	b.snapshot(0)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.hub.Run(ctx) }()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	for _, c := range []*client{a, b} {
		_ = c.ws.SetReadDeadline(time.Now().Add(hangGuard))
		if _, _, err := c.ws.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseGoingAway) {
			t.Fatalf("after Run ended: %v, want going away", err)
		}
	}
	if n := f.hub.Stats().Connections; n != 0 {
		t.Errorf("%d connections after Close", n)
	}
	_, resp, err := f.dial(nil, authtest.Token(t, f.iss, admin), nil)
	if err == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("dial after Close: %v %s, want 503", err, body(resp))
	}
	// Changes after Close go nowhere and do not block.
	f.change(t, incident("INC-A", 1, event.StatusNew, "D1", "G1"))
	f.flush()
}

// Run ticks by itself: a change reaches a connected screen without anyone calling Flush.
func TestRunFlushesOnItsOwn(t *testing.T) {
	t.Parallel()
	f := start(t, cockpit.Config{FlushInterval: 5 * time.Millisecond, KPIInterval: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.hub.Run(ctx) }()
	defer func() { cancel(); <-done }()
	c := f.connect(t, admin)
	c.snapshot(0)
	f.change(t, incident("INC-A", 1, event.StatusNew, "D1", "G1"))
	c.delta(1, list("INC-A"), nil)
}

func TestReadLimit(t *testing.T) {
	t.Parallel()
	f := start(t, cockpit.Config{ReadLimit: 1024})
	c := f.connect(t, admin)
	c.snapshot(0)
	c.send(`{"type":"subscribe"}`)
	c.snapshot(0) // a small message is fine
	c.send(strings.Repeat(" ", 4096))
	_ = c.ws.SetReadDeadline(time.Now().Add(hangGuard))
	if _, _, err := c.ws.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseMessageTooBig) {
		t.Fatalf("after an oversized message: %v, want close 1009", err)
	}
}

func TestPings(t *testing.T) {
	t.Parallel()
	f := start(t, cockpit.Config{PingInterval: 10 * time.Millisecond})
	c := f.connect(t, admin)
	pinged := make(chan struct{}, 1)
	c.ws.SetPingHandler(func(data string) error {
		select {
		case pinged <- struct{}{}:
		default:
		}
		return c.ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
	})
	c.snapshot(0)
	go func() {
		for {
			if _, _, err := c.ws.ReadMessage(); err != nil {
				return
			}
		}
	}()
	select {
	case <-pinged:
	case <-time.After(hangGuard):
		t.Fatal("no ping")
	}
}

func TestPage(t *testing.T) {
	t.Parallel()
	f := start(t, cockpit.Config{})
	cases := []struct {
		path, wantType, wantBody string
		status                   int
	}{
		{"/", "text/html", "领导驾驶舱", 200},
		{"/cockpit/app.js", "javascript", "access_token", 200},
		{"/cockpit/style.css", "text/css", "1920px", 200},
		{"/cockpit/", "", "", 404},
		{"/cockpit/nothing.js", "", "", 404},
		{"/index.html", "", "", 404},
	}
	for _, tc := range cases {
		resp, err := http.Get(f.srv.URL + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		b := body(resp)
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("GET %s: %s", tc.path, b)
			continue
		}
		if tc.status != 200 {
			continue
		}
		if !strings.Contains(resp.Header.Get("Content-Type"), tc.wantType) || !strings.Contains(b, tc.wantBody) {
			t.Errorf("GET %s: type %q, body lacks %q", tc.path, resp.Header.Get("Content-Type"), tc.wantBody)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
			t.Errorf("GET %s: CSP %q", tc.path, csp)
		}
	}
}

// Subscriptions are bounded: beyond MaxSubscriptions an idle one is forgotten, and when none
// is idle a new one is refused (the client keeps its current one).
func TestMaxSubscriptions(t *testing.T) {
	t.Parallel()
	f := start(t, cockpit.Config{MaxSubscriptions: 2, ReservedShare: -1}) // the whole table, no share kept
	a := f.connect(t, viewer, "district=D1")
	a.snapshot(0)
	b := f.connect(t, viewer, "district=D2")
	b.snapshot(0)
	b.send(`{"type":"subscribe","filter":{"district":["D3"]}}`)
	if e := b.expect(cockpit.FrameError); e.Code != cockpit.ErrCodeUnavailable {
		t.Fatalf("a third subscription: %s", e.raw)
	}
	ws, resp, err := websocket.DefaultDialer.Dial(f.url()+"?"+query(authtest.Token(t, f.iss, viewer), "district=D4"), nil)
	if err != nil {
		t.Fatalf("dial: %v %s", err, body(resp))
	}
	defer ws.Close()
	_ = ws.SetReadDeadline(time.Now().Add(hangGuard))
	if _, _, err := ws.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseTryAgainLater) {
		t.Fatalf("connecting with a third subscription: %v, want close 1013", err)
	}
	// D1 becomes idle: it makes room.
	_ = a.ws.Close()
	waitFor(t, func() bool { return f.hub.Stats().Connections == 1 })
	b.send(`{"type":"subscribe","filter":{"district":["D3"]}}`)
	b.snapshot(0)
	if s := f.hub.Stats(); s.Subscriptions != 2 {
		t.Fatalf("%d subscriptions, want 2", s.Subscriptions)
	}
}
