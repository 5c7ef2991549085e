package incidents

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"

	"github.com/urbanbrain/urbanbrain/event"
)

// HandleCommand is the city.commands handler: it executes cmd and returns the records of its
// outcome. A refused command is an answered command, so it returns its records and nil; an
// error (an id collision, a bug) applied nothing.
func (s *Service) HandleCommand(ctx context.Context, cmd event.Command) (event.Outputs, error) {
	_, out, err := s.Execute(ctx, cmd)
	if err != nil && Code(err) == "" {
		return nil, err
	}
	return out, nil
}

// Execute applies cmd to its incident against the lifecycle, the actor's role and scope, and
// returns the incident after the change and the records to write, in order: the changelog
// record(s) of the change, then an event.AuditRecord and an event.CommandResult for every
// outcome, refusals included. A refusal returns its records with a domain error
// (ErrIllegalTransition, ErrNotFound, ErrForbidden, ErrInvalidCommand: see Code). A command id
// seen before gets its first outcome again (its audit and result, no change). Any other error
// applied nothing and returns no records.
func (s *Service) Execute(_ context.Context, cmd event.Command) (event.Incident, event.Outputs, error) {
	var out event.Outputs
	inc, err := s.execute(&out, cmd)
	if err != nil && Code(err) == "" {
		return event.Incident{}, nil, err
	}
	return inc, out, err
}

