package incidents

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/urbanbrain/urbanbrain/event"
)

// SLA clocks. Each incident carries the clock of its current stage (event.Clock) in its state,
// so the changelog holds every clock and a restart rebuilds them with the incidents. Time is
// never read from the wall here: Tick is told the time, and commands use Config.Now, so a
// scenario test drives the clock by hand.

// startClock starts stage's clock for inc at now.
func (s *Service) startClock(inc *event.Incident, stage string, now time.Time) *event.Clock {
	limit, workingOnly := s.cfg.Policy.SLA.limit(stage, inc.Category, inc.Severity)
	c := &event.Clock{Stage: stage, LimitSeconds: int64(limit / time.Second), WorkingHours: workingOnly, StartedAt: now}
	cal := s.calendarFor(c)
	c.DueAt = cal.add(now, limit)
	c.WarnAt = cal.add(now, s.warnAfter(limit))
	return c
}

func (s *Service) warnAfter(limit time.Duration) time.Duration {
	return time.Duration(float64(limit) * s.cfg.Policy.SLA.WarnAt)
}

func (s *Service) calendarFor(c *event.Clock) calendar {
	if c.WorkingHours {
		return s.cal
	}
	return calendar{}
}

// pauseClock stops c at now (a pending 延期): the time left is kept, and nothing fires.
func (s *Service) pauseClock(c *event.Clock, now time.Time) *event.Clock {
	if c == nil || !c.PausedAt.IsZero() {
		return c
	}
	p := *c
	p.PausedAt = now
	p.RemainingSeconds = int64(s.calendarFor(c).between(now, c.DueAt) / time.Second)
	return &p
}

// warnLead is how long before the due time c warns: the last (1 − warn_at) share of the
// stage's configured limit, 24 min of a 2 h limit at 80 %. It depends on the limit alone, so it
// stays the same whatever pauses, extensions and refusals the clock went through.
func (s *Service) warnLead(c *event.Clock) time.Duration {
	limit := time.Duration(c.LimitSeconds) * time.Second
	return limit - s.warnAfter(limit)
}

// resumeClock restarts a paused c at now with extra time added to what was left. The warning
// keeps its lead: warn_at is due_at minus warnLead (at once if less than that is left).
// LimitSeconds stays the stage's configured limit: an approved extension moves the due time,
// it does not lengthen the limit, or the next pause would warn earlier (the lead of a 2 h
// clock extended by 1 h drifted from 24 to 36 min after a refused second request).
func (s *Service) resumeClock(c *event.Clock, now time.Time, extra time.Duration) *event.Clock {
	if c == nil || c.PausedAt.IsZero() {
		return c
	}
	r := *c
	cal := s.calendarFor(c)
	left := time.Duration(c.RemainingSeconds)*time.Second + extra
	r.DueAt = cal.add(now, left)
	if lead := s.warnLead(c); left > lead {
		r.WarnAt, r.Warned = cal.add(now, left-lead), false
	} else {
		r.WarnAt = now
	}
	r.PausedAt, r.RemainingSeconds = time.Time{}, 0
	return &r
}

// deadline is the next instant c must be looked at, if any.
func deadline(c *event.Clock) (time.Time, bool) {
	switch {
	case c == nil || !c.PausedAt.IsZero() || c.Breached:
		return time.Time{}, false
	case !c.Warned && c.WarnAt.Before(c.DueAt):
		return c.WarnAt, true
	default:
		return c.DueAt, true
	}
}

// fire works out what inc's clock has due at now: a warning, or a breach that escalates one
// level and re-arms the clock for the next level (grid worker → community → street →
// district). A sign-for breach does not escalate here: dispatch reassigns the incident. It
// returns the change to make, or ok false if nothing is due.
func (s *Service) fire(inc *event.Incident, now time.Time) (next event.Incident, ch event.Change, ok bool) {
	c := inc.Clock
	at, armed := deadline(c)
	if !armed || now.Before(at) {
		return event.Incident{}, event.Change{}, false
	}
	next = *inc
	nc := *c
	next.Clock = &nc
	ch = event.Change{Stage: c.Stage, Actor: event.SystemActor, From: inc.Status, To: inc.Status, At: now}
	limit := time.Duration(c.LimitSeconds) * time.Second
	if now.Before(c.DueAt) {
		nc.Warned = true
		ch.Action = ActionSLAWarning
		ch.Reason = fmt.Sprintf("%s: %s of %s used, due %s", c.Stage,
			s.calendarFor(c).between(c.StartedAt, now).Round(time.Second), limit, c.DueAt.In(shanghai).Format("01-02 15:04"))
		return next, ch, true
	}
	nc.Warned = true
	ch.Action = ActionSLABreach
	ch.Reason = fmt.Sprintf("%s: limit %s passed at %s", c.Stage, limit, c.DueAt.In(shanghai).Format("01-02 15:04"))
	up := nextLevel(inc.Escalation, "")
	if c.Stage == event.StageSignFor && inc.Assignment.WorkerID != "" {
		next.Lapsed = append(slices.Clip(inc.Lapsed), inc.Assignment.WorkerID)
	}
	if c.Stage == event.StageSignFor || up == "" {
		nc.Breached = true // dispatch reassigns; or there is no level left to climb
		return next, ch, true
	}
	next.Escalation, ch.Level = up, up
	nc.Breaches++
	if nextLevel(up, "") == "" {
		nc.Breached = true // the top of the organisation: nothing left to escalate to
		ch.Reason += "; escalated to " + up
		return next, ch, true
	}
	nc.StartedAt = now
	nc.DueAt = s.calendarFor(c).add(now, limit)
	nc.WarnAt = nc.DueAt
	ch.Reason += "; escalated to " + up
	return next, ch, true
}

