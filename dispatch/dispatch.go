package dispatch

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/urbanbrain/urbanbrain/city"
	"github.com/urbanbrain/urbanbrain/event"
)

// Roster is the part of the city map dispatch reads; *city.Map satisfies it.
type Roster interface {
	Workers(grid string) []city.Worker
	Grid(code string) (city.Grid, bool)
	Neighbours(grid string) []string
	Supervisor(community string) (city.Worker, bool)
	AgencyFor(category string) (city.Agency, bool)
	Agency(code string) (city.Agency, bool)
}

// Config configures a Dispatcher. The zero value is usable.
type Config struct {
	// Now is the clock that decides who is on duty (default time.Now). Records carry UTC.
	Now func() time.Time
	// FallbackAgency is the code of the agency that takes a category nobody owns in the
	// 权责清单 (default "street", the 街道办事处). If the roster does not know it, such an
	// incident goes to its worker without an agency.
	FallbackAgency string
	// MaxReturns is how many returns (退单) an incident may have before it stops bouncing
	// between workers and goes to the street supervisor (default 2: the second return).
	MaxReturns int
	// StreetSupervisor names the supervisor of a street (街道监督员), who takes incidents that
	// were returned MaxReturns times or that nobody in the community signed for. The roster
	// has community supervisors only; the default is the street's duty post "SS-<street>".
	StreetSupervisor func(area event.Area) (id, name string)
	// RetryAfter is how long a dispatch may go unanswered — the incident still awaiting
	// dispatch on the changelog — before Retry decides it again under a new command id (default
	// 2 minutes): its command was refused or lost.
	RetryAfter time.Duration
}

func (c *Config) setDefaults() {
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.FallbackAgency == "" {
		c.FallbackAgency = "street"
	}
	if c.MaxReturns == 0 {
		c.MaxReturns = 2
	}
	if c.StreetSupervisor == nil {
		c.StreetSupervisor = StreetDutyPost
	}
	if c.RetryAfter == 0 {
		c.RetryAfter = 2 * time.Minute
	}
}

// StreetDutyPost is the default street supervisor (街道监督员): the street's duty post
// (city.StreetPost).
func StreetDutyPost(a event.Area) (id, name string) {
	w := city.StreetPost(a.Street, a.StreetName)
	return w.ID, w.Name
}

// Validate reports every problem of the configuration at once.
func (c Config) Validate() error {
	var errs []error
	if c.MaxReturns < 0 {
		errs = append(errs, fmt.Errorf("dispatch: MaxReturns %d is negative", c.MaxReturns))
	}
	if c.RetryAfter < 0 {
		errs = append(errs, fmt.Errorf("dispatch: RetryAfter %s is negative", c.RetryAfter))
	}
	return errors.Join(errs...)
}

// Dispatcher assigns new incidents. It is safe for concurrent use by the handlers of several
// partitions.
type Dispatcher struct {
	cfg    Config
	roster Roster
	log    *zap.Logger

	mu        sync.Mutex
	incidents map[string]tracked // by incident id, closed ones included (see tracked)
	load      map[string]int     // worker id → open incidents assigned to them

	stats struct {
		dispatched, untriaged, stale, redispatched, reassigned, escalated, retried atomic.Uint64
	}
}

// tracked is what the dispatcher knows of one incident. Closed incidents stay as tombstones
// holding their last version, so that a redelivered old change cannot count them again.
type tracked struct {
	version  int64
	worker   string          // whose load the incident counts in, "" if none
	decision *event.Dispatch // this dispatcher's decision while the incident is still new
	decided  int64           // the version the decision was made at
	round    int             // how many returns the incident had when it was decided
	// While the incident awaits dispatch on the changelog: the state to decide on, and since
	// when it waits for this dispatcher's command (its decision, or Restore) — Retry's input.
	awaiting *event.Incident
	since    time.Time
	retry    bool // decision is Retry's: its record goes out once the changelog shows it applied
	// landed is the record of Retry's decision, sent when version landedAt showed its command
	// applied (and sent again if that version is delivered again).
	landed   *event.Dispatch
	landedAt int64
}

