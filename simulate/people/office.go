package people

import (
	"context"
	"math"
	"math/rand/v2"
	"net/url"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/paulmach/orb"
	"github.com/paulmach/orb/geo"

	"github.com/urbanbrain/urbanbrain/city"
	"github.com/urbanbrain/urbanbrain/event"
)

// Chances of the office's less usual decisions.
const (
	reopenAtVerify  = 0.04 // 核查 fails: 重办
	refuseExtension = 0.2  // 延期驳回
	dissatisfied    = 0.08 // the caller is not satisfied at 回访: 重办
)

// office is the command centre: an operator (值班员) who triages what dispatch could not place,
// verifies (核查) and closes (结案) resolved work; a supervisor who decides extension requests
// (延期); and the 12345 call-back desk (回访). Each desk looks at its own queues in its own
// goroutine, so a slow one holds up no other.
type office struct {
	sim                             *Simulator
	operator, supervisor, callbacks *identity
	seed                            func() *rand.Rand
}

func (o *office) identities() []*identity { return []*identity{o.operator, o.supervisor, o.callbacks} }

// queue holds a desk's decisions by incident id until they are due.
type queue map[string]*decision

type decision struct {
	at     time.Time
	status event.Status
	who    *identity
	cmd    command
	inc    event.Incident // the latest state seen
	seen   time.Time
}

// desk is one person's view of one kind of work: what they list, how they decide, and how long
// they remember an incident that left the list.
type desk struct {
	who    *identity
	status string // the states listed, comma-separated
	// whole: the list is the whole queue (what is not on it has moved on). Otherwise the list is
	// what changed since the last look, and decisions are kept for keep after they were seen.
	whole bool
	keep  time.Duration
	plan  func(*rand.Rand, event.Incident, time.Time) *decision

	q     queue
	since time.Time
}

// listMargin is how far back an incremental list looks beyond its last look: the store shows a
// change a moment after it happened (a storage batch, 500 ms by default). Kept short because a
// supervisor's list shows callers' details, and every such answer is on the read audit.
const listMargin = 5 * time.Second

func (o *office) run(ctx context.Context) error {
	p := o.sim.pace
	start := o.sim.cfg.Now().Add(-time.Hour)
	operator := []*desk{
		{who: o.operator, status: string(event.StatusNew), whole: true, plan: o.planTriage},
		{who: o.operator, status: string(event.StatusResolved), whole: true, plan: o.planVerify},
		{who: o.operator, status: string(event.StatusVerified), whole: true, plan: o.planClose},
	}
	supervisor := []*desk{{who: o.supervisor, status: "accepted,in_progress", since: start,
		keep: p.wall(6*decideExtend.Median, time.Minute), plan: o.planExtension}}
	callbacks := []*desk{{who: o.callbacks, status: string(event.StatusClosed), since: start,
		keep: p.wall(6*callbackDelay.Median, time.Minute), plan: o.planCallback}}
	g, ctx := errgroup.WithContext(ctx)
	for _, w := range []struct {
		desks []*desk
		every time.Duration // human time between looks
	}{{operator, officeCheck}, {supervisor, 3 * officeCheck}, {callbacks, 2 * officeCheck}} {
		rng, desks, every := o.seed(), w.desks, p.wall(w.every, minWallBetween)
		g.Go(func() error {
			for {
				for _, d := range desks {
					if err := o.look(ctx, rng, d); err != nil {
						return nil // ctx done
					}
				}
				if err := sleep(ctx, every); err != nil {
					return nil
				}
			}
		})
	}
	return g.Wait()
}

// look lists the desk's incidents, plans what is new and does what is due.
func (o *office) look(ctx context.Context, rng *rand.Rand, d *desk) error {
	now := o.sim.cfg.Now()
	if d.q == nil {
		d.q = queue{}
	}
	path := "/api/v1/incidents?limit=1000&status=" + url.QueryEscape(d.status)
	if !d.whole {
		path += "&since=" + url.QueryEscape(d.since.Add(-listMargin).UTC().Format(time.RFC3339))
	}
	list, err := o.sim.list(ctx, d.who, path, "incidents")
	if err != nil {
		return err
	}
	d.since = now
	o.take(rng, d.q, list, now, d.plan)
	o.forget(d.q, now, d.keep)
	return o.due(ctx, d.q, now)
}

// take plans a decision for every incident listed that has none, and keeps the latest state of
// those that have.
func (o *office) take(rng *rand.Rand, q queue, list []event.Incident, now time.Time, plan func(*rand.Rand, event.Incident, time.Time) *decision) {
	for _, inc := range list {
		d := q[inc.ID]
		if d == nil || d.status != inc.Status {
			if d = plan(rng, inc, now); d == nil {
				continue
			}
			d.status = inc.Status
			q[inc.ID] = d
		}
		d.inc, d.seen = inc, now
	}
}

// forget drops decisions whose incident was not on the last list (keep 0) or not seen for keep.
func (o *office) forget(q queue, now time.Time, keep time.Duration) {
	for id, d := range q {
		if d.seen.Before(now.Add(-keep)) {
			delete(q, id)
		}
	}
}

// due sends every decision whose time has come, each once. The desk has several people at it:
// decisions go out side by side, as many at once as the client lets through.
func (o *office) due(ctx context.Context, q queue, now time.Time) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(o.sim.cfg.MaxInFlight)
	for id, d := range q {
		if now.Before(d.at) {
			continue
		}
		delete(q, id)
		g.Go(func() error {
			_, err := o.sim.act(ctx, d.who, d.inc, d.cmd)
			return err
		})
	}
	return g.Wait()
}

