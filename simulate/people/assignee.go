package people

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/urbanbrain/urbanbrain/auth"
	"github.com/urbanbrain/urbanbrain/city"
	"github.com/urbanbrain/urbanbrain/event"
)

// Chances of the less usual turns of a task. A demo's guess, kept small so that most
// incidents go round the loop once.
const (
	returnAtSignFor = 0.04 // 退单 instead of 签收: not this grid's or this trade's problem
	returnOnSite    = 0.02 // 退单 after 签收: the site shows it is someone else's
	askExtension    = 0.05 // 延期申请 while 处置: parts, a contractor, the weather
	progressNote    = 0.7  // a 进展 note halfway through 处置
)

// assignee is anyone incidents are dispatched to: a grid worker, a community supervisor or a
// street's duty post. They look at their tasks (GET /api/v1/me/tasks) every few minutes of
// their time, and sign for, go, work and report back on each at their own speed.
type assignee struct {
	sim          *Simulator
	id           *identity
	person       city.Worker
	rng          *rand.Rand
	neverReturns bool

	jobs map[string]*job // by incident id; only the assignee's goroutine touches it
}

// job is what an assignee means to do with one task in its current state.
type job struct {
	status  event.Status
	reopens int
	next    time.Time // when the next step is due
	action  string    // accept, return or start; for in_progress see below
	reason  string

	// in_progress: a note halfway, maybe an extension request, then the resolution.
	noteAt, extendAt, resolveAt time.Time
	noted, extended             bool
}

func (s *Simulator) newAssignee(c auth.Claims, w city.Worker, rng *rand.Rand) *assignee {
	return &assignee{sim: s, id: &identity{claims: c}, person: w, rng: rng, jobs: map[string]*job{}}
}

func (a *assignee) run(ctx context.Context) error {
	// Everyone looks at their phone at a different moment.
	if err := sleep(ctx, time.Duration(a.rng.Int64N(int64(a.checkEvery())))); err != nil {
		return nil
	}
	for {
		wait, err := a.round(ctx)
		if err != nil {
			return nil // ctx done
		}
		if err := sleep(ctx, wait); err != nil {
			return nil
		}
	}
}

// checkEvery is how long the assignee leaves the app alone when nothing is due.
func (a *assignee) checkEvery() time.Duration {
	every := onDutyCheck
	if len(a.person.Shifts) > 0 && !a.person.OnDuty(a.sim.cfg.Now()) {
		every = offDutyCheck
	}
	return a.sim.pace.wall(every, minWallBetween)
}

// round looks at the tasks once, does what is due, and says when to look again.
func (a *assignee) round(ctx context.Context) (time.Duration, error) {
	tasks, err := a.sim.list(ctx, a.id, "/api/v1/me/tasks", "tasks")
	if err != nil {
		return 0, err
	}
	now := a.sim.cfg.Now()
	wait := a.checkEvery()
	acted := false
	live := make(map[string]bool, len(tasks))
	for _, inc := range tasks {
		live[inc.ID] = true
		if inc.Assignment.WorkerID != a.id.claims.Subject {
			continue
		}
		j := a.jobs[inc.ID]
		if j == nil || j.status != inc.Status || j.reopens != inc.Reopens {
			if j = a.plan(inc, now); j == nil {
				delete(a.jobs, inc.ID)
				continue
			}
			a.jobs[inc.ID] = j
		}
		did, err := a.step(ctx, inc, j, now)
		if err != nil {
			return 0, err
		}
		acted = acted || did
		if due := j.next.Sub(now); due > 0 && due < wait {
			wait = due
		}
	}
	for id := range a.jobs {
		if !live[id] {
			delete(a.jobs, id)
		}
	}
	if acted {
		// Having done something, one looks again soon to see it went through.
		wait = min(wait, a.sim.pace.wall(30*time.Second, minWallBetween))
	}
	return max(wait, minWallBetween), nil
}

