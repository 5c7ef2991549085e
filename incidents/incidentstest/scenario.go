package incidentstest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/urbanbrain/urbanbrain/dispatch"
	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/incidents"
	"github.com/urbanbrain/urbanbrain/rules/engine"
	"github.com/urbanbrain/urbanbrain/storage"
)

// Scenario is a scripted, time-driven test of the work-order loop in the style of
// Alertmanager's acceptance tests: the incidents service and the dispatcher run on a fake
// clock, joined by an in-memory bus. What a handler returns is written to the bus by topic, as
// the composition root's routes bind it, and every record is delivered in the order written
// as the routes would deliver it (city.commands → incidents, city.incidents → dispatch).
// Time moves only when the script says so:
//
//	s := incidentstest.NewScenario(t, incidentstest.Options{Roster: m})
//	s.At(0).Push(sensorAlarm)
//	s.At(30 * time.Second).Push(call)
//	s.At(3 * time.Hour)
//	s.WantChange(id, incidents.ActionSLABreach, 2*time.Hour, 2*time.Hour+s.Step)
//
// Moving to a later time ticks the SLA clocks at every Step on the way, so a change the
// clocks cause is stamped within one Step of when it was due.
type Scenario struct {
	T     testing.TB
	Start time.Time
	Step  time.Duration
	Clock *clockwork.FakeClock
	Bus   *Bus
	Svc   *incidents.Service
	Disp  *dispatch.Dispatcher

	opts      Options
	delivered int
	restarts  int
	sent      int // commands sent by Do, for their ids
}

// Options configure a Scenario. Roster is required.
type Options struct {
	Start    time.Time           // default Tuesday 2025-06-03 10:00 Asia/Shanghai
	Step     time.Duration       // tick interval, default 10s
	Policy   *incidents.Policy   // default incidents.DefaultPolicy()
	Roster   dispatch.Roster     // the responsibility map
	Dispatch dispatch.Config     // Now is set by the scenario
	NewID    func(string) string // default INC-<street>-0001, -0002, ...
	// Engine, if set, runs the rules in the loop: Send pushes events through it, and every
	// tick runs its clock (see DemoEngine).
	Engine *engine.Engine
}

// Tuesday10 is the default start: a working morning, day shifts on duty.
var Tuesday10 = time.Date(2025, 6, 3, 10, 0, 0, 0, time.FixedZone("CST", 8*3600))

// NewScenario starts the loop at opts.Start.
func NewScenario(t testing.TB, opts Options) *Scenario {
	t.Helper()
	if opts.Start.IsZero() {
		opts.Start = Tuesday10
	}
	if opts.Step == 0 {
		opts.Step = 10 * time.Second
	}
	if opts.Policy == nil {
		p := incidents.DefaultPolicy()
		opts.Policy = &p
	}
	if opts.NewID == nil {
		var mu sync.Mutex
		n := 0
		opts.NewID = func(street string) string {
			mu.Lock()
			defer mu.Unlock()
			n++
			return fmt.Sprintf("INC-%s-%04d", street, n)
		}
	}
	s := &Scenario{T: t, Start: opts.Start.UTC(), Step: opts.Step, Clock: clockwork.NewFakeClockAt(opts.Start.UTC()),
		Bus: &Bus{}, opts: opts}
	s.build()
	return s
}

func (s *Scenario) build() {
	s.T.Helper()
	svc, err := incidents.New(incidents.Config{Now: s.Clock.Now, NewID: s.opts.NewID, Policy: *s.opts.Policy}, nil)
	if err != nil {
		s.T.Fatal(err)
	}
	dc := s.opts.Dispatch
	dc.Now = s.Clock.Now
	d, err := dispatch.New(dc, s.opts.Roster, nil)
	if err != nil {
		s.T.Fatal(err)
	}
	s.Svc, s.Disp = svc, d
}

// Now is the scenario's time as an offset from Start.
func (s *Scenario) Now() time.Duration { return s.Clock.Now().Sub(s.Start) }