// deadlines is a min-heap of the next deadline of every incident with a running clock. An
// entry is current while armed[id] holds its time; older entries are skipped when they pop.
type deadlines struct {
	mu    sync.Mutex
	h     deadlineHeap
	armed map[string]time.Time
}

type deadlineEntry struct {
	at time.Time
	id string
}

type deadlineHeap []deadlineEntry

func (h deadlineHeap) Len() int           { return len(h) }
func (h deadlineHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h deadlineHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *deadlineHeap) Push(x any)        { *h = append(*h, x.(deadlineEntry)) }
func (h *deadlineHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

// track arms (or disarms) inc's next deadline after a change.
func (d *deadlines) track(inc *event.Incident) {
	at, ok := deadline(inc.Clock)
	if !inc.Status.Open() {
		ok = false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	prev, had := d.armed[inc.ID]
	switch {
	case !ok && had:
		delete(d.armed, inc.ID)
	case ok && (!had || !prev.Equal(at)):
		d.armed[inc.ID] = at
		heap.Push(&d.h, deadlineEntry{at: at, id: inc.ID})
	}
}

// due pops every current entry at or before now.
func (d *deadlines) due(now time.Time) []deadlineEntry {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []deadlineEntry
	for d.h.Len() > 0 && !d.h[0].at.After(now) {
		e := heap.Pop(&d.h).(deadlineEntry)
		if at, ok := d.armed[e.id]; ok && at.Equal(e.at) {
			delete(d.armed, e.id)
			out = append(out, e)
		}
	}
	return out
}

// Next is the earliest armed SLA deadline, for callers that want to sleep until it.
func (s *Service) Next() (time.Time, bool) {
	s.clocks.mu.Lock()
	defer s.clocks.mu.Unlock()
	for s.clocks.h.Len() > 0 {
		e := s.clocks.h[0]
		if at, ok := s.clocks.armed[e.id]; ok && at.Equal(e.at) {
			return e.at, true
		}
		heap.Pop(&s.clocks.h)
	}
	return time.Time{}, false
}

// Tick returns an SLA command (Data: event.Command, for city.commands) for every clock whose
// warning or limit has come by now. The partition's owner applies it (Execute with
// event.ActionSLA), so an instance that holds a stale copy of another street's incidents only
// sends a command that changes nothing, and repeats are harmless: the command id is the
// incident and the deadline. The deadlines returned are disarmed: the caller must write the
// commands (RunClock does, and re-arms them if that fails). Tests call Tick with a fake time.
func (s *Service) Tick(now time.Time) event.Outputs {
	out, _ := s.tick(now)
	return out
}

// tick is Tick, also returning the deadlines it disarmed.
func (s *Service) tick(now time.Time) (event.Outputs, []deadlineEntry) {
	due := s.clocks.due(now)
	if len(due) == 0 {
		return nil, nil
	}
	out := make(event.Outputs, 0, len(due))
	for _, e := range due {
		cmd := event.Command{
			ID:         "sla:" + e.id + "@" + strconv.FormatInt(e.at.UnixMilli(), 10),
			IncidentID: e.id,
			Action:     event.ActionSLA,
			Actor:      event.SystemActor,
			At:         now.UTC(),
		}
		out = append(out, event.Output{Key: streetOf(e.id), ID: cmd.ID, Time: cmd.At, Data: cmd})
	}
	s.stats.ticks.Add(uint64(len(out)))
	return out, due
}

// rearm puts back entries that were popped but not sent, unless a newer deadline replaced them.
func (s *Service) rearm(entries []deadlineEntry) {
	s.clocks.mu.Lock()
	defer s.clocks.mu.Unlock()
	for _, e := range entries {
		if _, ok := s.clocks.armed[e.id]; !ok {
			s.clocks.armed[e.id] = e.at
			heap.Push(&s.clocks.h, e)
		}
	}
}

// RunClock calls Tick every interval with the time of cfg.Now until ctx ends, and hands the
// SLA commands to emit, which writes them to city.commands. If emit fails, the error is logged
// and the deadlines are armed again for the next tick (their commands may have been written
// in part: a repeat is harmless).
func (s *Service) RunClock(ctx context.Context, interval time.Duration, emit func(context.Context, event.Outputs) error) error {
	if emit == nil {
		return errors.New("incidents: RunClock needs an emit function")
	}
	if interval <= 0 {
		interval = time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			out, due := s.tick(s.cfg.Now())
			if len(out) == 0 {
				continue
			}
			if err := emit(ctx, out); err != nil {
				s.rearm(due)
				if ctx.Err() == nil {
					s.log.Warn("sla tick", zap.Int("commands", len(out)), zap.Error(err))
				}
			}
		}
	}
}