func (o *office) planTriage(rng *rand.Rand, inc event.Incident, now time.Time) *decision {
	wait := o.sim.pace.draw(rng, triage)
	if inc.Area.Grid != "" {
		// Dispatch places these in a moment; the operator steps in only if it did not.
		wait += o.sim.pace.wall(10*time.Minute, 10*time.Second)
	}
	asg, ok := o.place(rng, inc, now)
	if !ok {
		return nil
	}
	return &decision{at: now.Add(wait), who: o.operator,
		cmd: command{Action: event.ActionDispatch, Assignment: &asg, Reason: "值班员人工派遣"}}
}

func (o *office) planVerify(rng *rand.Rand, inc event.Incident, now time.Time) *decision {
	from := inc.UpdatedAt
	if inc.Evidence != nil && !inc.Evidence.At.IsZero() {
		from = inc.Evidence.At
	}
	at := laterOf(from.Add(o.sim.pace.draw(rng, verifyDelay)), now)
	cmd := command{Action: event.ActionVerify, Note: "现场核查通过"}
	if inc.Reopens == 0 && rng.Float64() < reopenAtVerify {
		cmd = command{Action: event.ActionReopen, Reason: pick(rng, reopenReasons)}
	}
	return &decision{at: at, who: o.operator, cmd: cmd}
}

func (o *office) planClose(rng *rand.Rand, inc event.Incident, now time.Time) *decision {
	return &decision{at: laterOf(inc.UpdatedAt.Add(o.sim.pace.draw(rng, closeDelay)), now), who: o.operator,
		cmd: command{Action: event.ActionClose, Note: "结案"}}
}

func (o *office) planExtension(rng *rand.Rand, inc event.Incident, now time.Time) *decision {
	x := inc.Extension
	if x == nil || x.State != event.ExtensionPending {
		return nil
	}
	cmd := command{Action: event.ActionApproveExtension, Note: "同意延期"}
	if rng.Float64() < refuseExtension {
		cmd = command{Action: event.ActionRefuseExtension, Reason: pick(rng, refuseExtensionReasons)}
	}
	return &decision{at: laterOf(x.RequestedAt.Add(o.sim.pace.draw(rng, decideExtend)), now), who: o.supervisor, cmd: cmd}
}

func (o *office) planCallback(rng *rand.Rand, inc event.Incident, now time.Time) *decision {
	// A work order is called back once per closing: never called, or closed again after an
	// unsatisfied call reopened it.
	if inc.Status != event.StatusClosed || inc.Callback == event.CallbackSatisfied || !fromHotline(inc) {
		return nil
	}
	result := event.CallbackSatisfied
	if inc.Reopens == 0 && rng.Float64() < dissatisfied {
		result = event.CallbackDissatisfied
	}
	return &decision{at: laterOf(inc.UpdatedAt.Add(o.sim.pace.draw(rng, callbackDelay)), now), who: o.callbacks,
		cmd: command{Action: event.ActionCallback, Result: result}}
}

func fromHotline(inc event.Incident) bool {
	for _, r := range inc.Reports {
		if r.EventType == event.TypeHotlineTicket {
			return true
		}
	}
	return false
}

// laterOf is the later of a decision's due time and now minus nothing: an incident first seen
// late (the simulator started after it was resolved) is handled from now, not all at once.
func laterOf(at, now time.Time) time.Time {
	if at.Before(now) {
		return now
	}
	return at
}

// place is the operator's triage: the grid the report is in or nearest to (within its
// district when that is known), an on-duty worker of it, else its community's supervisor —
// what an operator reads off the duty roster.
func (o *office) place(rng *rand.Rand, inc event.Incident, now time.Time) (event.Assignment, bool) {
	c := o.sim.city
	grid, ok := c.Grid(inc.Area.Grid)
	if !ok {
		var best float64 = math.Inf(1)
		var candidates []city.Grid
		for _, g := range c.Grids() {
			if inc.Area.District == "" || g.District == inc.Area.District {
				candidates = append(candidates, g)
			}
		}
		if len(candidates) == 0 {
			candidates = c.Grids()
		}
		if len(candidates) == 0 {
			return event.Assignment{}, false
		}
		if inc.Location == nil {
			grid, ok = candidates[rng.IntN(len(candidates))], true
		}
		for _, g := range candidates {
			if inc.Location == nil {
				break
			}
			if d := geo.Distance(orb.Point{inc.Location.Lon, inc.Location.Lat}, orb.Point{g.Centroid.Lon, g.Centroid.Lat}); d < best {
				best, grid, ok = d, g, true
			}
		}
	}
	a := event.Assignment{Grid: grid.Code}
	var onDuty []city.Worker
	for _, w := range c.Workers(grid.Code) {
		if w.Role == city.RoleWorker && w.OnDuty(now) {
			onDuty = append(onDuty, w)
		}
	}
	if len(onDuty) > 0 {
		w := onDuty[rng.IntN(len(onDuty))]
		a.WorkerID, a.WorkerName = w.ID, w.Name
	} else if w, found := c.Supervisor(grid.Community); found {
		a.WorkerID, a.WorkerName = w.ID, w.Name
	} else {
		return event.Assignment{}, false
	}
	if ag, found := c.AgencyFor(inc.Category); found {
		a.Agency, a.AgencyName = ag.Code, ag.Name
	}
	return a, ok
}
