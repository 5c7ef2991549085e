package incidents

import (
	"context"
	"fmt"

	"go.uber.org/zap"

	"github.com/urbanbrain/urbanbrain/event"
)

// HandleCommand is the city.commands handler: it executes cmd and publishes its outcome.
// A refused command is an answered command, so it returns nil; an error means a publish
// failed and the command should be redelivered.
func (s *Service) HandleCommand(ctx context.Context, cmd event.Command) error {
	_, err := s.Execute(ctx, cmd)
	if Code(err) != "" {
		return nil
	}
	return err
}

// Execute applies cmd to its incident against the lifecycle and the actor's grants, writes the
// change to the changelog and publishes an event.CommandResult for every outcome. It returns
// the incident after the change, or a domain error (ErrIllegalTransition, ErrNotFound,
// ErrForbidden, ErrInvalidCommand: see Code) or a transient publish error. A command id seen
// before gets its first outcome again and changes nothing.
func (s *Service) Execute(ctx context.Context, cmd event.Command) (event.Incident, error) {
	street := streetOf(cmd.IncidentID)
	sh := s.lookupShard(street)
	if sh == nil {
		// No incident was ever seen in this street: nothing to change and nothing worth
		// remembering, and a guessed id must not make the service allocate a street.
		s.stats.commands.Add(1)
		return event.Incident{}, s.refuse(ctx, nil, cmd, s.validate(cmd, nil))
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()

	if out, ok := sh.outcomes.get(cmd.ID); ok {
		if err := s.publishResult(ctx, out.res); err != nil {
			return event.Incident{}, err
		}
		if out.err != nil {
			return event.Incident{}, out.err
		}
		return view(out.res.Incident), nil
	}
	s.stats.commands.Add(1)

	cur := sh.incidents[cmd.IncidentID]
	if err := s.validate(cmd, cur); err != nil {
		return event.Incident{}, s.refuse(ctx, sh, cmd, err)
	}

	st := lifecycle[cmd.Action]
	now := s.cfg.Now().UTC()
	next := *cur
	next.Version++
	next.Status = st.to
	next.UpdatedAt = now
	if st.apply != nil {
		st.apply(&next, cmd)
	}
	ch := event.Change{
		Action:    cmd.Action,
		From:      cur.Status,
		To:        next.Status,
		Actor:     cmd.Actor,
		Reason:    cmd.Reason,
		Note:      cmd.Note,
		CommandID: cmd.ID,
		At:        now,
	}
	if err := s.publishChange(ctx, &next, ch); err != nil {
		return event.Incident{}, err
	}
	sh.commit(&next, nil, ch)
	// The change is the record; if the result is lost, the redelivered command finds its
	// outcome remembered and publishes it again.
	if err := s.publishResult(ctx, succeeded(&next, ch)); err != nil {
		return event.Incident{}, err
	}
	return view(&next), nil
}

// validate checks cmd in the order that reveals least: its shape, the role, then the incident
// (cur, nil if unknown), the actor's scope on it, and the lifecycle.
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
	if err := mayTouch(cmd.Actor, cur); err != nil {
		return err
	}
	for _, from := range st.from {
		if cur.Status == from {
			return nil
		}
	}
	return ErrIllegalTransition{From: cur.Status, Action: cmd.Action}
}

// refuse publishes a refusal and, when the street is known (sh != nil), remembers it as the
// command's first outcome. It returns the domain error, or the publish error if that failed
// (then nothing is remembered and the redelivery decides again).
func (s *Service) refuse(ctx context.Context, sh *shard, cmd event.Command, err error) error {
	res := event.CommandResult{
		CommandID:  cmd.ID,
		IncidentID: cmd.IncidentID,
		Code:       Code(err),
		Error:      err.Error(),
		At:         s.cfg.Now().UTC(),
	}
	if perr := s.publishResult(ctx, res); perr != nil {
		return perr
	}
	s.stats.rejected.Add(1)
	if sh != nil && cmd.ID != "" {
		sh.outcomes.remember(cmd.ID, outcome{res: res, err: err})
	}
	s.log.Debug("command refused", zap.String("command", cmd.ID), zap.String("incident", cmd.IncidentID),
		zap.String("actor", cmd.Actor.Subject), zap.Error(err))
	return err
}