// execute is Execute appending to out.
func (s *Service) execute(out *event.Outputs, cmd event.Command) (event.Incident, error) {
	if cmd.Action == event.ActionSLA && cmd.Actor.Role == roleSystem {
		return s.applySLA(out, cmd)
	}
	if cmd.Actor.Role != roleSystem && systemCommandID(cmd.ID) {
		// Refused without being remembered: the id stays free for the system command it names.
		s.stats.commands.Add(1)
		return event.Incident{}, s.refuse(out, nil, cmd, nil, fmt.Errorf("%w: command id %q is reserved for system commands", ErrInvalidCommand, cmd.ID))
	}
	street := streetOf(cmd.IncidentID)
	sh := s.lookupShard(street)
	if sh == nil {
		// No incident was ever seen in this street: nothing to change and nothing worth
		// remembering, and a guessed id must not make the service allocate a street.
		s.stats.commands.Add(1)
		return event.Incident{}, s.refuse(out, nil, cmd, nil, s.validate(cmd, nil))
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()

	cur := sh.incidents[cmd.IncidentID]
	if o, ok := sh.outcomes.get(cmd.ID); ok {
		if err := s.mayRepeat(o, cmd, cur); err != nil {
			return event.Incident{}, s.refuse(out, nil, cmd, cur, err)
		}
		return s.repeat(out, o)
	}
	s.stats.commands.Add(1)

	if err := s.validate(cmd, cur); err != nil {
		return event.Incident{}, s.refuse(out, sh, cmd, cur, err)
	}
	switch cmd.Action {
	case event.ActionMerge:
		return s.merge(out, sh, cmd, cur)
	case event.ActionSplit:
		return s.split(out, sh, cmd, cur)
	}

	st := lifecycle[cmd.Action]
	now := s.cfg.Now().UTC()
	next := *cur
	next.Version++
	if st.to != "" {
		next.Status = st.to
	}
	next.UpdatedAt = now
	if st.apply != nil {
		st.apply(s, &next, cmd, now)
	}
	ch := changeOf(cmd, cur.Status, next.Status, now)
	if cmd.Action == event.ActionEscalate || (cmd.Level != "" && next.Escalation != cur.Escalation) {
		ch.Level = next.Escalation
	}
	return s.apply(out, sh, cmd, &next, ch), nil
}

// apply makes one change the state and answers the command: the change, then its audit record
// and result, go to out.
func (s *Service) apply(out *event.Outputs, sh *shard, cmd event.Command, next *event.Incident, ch event.Change) event.Incident {
	change(out, next, ch)
	sh.commit(next, nil, ch)
	s.clocks.track(next)
	o := changed(next, ch)
	o.audit = []event.AuditRecord{auditOf(cmd, next, ch)}
	sh.outcomes.replace(cmd.ID, o)
	o.answer(out)
	return view(next)
}

// answer appends an outcome's audit records (stores insert them once), then its result.
func (o outcome) answer(out *event.Outputs) {
	for _, a := range o.audit {
		audit(out, a)
	}
	result(out, o.res, "")
}

// systemCommandID reports whether id has the form of a system command's id: the dispatcher's
// ("dispatch:…", "reassign:…") and the SLA clock's ("sla:…").
func systemCommandID(id string) bool {
	for _, p := range []string{"dispatch:", "reassign:", "sla:"} {
		if strings.HasPrefix(id, p) {
			return true
		}
	}
	return false
}

// errIDReused is why a command that reuses another command's id is refused.
var errIDReused = errors.New("already used by another command; choose a new id")

// mayRepeat checks that a remembered outcome may be given to cmd, which reuses its id: the
// same sender about the same incident, who may still see it. Another sender's id, a system
// command's id or an id used for another incident is refused, and the outcome stays private.
func (s *Service) mayRepeat(o outcome, cmd event.Command, cur *event.Incident) error {
	if !o.answers(cmd) {
		return fmt.Errorf("%w: command id %q: %w", ErrInvalidCommand, cmd.ID, errIDReused)
	}
	if err := mayIssue(cmd.Actor, cmd.Action); err != nil {
		return err
	}
	if cur != nil {
		return MayTouch(cmd.Actor, cur)
	}
	return nil
}

// repeat answers with a remembered outcome again. It returns the outcome's incident, or its
// refusal.
func (s *Service) repeat(out *event.Outputs, o outcome) (event.Incident, error) {
	o.answer(out)
	if o.err != nil {
		return event.Incident{}, o.err
	}
	return view(o.res.Incident), nil
}

func changeOf(cmd event.Command, from, to event.Status, now time.Time) event.Change {
	ch := event.Change{
		Action:    cmd.Action,
		From:      from,
		To:        to,
		Actor:     cmd.Actor,
		Reason:    cmd.Reason,
		Note:      cmd.Note,
		CommandID: cmd.ID,
		At:        now,
	}
	if e := cmd.Evidence; e != nil && e.Location != nil {
		p := *e.Location
		ch.Location = &p
	}
	return ch
}

func auditOf(cmd event.Command, inc *event.Incident, ch event.Change) event.AuditRecord {
	id := cmd.ID
	if ch.Related != "" && inc.ID != cmd.IncidentID {
		id += "#" + inc.ID // the second incident of a merge or split
	}
	return event.AuditRecord{
		ID: id, Kind: event.AuditCommand, CommandID: cmd.ID, IncidentID: inc.ID, Action: ch.Action,
		Actor: ch.Actor, OK: true, From: ch.From, To: ch.To, Version: inc.Version, Reason: ch.Reason, At: ch.At,
	}
}

// validate checks cmd in the order that reveals least: its shape, the role, then the incident
// (cur, nil if unknown), the actor's scope on it, the lifecycle, and the incident's own
// preconditions.
func (s *Service) validate(cmd event.Command, cur *event.Incident) error {
	if cmd.ID == "" {
		return fmt.Errorf("%w: command id is required", ErrInvalidCommand)
	}
	if cmd.IncidentID == "" {
		return fmt.Errorf("%w: incident id is required", ErrInvalidCommand)
	}
	st, ok := lifecycle[cmd.Action]
	if !ok {
		return fmt.Errorf("%w: unknown action %q", ErrInvalidCommand, cmd.Action)
	}
	if st.check != nil {
		if err := st.check(cmd); err != nil {
			return err
		}
	}
	if err := mayIssue(cmd.Actor, cmd.Action); err != nil {
		return err
	}
	if cur == nil {
		return fmt.Errorf("%w: %s", ErrNotFound, cmd.IncidentID)
	}
	if err := MayTouch(cmd.Actor, cur); err != nil {
		return err
	}
	if st.from == nil && !cur.Status.Open() || st.from != nil && !slices.Contains(st.from, cur.Status) {
		return ErrIllegalTransition{From: cur.Status, Action: cmd.Action}
	}
	if st.guard != nil {
		return st.guard(cur, cmd)
	}
	return nil
}

// refuse answers with a refusal — its audit record, then its result, to out — and, when the
// street is known (sh != nil), remembers it as the command's first outcome. cur is the
// incident as it stands, nil if unknown. It returns err, the domain error.
func (s *Service) refuse(out *event.Outputs, sh *shard, cmd event.Command, cur *event.Incident, err error) error {
	now := s.cfg.Now().UTC()
	res := event.CommandResult{
		CommandID:  cmd.ID,
		IncidentID: cmd.IncidentID,
		Code:       Code(err),
		Error:      err.Error(),
		At:         now,
	}
	id := cmd.ID
	switch {
	case id == "":
		id = "refused:" + uuid.NewString()
	case errors.Is(err, errIDReused):
		// The id's first outcome has its own audit record under the id; this refusal is
		// another command's and must be recorded beside it, not deduplicated into it.
		id += "#reused-by:" + cmd.Actor.Subject + "@" + cmd.IncidentID
	}
	rec := event.AuditRecord{
		ID: id, Kind: event.AuditCommand, CommandID: cmd.ID, IncidentID: cmd.IncidentID, Action: cmd.Action,
		Actor: cmd.Actor, Code: res.Code, Error: res.Error, Reason: cmd.Reason, At: now,
	}
	if cur != nil {
		rec.From, rec.To = cur.Status, cur.Status
	}
	audit(out, rec)
	result(out, res, id)
	s.stats.rejected.Add(1)
	if sh != nil && cmd.ID != "" {
		sh.outcomes.remember(cmd.ID, outcome{res: res, err: err, audit: []event.AuditRecord{rec}, by: cmd.Actor.Subject})
	}
	s.log.Debug("command refused", zap.String("command", cmd.ID), zap.String("incident", cmd.IncidentID),
		zap.String("action", cmd.Action), zap.String("actor", cmd.Actor.Subject), zap.Error(err))
	return err
}

// applySLA applies whatever the clock of the command's incident has due now. A command for a
// clock that has nothing due (already fired, stopped, or sent by an instance with a stale copy)
// changes nothing and answers nothing: it is not a refusal anyone waits for.
func (s *Service) applySLA(out *event.Outputs, cmd event.Command) (event.Incident, error) {
	sh := s.lookupShard(streetOf(cmd.IncidentID))
	if sh == nil {
		return event.Incident{}, nil
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	cur := sh.incidents[cmd.IncidentID]
	if o, ok := sh.outcomes.get(cmd.ID); ok {
		if !o.answers(cmd) {
			return event.Incident{}, nil // not this clock's deadline: nothing is due under this id
		}
		return s.repeat(out, o)
	}
	if cur == nil || !cur.Status.Open() {
		return event.Incident{}, nil
	}
	now := s.cfg.Now().UTC()
	next, ch, ok := s.fire(cur, now)
	if !ok {
		// Nothing due after all: make sure the deadline is armed for the next Tick.
		s.clocks.track(cur)
		return view(cur), nil
	}
	next.Version++
	next.UpdatedAt = now
	ch.CommandID = cmd.ID
	s.stats.slaFired.Add(1)
	return s.apply(out, sh, cmd, &next, ch), nil
}

// merge (并单) moves every report of cmd.Source into the incident cur and marks the source
// merged. Both must be open and in the same street: a street's incidents are one partition's,
// and a merge across two would need two writers to agree.
func (s *Service) merge(out *event.Outputs, sh *shard, cmd event.Command, cur *event.Incident) (event.Incident, error) {
	src := sh.incidents[cmd.Source]
	var err error
	switch {
	case src == nil && streetOf(cmd.Source) != streetOf(cmd.IncidentID):
		err = fmt.Errorf("%w: %s is in another street; only incidents of one street can be merged", ErrInvalidCommand, cmd.Source)
	case src == nil:
		err = fmt.Errorf("%w: %s", ErrNotFound, cmd.Source)
	default:
		err = MayTouch(cmd.Actor, src)
	}
	if err == nil && !cur.Status.Open() {
		err = ErrIllegalTransition{From: cur.Status, Action: cmd.Action}
	}
	if err == nil && !src.Status.Open() {
		err = ErrIllegalTransition{From: src.Status, Action: cmd.Action}
	}
	if err != nil {
		return event.Incident{}, s.refuse(out, sh, cmd, cur, err)
	}
	now := s.cfg.Now().UTC()
	into := *cur
	into.Version++
	into.UpdatedAt = now
	var added []event.Report
	for _, r := range src.Reports {
		if _, dup := sh.reported[incidentEvent{cur.ID, r.EventID}]; !dup || r.EventID == "" {
			added = append(added, r)
		}
	}
	into.Reports = append(slices.Clip(cur.Reports), added...)
	into.ReportCount = len(into.Reports)
	into.Severity = maxSeverity(cur.Severity, src.Severity)
	gone := *src
	gone.Version++
	gone.UpdatedAt = now
	gone.Status, gone.MergedInto, gone.Clock = event.StatusMerged, cur.ID, nil

	chInto := changeOf(cmd, cur.Status, into.Status, now)
	chInto.Related = src.ID
	chGone := changeOf(cmd, src.Status, gone.Status, now)
	chGone.Related = cur.ID
	// The incident that gains the reports goes first: a crash between the two records (both
	// on the street's partition of the changelog, in this order) leaves a report listed
	// twice, never lost.
	change(out, &into, chInto)
	change(out, &gone, chGone)
	sh.commit(&into, added, chInto)
	sh.commit(&gone, nil, chGone)
	s.clocks.track(&into)
	s.clocks.track(&gone)
	o := changed(&into, chInto)
	o.audit = []event.AuditRecord{auditOf(cmd, &into, chInto), auditOf(cmd, &gone, chGone)}
	sh.outcomes.replace(cmd.ID, o)
	return s.repeat(out, o)
}

// split (拆单) takes one report out of cur into a new incident, which dispatch then routes like
// any new one. The new incident's correlation key is cur's with the event id appended, so
// later reports of cur's problem keep joining cur.
func (s *Service) split(out *event.Outputs, sh *shard, cmd event.Command, cur *event.Incident) (event.Incident, error) {
	// An episode (a device's readings) is split out whole, named by its first or latest event.
	i := slices.IndexFunc(cur.Reports, func(r event.Report) bool { return r.EventID == cmd.EventID || r.LastEventID == cmd.EventID })
	var err error
	switch {
	case !cur.Status.Open():
		err = ErrIllegalTransition{From: cur.Status, Action: cmd.Action}
	case i < 0:
		err = fmt.Errorf("%w: %s has no report of event %q", ErrInvalidCommand, cur.ID, cmd.EventID)
	case len(cur.Reports) == 1:
		err = fmt.Errorf("%w: %s has only this report; cancel or reopen it instead", ErrInvalidCommand, cur.ID)
	}
	if err != nil {
		return event.Incident{}, s.refuse(out, sh, cmd, cur, err)
	}
	now := s.cfg.Now().UTC()
	rep := cur.Reports[i]
	street := streetOf(cur.ID)
	newID := s.cfg.NewID(street)
	if _, taken := sh.incidents[newID]; taken {
		return event.Incident{}, fmt.Errorf("incidents: NewID returned %s twice", newID)
	}
	loc := rep.Location
	if loc == nil {
		loc = cur.Location
	}
	category := rep.Category
	if category == "" {
		category = cur.Category
	}
	born := event.Incident{
		ID: newID, Version: 1, Status: event.StatusNew,
		Category: category, Severity: cur.Severity, Title: cur.Title,
		CorrelationKey: cur.CorrelationKey + "#" + rep.EventID,
		Area:           cur.Area, Location: loc,
		Assignment: event.Assignment{Agency: cur.Assignment.Agency},
		Reports:    []event.Report{rep}, ReportCount: 1,
		CreatedAt: now, UpdatedAt: now,
	}
	left := *cur
	left.Version++
	left.UpdatedAt = now
	left.Reports = slices.Delete(slices.Clone(cur.Reports), i, i+1)
	left.ReportCount = len(left.Reports)

	chBorn := changeOf(cmd, "", event.StatusNew, now)
	chBorn.Related = cur.ID
	chLeft := changeOf(cmd, cur.Status, cur.Status, now)
	chLeft.Related = newID
	// The new incident goes first: a crash between the two records leaves the report on both.
	change(out, &born, chBorn)
	change(out, &left, chLeft)
	sh.commit(&left, nil, chLeft)
	delete(sh.reported, incidentEvent{cur.ID, rep.EventID})
	sh.commit(&born, born.Reports, chBorn)
	s.clocks.track(&left)
	s.stats.opened.Add(1)
	o := changed(&left, chLeft)
	o.audit = []event.AuditRecord{auditOf(cmd, &left, chLeft), auditOf(cmd, &born, chBorn)}
	sh.outcomes.replace(cmd.ID, o)
	return s.repeat(out, o)
}