// New returns a Dispatcher reading the roster.
func New(cfg Config, roster Roster, log *zap.Logger) (*Dispatcher, error) {
	cfg.setDefaults()
	var errs []error
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	if roster == nil {
		errs = append(errs, errors.New("dispatch: nil Roster"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	return &Dispatcher{
		cfg:       cfg,
		roster:    roster,
		log:       log,
		incidents: make(map[string]tracked),
		load:      make(map[string]int),
	}, nil
}

// Restore learns one changelog record while rebuilding on start: it counts the incident in its
// worker's load and never dispatches.
func (d *Dispatcher) Restore(rec event.IncidentChange) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if t, ok := d.incidents[rec.Incident.ID]; !ok || rec.Incident.Version > t.version {
		d.observe(rec.Incident)
		if inc := rec.Incident; awaitsDispatch(inc.Status) {
			// Still waiting for a dispatch, maybe one the previous owner sent and that was
			// refused or lost: Retry decides it if nothing changes it for RetryAfter.
			t := d.incidents[inc.ID]
			if t.decision == nil {
				t.awaiting, t.since = &inc, d.cfg.Now().UTC()
				d.incidents[inc.ID] = t
			}
		}
	}
}

// HandleIncidentChange is the city.incidents handler. It keeps the load counts and dispatches
// every new incident it holds no decision for: normally on its open, and after a restart (the
// decisions are not on the changelog) on the first change delivered at or after the version
// Restore reached. A dispatch is two outputs, in this order: the command (event.Command, for
// city.commands), which is what takes effect, and the record of why (event.Dispatch, for
// city.dispatch), both keyed by the incident's street. A redelivered change returns the same
// decision again, never a second opinion. It returns no error today; the error is the
// handlers' common shape.
func (d *Dispatcher) HandleIncidentChange(ctx context.Context, rec event.IncidentChange) (event.Outputs, error) {
	inc := rec.Incident
	d.mu.Lock()
	t, known := d.incidents[inc.ID]
	if known && inc.Version < t.version {
		d.mu.Unlock()
		d.stats.stale.Add(1)
		return nil, nil
	}
	var landed *event.Dispatch
	if t.retry && t.decision != nil && rec.Change.CommandID == "dispatch:"+t.decision.ID {
		// Retry's command took effect: now its record goes out (a retry whose first command
		// was only slow is refused, and leaves no record of a dispatch that never happened).
		landed = t.decision
	}
	if !known || inc.Version > t.version {
		d.observe(inc)
		t = d.incidents[inc.ID]
	}
	if landed != nil {
		t.landed, t.landedAt = landed, inc.Version
		d.incidents[inc.ID] = t
	}
	if t.landed != nil && t.landedAt == inc.Version {
		d.mu.Unlock()
		return event.Outputs{recordOf(inc, *t.landed)}, nil
	}
	if signForBreached(rec) {
		d.mu.Unlock()
		return d.reassign(inc), nil
	}
	if !awaitsDispatch(inc.Status) || (t.decision != nil && t.decided != inc.Version) {
		// Not for dispatch, or a report linked while our command is on its way.
		d.mu.Unlock()
		return nil, nil
	}
	dec, retry := t.decision, t.retry
	if dec == nil {
		// Decide once. The decision is kept, so a redelivery of the change (after a restart of
		// the stage, or a handler error later in the partition) returns the same one.
		var why string
		dec, why = d.decideFor(inc)
		if dec == nil {
			d.mu.Unlock()
			d.stats.untriaged.Add(1)
			d.log.Info("incident left for operator triage", zap.String("incident", inc.ID), zap.String("why", why),
				zap.String("trace_id", event.TraceID(ctx)))
			return nil, nil
		}
		d.hold(inc, dec)
	}
	d.mu.Unlock()

	d.stats.dispatched.Add(1)
	return d.dispatch(inc, *dec, retry), nil
}

// Retry decides again every incident of a street owns says this instance owns that has
// waited RetryAfter for a dispatch the changelog does not show: this dispatcher's command, or
// one the previous owner sent before a move (Restore), was refused or lost. The new decision
// goes out under a new command id, since the incident service answers a command id it has
// seen from memory; its record (city.dispatch, the agencies' webhook) goes out only once the
// changelog shows the command applied — a retry whose first command was only slow is refused
// and leaves no record of a dispatch that never happened. The composition root calls it on a
// timer and produces what it returns.
func (d *Dispatcher) Retry(now time.Time, owns func(street string) bool) event.Outputs {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out event.Outputs
	for id, t := range d.incidents {
		if t.awaiting == nil || now.Sub(t.since) < d.cfg.RetryAfter || !owns(event.IncidentStreet(id)) {
			continue
		}
		inc, since := *t.awaiting, now.Sub(t.since).Round(time.Second)
		d.move(t.worker, "")
		t.worker, t.decision, t.retry = "", nil, false
		d.incidents[id] = t
		dec, why := d.decideFor(inc)
		if dec == nil {
			d.log.Info("unanswered dispatch left for operator triage", zap.String("incident", id), zap.String("why", why))
			t.awaiting = nil
			d.incidents[id] = t
			continue
		}
		// Unique across retries and owners: a retry never meets a refusal remembered for
		// another one.
		dec.ID += "/retry-" + strconv.FormatInt(now.UnixMilli(), 10)
		dec.Reason = fmt.Sprintf("dispatch unanswered for %s, decided again: %s", since, dec.Reason)
		d.hold(inc, dec)
		t = d.incidents[id]
		t.since, t.retry = now, true
		d.incidents[id] = t
		d.stats.retried.Add(1)
		d.log.Warn("dispatch unanswered; decided again", zap.String("incident", id), zap.String("command", "dispatch:"+dec.ID),
			zap.String("worker", dec.Assignment.WorkerID))
		out = append(out, d.dispatch(inc, *dec, true)...)
	}
	return out
}

// observe records inc's latest state and moves it between workers' loads. d.mu is held.
func (d *Dispatcher) observe(inc event.Incident) {
	prev := d.incidents[inc.ID]
	next := tracked{version: inc.Version}
	switch {
	case !inc.Status.Open():
	case awaitsDispatch(inc.Status) && prev.decision != nil && prev.round == len(inc.Returns):
		// A report linked before our dispatch command landed: the command is still on its
		// way, so the incident still counts for the worker it names.
		next.worker, next.decision, next.decided, next.round = prev.worker, prev.decision, prev.decided, prev.round
		next.awaiting, next.since, next.retry = prev.awaiting, prev.since, prev.retry
	default:
		next.worker = inc.Assignment.WorkerID
	}
	d.move(prev.worker, next.worker)
	d.incidents[inc.ID] = next
}

// hold counts a decision in its worker's load before the dispatched change comes back, so a
// burst of incidents in one grid is spread rather than all given to the same worker. d.mu is
// held.
func (d *Dispatcher) hold(inc event.Incident, dec *event.Dispatch) {
	id := inc.ID
	t := d.incidents[id]
	d.move(t.worker, dec.Assignment.WorkerID)
	t.worker, t.decision, t.decided, t.round = dec.Assignment.WorkerID, dec, t.version, len(inc.Returns)
	t.awaiting, t.since, t.retry = &inc, dec.At, false
	d.incidents[id] = t
}

func (d *Dispatcher) move(from, to string) {
	if from == to {
		return
	}
	if from != "" {
		if d.load[from]--; d.load[from] <= 0 {
			delete(d.load, from)
		}
	}
	if to != "" {
		d.load[to]++
	}
}

// Load is the number of open incidents assigned (or being dispatched) to a worker.
func (d *Dispatcher) Load(workerID string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.load[workerID]
}

// Stats counts what the dispatcher has done since it started.
type Stats struct {
	Dispatched   uint64 // dispatch commands returned (repeated decisions included)
	Untriaged    uint64 // new incidents left for an operator: no grid, or nobody to send to
	Stale        uint64 // redelivered changes older than what was already seen
	Redispatched uint64 // returned incidents sent to someone else (or up to the street)
	Reassigned   uint64 // dispatches not signed for in time, sent to someone else
	Escalated    uint64 // sign-for timeouts with nobody left to send to: escalated instead
	Retried      uint64 // dispatches unanswered for RetryAfter, decided again (Retry)
}

// Stats returns a snapshot of the counters.
func (d *Dispatcher) Stats() Stats {
	return Stats{
		Dispatched:   d.stats.dispatched.Load(),
		Untriaged:    d.stats.untriaged.Load(),
		Stale:        d.stats.stale.Load(),
		Redispatched: d.stats.redispatched.Load(),
		Reassigned:   d.stats.reassigned.Load(),
		Escalated:    d.stats.escalated.Load(),
		Retried:      d.stats.retried.Load(),
	}
}

// decide chooses the owner of a new incident, or returns nil and why nobody. d.mu is held.
func (d *Dispatcher) decide(inc event.Incident) (*event.Dispatch, string) {
	return d.choose(inc, nil)
}

// choose is decide leaving out the workers in exclude (those who returned the incident, or
// did not sign for it). d.mu is held.
func (d *Dispatcher) choose(inc event.Incident, exclude []string) (*event.Dispatch, string) {
	if inc.Area.Grid == "" {
		return nil, "no grid: needs operator triage"
	}
	now := d.cfg.Now().UTC()
	a := event.Assignment{Grid: inc.Area.Grid}
	if ag, ok := d.agency(inc); ok {
		a.Agency, a.AgencyName = ag.Code, ag.Name
	}

	var (
		reason string
		level  string
	)
	if w, n, ok := d.leastLoaded(now, inc.Area.Grid, exclude); ok {
		a.WorkerID, a.WorkerName = w.ID, w.Name
		reason = fmt.Sprintf("grid %s on-duty least loaded (%d open)", inc.Area.Grid, n)
	} else if w, grid, tier, n, ok := d.neighbour(now, inc.Area, exclude); ok {
		a.WorkerID, a.WorkerName = w.ID, w.Name
		reason = fmt.Sprintf("neighbour grid %s (same %s) on-duty least loaded (%d open)", grid, tier, n)
	} else if w, ok := d.roster.Supervisor(inc.Area.Community); ok && !slices.Contains(exclude, w.ID) {
		a.WorkerID, a.WorkerName = w.ID, w.Name
		reason = "community supervisor"
		if !w.OnDuty(now) {
			reason += " (off duty)"
		}
		level = event.LevelCommunity
	} else if a.Agency != "" {
		reason = "no worker on duty nearby and no supervisor: agency only"
	} else {
		return nil, "no worker, supervisor or agency for grid " + inc.Area.Grid
	}
	return &event.Dispatch{
		ID:         inc.ID + "/" + strconv.FormatInt(inc.Version, 10),
		IncidentID: inc.ID,
		Assignment: a,
		Level:      level,
		Reason:     reason,
		At:         now,
	}, ""
}

// agency is the owner of the incident's category: the rule's routing hint if the roster knows
// it, else the 权责清单's owner, else the fallback agency.
func (d *Dispatcher) agency(inc event.Incident) (city.Agency, bool) {
	if hint := inc.Assignment.Agency; hint != "" {
		if ag, ok := d.roster.Agency(hint); ok {
			return ag, true
		}
		d.log.Debug("unknown agency hint ignored", zap.String("incident", inc.ID), zap.String("agency", hint))
	}
	if ag, ok := d.roster.AgencyFor(inc.Category); ok {
		return ag, true
	}
	return d.roster.Agency(d.cfg.FallbackAgency)
}

// leastLoaded is the on-duty worker of grid with the fewest open incidents, ties broken by ID
// so the choice is reproducible, and that worker's load.
func (d *Dispatcher) leastLoaded(now time.Time, grid string, exclude []string) (city.Worker, int, bool) {
	var best city.Worker
	found := false
	for _, w := range d.roster.Workers(grid) {
		if !w.OnDuty(now) || slices.Contains(exclude, w.ID) {
			continue
		}
		if !found || cmp.Or(cmp.Compare(d.load[w.ID], d.load[best.ID]), cmp.Compare(w.ID, best.ID)) < 0 {
			best, found = w, true
		}
	}
	return best, d.load[best.ID], found
}

// Neighbour tiers, nearest in the organisation first: a neighbouring grid of the same
// community, then of the same street, then of the same district. A grid of another district is
// never a neighbour for dispatch: its workers answer to another district's command centre, and
// the grid's own community supervisor comes before them.
const (
	tierCommunity = "community"
	tierStreet    = "street"
	tierDistrict  = "district"
)

var tiers = []string{tierCommunity, tierStreet, tierDistrict}

// tierOf is how close neighbouring grid n is to area in the organisation, or "" when n is in
// another district (or unknown to the roster).
func tierOf(area event.Area, n city.Grid) string {
	switch {
	case area.District == "" || n.District != area.District:
		return ""
	case n.Community == area.Community:
		return tierCommunity
	case n.Street == area.Street:
		return tierStreet
	default:
		return tierDistrict
	}
}

// neighbour is the least loaded on-duty worker over the grids around the incident's grid, in
// the nearest tier that has one (see tiers), the grid they were found in and the tier.
func (d *Dispatcher) neighbour(now time.Time, area event.Area, exclude []string) (city.Worker, string, string, int, bool) {
	byTier := make(map[string][]string, len(tiers))
	for _, g := range d.roster.Neighbours(area.Grid) {
		n, ok := d.roster.Grid(g)
		if !ok {
			continue
		}
		if t := tierOf(area, n); t != "" {
			byTier[t] = append(byTier[t], g)
		}
	}
	for _, tier := range tiers {
		var (
			best     city.Worker
			bestGrid string
			found    bool
		)
		for _, g := range byTier[tier] {
			w, n, ok := d.leastLoaded(now, g, exclude)
			if ok && (!found || cmp.Or(cmp.Compare(n, d.load[best.ID]), cmp.Compare(w.ID, best.ID)) < 0) {
				best, bestGrid, found = w, g, true
			}
		}
		if found {
			return best, bestGrid, tier, d.load[best.ID], true
		}
	}
	return city.Worker{}, "", "", 0, false
}

// dispatch is the dispatch command, which is what takes effect, then the record of why. A
// decision of Retry's has a command id of its own and no record yet (HandleIncidentChange
// sends it once the command took effect).
func (d *Dispatcher) dispatch(inc event.Incident, dec event.Dispatch, retry bool) event.Outputs {
	a := dec.Assignment
	cmd := event.Command{
		ID:         "dispatch:" + inc.ID,
		IncidentID: inc.ID,
		Action:     event.ActionDispatch,
		Actor:      event.SystemActor,
		Reason:     dec.Reason,
		Assignment: &a,
		Level:      dec.Level,
		At:         dec.At,
	}
	if inc.Status == event.StatusReturned {
		// Each return is a new round with its own decision; the first dispatch keeps the
		// plain id, so first-cut records stay idempotent.
		cmd.ID = fmt.Sprintf("dispatch:%s@%d", inc.ID, inc.Version)
	}
	if retry {
		cmd.ID = "dispatch:" + dec.ID
		return outputs(inc, cmd, nil)
	}
	return outputs(inc, cmd, &dec)
}

// outputs are a command and, when dec is not nil, the dispatch record that explains it, keyed
// by the incident's street.
func outputs(inc event.Incident, cmd event.Command, dec *event.Dispatch) event.Outputs {
	out := event.Outputs{{Key: inc.Area.Key(), ID: cmd.ID, Time: cmd.At, Data: cmd}}
	if dec != nil {
		out = append(out, recordOf(inc, *dec))
	}
	return out
}

// recordOf is the dispatch record output of dec, keyed by the incident's street.
func recordOf(inc event.Incident, dec event.Dispatch) event.Output {
	return event.Output{Key: inc.Area.Key(), ID: dec.ID, Time: dec.At, Data: dec}
}