// plan decides what to do with a task found in a new state; nil when there is nothing to do
// (resolved and waiting for the office).
func (a *assignee) plan(inc event.Incident, now time.Time) *job {
	p, rng := a.sim.pace, a.rng
	j := &job{status: inc.Status, reopens: inc.Reopens}
	returned := false
	for _, r := range inc.Returns {
		returned = returned || r.WorkerID == a.id.claims.Subject
	}
	mayReturn := !a.neverReturns && !returned && inc.Reopens == 0
	switch inc.Status {
	case event.StatusDispatched:
		j.next, j.action = now.Add(p.draw(rng, signFor)), event.ActionAccept
		if mayReturn && rng.Float64() < returnAtSignFor {
			j.action, j.reason = event.ActionReturn, pick(rng, returnReasonsAtSignFor)
		}
	case event.StatusAccepted:
		j.next, j.action = now.Add(p.draw(rng, travel)), event.ActionStart
		if mayReturn && rng.Float64() < returnOnSite {
			j.action, j.reason = event.ActionReturn, pick(rng, returnReasonsOnSite)
		}
	case event.StatusInProgress:
		work := p.draw(rng, handling)
		j.resolveAt = now.Add(work)
		j.noteAt = now.Add(work / 2)
		j.noted = rng.Float64() >= progressNote
		j.extended = inc.Extension != nil || rng.Float64() >= askExtension
		if !j.extended {
			j.extendAt = now.Add(work / 4)
			j.resolveAt = j.resolveAt.Add(work / 2) // asked for time because it takes longer
		}
		j.next = earliest(j)
	default:
		return nil
	}
	return j
}

func earliest(j *job) time.Time {
	next := j.resolveAt
	if !j.noted && j.noteAt.Before(next) {
		next = j.noteAt
	}
	if !j.extended && j.extendAt.Before(next) {
		next = j.extendAt
	}
	return next
}

// step does the job's next step if it is due. It reports whether a command was sent.
func (a *assignee) step(ctx context.Context, inc event.Incident, j *job, now time.Time) (bool, error) {
	if now.Before(j.next) {
		return false, nil
	}
	var c command
	switch {
	case inc.Status != event.StatusInProgress:
		c = command{Action: j.action, Reason: j.reason}
	case inc.Extension != nil && inc.Extension.State == event.ExtensionPending:
		// Waiting for the supervisor's answer before reporting it done.
		j.next = now.Add(a.sim.pace.wall(onDutyCheck, minWallBetween))
		return false, nil
	case !j.extended && !now.Before(j.extendAt):
		j.extended = true
		c = command{Action: event.ActionRequestExtension, Reason: pick(a.rng, extensionReasons), ExtendBy: "24h"}
	case !j.noted && !now.Before(j.noteAt):
		j.noted = true
		c = command{Action: event.ActionProgress, Note: pick(a.rng, progressNotes)}
	case !now.Before(j.resolveAt):
		c = command{Action: event.ActionResolve, Evidence: a.evidence(inc)}
	default:
		j.next = earliest(j)
		return false, nil
	}
	ok, err := a.sim.act(ctx, a.id, inc, c)
	if err != nil {
		return false, err
	}
	if inc.Status == event.StatusInProgress && c.Action != event.ActionResolve {
		j.next = earliest(j)
	} else if !ok {
		// Refused (someone else moved it) or lost: look again later with a fresh plan.
		delete(a.jobs, inc.ID)
	}
	return true, nil
}

// evidence is what a worker reports with 反馈: a note, a photo and where they stood.
func (a *assignee) evidence(inc event.Incident) *event.Evidence {
	e := &event.Evidence{
		Note:   pick(a.rng, resolveNotes[inc.Category[:min(2, len(inc.Category))]]),
		Photos: []string{fmt.Sprintf("https://evidence.yunchuan.example/%s/after-%d.jpg", inc.ID, inc.Version)},
	}
	if e.Note == "" {
		e.Note = pick(a.rng, resolveNotes[""])
	}
	if inc.Location != nil {
		loc := *inc.Location
		e.Location = &loc
	}
	return e
}

func pick(rng *rand.Rand, from []string) string {
	if len(from) == 0 {
		return ""
	}
	return from[rng.IntN(len(from))]
}