// At moves the clock to Start+d, ticking and delivering at every Step on the way. It fails the
// test if d is in the past.
func (s *Scenario) At(d time.Duration) *Scenario {
	s.T.Helper()
	if d < s.Now() {
		s.T.Fatalf("At(%s): the scenario is already at %s", d, s.Now())
	}
	for s.Now() < d {
		step := min(s.Step, d-s.Now())
		s.Clock.Advance(step)
		s.tick()
	}
	s.tick()
	return s
}

func (s *Scenario) tick() {
	s.T.Helper()
	if e := s.opts.Engine; e != nil {
		out, err := e.Tick(s.T.Context(), s.Clock.Now())
		if err != nil {
			s.T.Fatalf("at %s rules tick: %v", s.Now(), err)
		}
		s.Bus.Write(s.T, out)
	}
	s.Bus.Write(s.T, s.Svc.Tick(s.Clock.Now()))
	s.Pump()
}

// Pump delivers every record not yet delivered, and those they cause, in the order written.
func (s *Scenario) Pump() {
	s.T.Helper()
	ctx := s.T.Context()
	for s.delivered < s.Bus.Len() {
		r := s.Bus.Records("")[s.delivered]
		s.delivered++
		var (
			out event.Outputs
			err error
		)
		switch r.Topic {
		case event.TopicSignals:
			out, err = s.Svc.HandleSignal(ctx, Decode[event.Signal](s.T, r, event.TypeSignal))
		case event.TopicCommands:
			out, err = s.Svc.HandleCommand(ctx, Decode[event.Command](s.T, r, event.TypeCommand))
		case event.TopicIncidents:
			out, err = s.Disp.HandleIncidentChange(ctx, Decode[event.IncidentChange](s.T, r, event.TypeIncidentChanged))
		}
		if err != nil {
			s.T.Fatalf("at %s delivering %s: %v", s.Now(), r.Topic, err)
		}
		s.Bus.Write(s.T, out)
	}
}

// Push hands a signal to the incidents service, as the rules engine would, and delivers
// what follows.
func (s *Scenario) Push(sig event.Signal) *Scenario {
	s.T.Helper()
	if sig.At.IsZero() {
		sig.At = s.Clock.Now()
	}
	if sig.Event.Time.IsZero() {
		sig.Event.Time = s.Clock.Now()
	}
	out, err := s.Svc.HandleSignal(s.T.Context(), sig)
	if err != nil {
		s.T.Fatalf("at %s HandleSignal(%s): %v", s.Now(), sig.ID, err)
	}
	s.Bus.Write(s.T, out)
	s.Pump()
	return s
}

// Do sends a command through city.commands, as the API would, and returns its result. A
// command without an id gets "<n>:<action>@<now>", unique in the scenario.
func (s *Scenario) Do(cmd event.Command) event.CommandResult {
	s.T.Helper()
	if cmd.ID == "" {
		s.sent++
		cmd.ID = fmt.Sprintf("%d:%s@%s", s.sent, cmd.Action, s.Now())
	}
	cmd.At = s.Clock.Now()
	value, err := event.Encode(event.TypeCommand, cmd.ID, cmd.At, cmd)
	if err != nil {
		s.T.Fatal(err)
	}
	if err := s.Bus.Publish(s.T.Context(), event.TopicCommands, event.IncidentStreet(cmd.IncidentID), value); err != nil {
		s.T.Fatal(err)
	}
	s.Pump()
	for _, r := range slices.Backward(s.Bus.Results(s.T)) {
		if r.CommandID == cmd.ID {
			return r
		}
	}
	s.T.Fatalf("at %s command %s (%s) got no result", s.Now(), cmd.ID, cmd.Action)
	return event.CommandResult{}
}

// WantOK runs cmd and fails the test unless it succeeds; it returns the incident after it.
func (s *Scenario) WantOK(cmd event.Command) event.Incident {
	s.T.Helper()
	res := s.Do(cmd)
	if !res.OK || res.Incident == nil {
		s.T.Fatalf("at %s %s by %s on %s: refused %s: %s", s.Now(), cmd.Action, cmd.Actor.Subject, cmd.IncidentID, res.Code, res.Error)
	}
	return *res.Incident
}

// WantRefused runs cmd and fails the test unless it is refused with code; it also checks that
// the refusal changed nothing on the changelog and is on the audit log.
func (s *Scenario) WantRefused(cmd event.Command, code string) event.CommandResult {
	s.T.Helper()
	before := len(s.Bus.Records(event.TopicIncidents))
	res := s.Do(cmd)
	if res.OK || res.Code != code {
		s.T.Fatalf("at %s %s by %s on %s: got ok=%v code %q (%s), want refused with %q",
			s.Now(), cmd.Action, cmd.Actor.Subject, cmd.IncidentID, res.OK, res.Code, res.Error, code)
	}
	if after := len(s.Bus.Records(event.TopicIncidents)); after != before {
		s.T.Errorf("refused %s wrote %d changelog records", cmd.Action, after-before)
	}
	found := false
	for _, a := range s.Audit() {
		if a.CommandID == res.CommandID && !a.OK && a.Code == code && a.Actor.Subject == cmd.Actor.Subject {
			found = true
		}
	}
	if !found {
		s.T.Errorf("refused %s (%s) is not on the audit log", cmd.Action, res.CommandID)
	}
	return res
}

// Restart replaces the incidents service and the dispatcher with new ones rebuilt from the
// changelog, as a process restart does; records already delivered stay delivered.
func (s *Scenario) Restart() {
	s.T.Helper()
	s.build()
	for _, c := range s.Bus.Changes(s.T) {
		s.Svc.Restore(c)
		s.Disp.Restore(c)
	}
	s.restarts++
	s.tick()
}

// Get is the incident as the service holds it now.
func (s *Scenario) Get(id string) event.Incident {
	s.T.Helper()
	inc, ok := s.Svc.Get(id)
	if !ok {
		s.T.Fatalf("no incident %s", id)
	}
	return inc
}

// Explained is inc as a reader of the changelog shows it: each report explained as the
// store's detail explains it (storage.ExplainReports), from this scenario's changelog.
func (s *Scenario) Explained(inc event.Incident) event.Incident {
	timeline := func(_ context.Context, id string) ([]storage.TimelineEntry, error) {
		var t []storage.TimelineEntry
		for _, c := range s.Changes(id) {
			t = append(t, storage.TimelineEntry{Version: c.Incident.Version, Change: c.Change})
		}
		return t, nil
	}
	d := storage.IncidentDetail{Incident: inc}
	d.Timeline, _ = timeline(context.Background(), inc.ID)
	if err := storage.ExplainReports(context.Background(), &d, timeline); err != nil {
		s.T.Fatal(err)
	}
	return d.Incident
}

// Changes is the changelog of one incident ("" for all), oldest first.
func (s *Scenario) Changes(id string) []event.IncidentChange {
	var out []event.IncidentChange
	for _, c := range s.Bus.Changes(s.T) {
		if id == "" || c.Incident.ID == id {
			out = append(out, c)
		}
	}
	return out
}

// Actions is the sequence of change actions of one incident.
func (s *Scenario) Actions(id string) []string {
	var out []string
	for _, c := range s.Changes(id) {
		out = append(out, c.Change.Action)
	}
	return out
}

// WantActions fails the test unless the incident's changelog is exactly these actions and
// its versions run 1, 2, 3, ... without a gap.
func (s *Scenario) WantActions(id string, actions ...string) {
	s.T.Helper()
	if got := s.Actions(id); !slices.Equal(got, actions) {
		s.T.Errorf("changelog of %s:\n got %s\nwant %s", id, strings.Join(got, " → "), strings.Join(actions, " → "))
	}
	for i, c := range s.Changes(id) {
		if c.Incident.Version != int64(i+1) {
			s.T.Errorf("changelog of %s: record %d has version %d", id, i, c.Incident.Version)
		}
	}
}

// WantChange fails the test unless incident id has a change with this action stamped between
// Start+lo and Start+hi (inclusive), and returns the first such change.
func (s *Scenario) WantChange(id, action string, lo, hi time.Duration) event.IncidentChange {
	s.T.Helper()
	var seen []string
	for _, c := range s.Changes(id) {
		if c.Change.Action != action {
			continue
		}
		at := c.Change.At.Sub(s.Start)
		if at >= lo && at <= hi {
			return c
		}
		seen = append(seen, at.String())
	}
	s.T.Fatalf("%s: no %q change between t=%s and t=%s (seen at %v)", id, action, lo, hi, seen)
	return event.IncidentChange{}
}

// WantNoChange fails the test if incident id has a change with this action between Start+lo
// and Start+hi.
func (s *Scenario) WantNoChange(id, action string, lo, hi time.Duration) {
	s.T.Helper()
	for _, c := range s.Changes(id) {
		if at := c.Change.At.Sub(s.Start); c.Change.Action == action && at >= lo && at <= hi {
			s.T.Errorf("%s: unexpected %q at t=%s (nothing wanted between t=%s and t=%s)", id, action, at, lo, hi)
		}
	}
}

// Audit is the audit log (city.audit), oldest first.
func (s *Scenario) Audit() []event.AuditRecord {
	return s.Bus.Audit(s.T)
}

// AuditOf is the audit log of one incident.
func (s *Scenario) AuditOf(id string) []event.AuditRecord {
	var out []event.AuditRecord
	for _, a := range s.Audit() {
		if a.IncidentID == id {
			out = append(out, a)
		}
	}
	return out
}

// WantAudit fails the test unless the audit log of incident id has a record for every change
// made by a command (each success, with its actor and from/to states) and, in order, exactly
// these refusals as "action:code".
func (s *Scenario) WantAudit(id string, refusals ...string) {
	s.T.Helper()
	audit := s.AuditOf(id)
	byCommand := map[string]event.AuditRecord{}
	var refused []string
	for _, a := range audit {
		if a.OK {
			byCommand[a.CommandID] = a
		} else {
			refused = append(refused, a.Action+":"+a.Code)
		}
	}
	for _, c := range s.Changes(id) {
		if c.Change.CommandID == "" {
			continue // opened or linked by a signal: not a command
		}
		a, ok := byCommand[c.Change.CommandID]
		if !ok {
			s.T.Errorf("audit of %s: no record of command %s (%s)", id, c.Change.CommandID, c.Change.Action)
			continue
		}
		if a.Actor.Subject != c.Change.Actor.Subject || a.Action != c.Change.Action {
			s.T.Errorf("audit of %s: command %s recorded as %s by %s, changelog says %s by %s", id,
				c.Change.CommandID, a.Action, a.Actor.Subject, c.Change.Action, c.Change.Actor.Subject)
		}
		if a.IncidentID == c.Incident.ID && (a.From != c.Change.From || a.To != c.Change.To) {
			s.T.Errorf("audit of %s: command %s recorded %s → %s, changelog says %s → %s", id,
				c.Change.CommandID, a.From, a.To, c.Change.From, c.Change.To)
		}
	}
	if !slices.Equal(refused, refusals) {
		s.T.Errorf("audit of %s: refusals\n got %v\nwant %v", id, refused, refusals)
	}
}

// Dispatches are the dispatch records (city.dispatch) of one incident.
func (s *Scenario) Dispatches(id string) []event.Dispatch {
	var out []event.Dispatch
	for _, d := range s.Bus.Dispatches(s.T) {
		if d.IncidentID == id {
			out = append(out, d)
		}
	}
	return out
}

// Open is the one open incident, failing the test if there is not exactly one.
func (s *Scenario) Open() event.Incident {
	s.T.Helper()
	open := s.Svc.Open()
	if len(open) != 1 {
		ids := make([]string, 0, len(open))
		for _, o := range open {
			ids = append(ids, o.ID)
		}
		s.T.Fatalf("at %s open incidents %v, want exactly one", s.Now(), ids)
	}
	return open[0]
}
