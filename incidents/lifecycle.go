package incidents

import (
	"fmt"
	"slices"

	"github.com/urbanbrain/urbanbrain/event"
)

// Change actions that are not commands: a signal opening an incident, or joining one.
const (
	ActionOpen = "open" // 立案: the first signal of a correlation key
	ActionLink = "link" // 一事多报: a further report of an open incident
)

// step is one row of the lifecycle: the states an action may start from, the state it leads
// to, what the command must carry, and what it changes besides the status. New actions of the
// full loop (退单, 延期, 督办, 核查, 重办, 误报) are new rows here, not new code paths.
type step struct {
	from  []event.Status
	to    event.Status
	check func(event.Command) error            // fields the action requires, nil if none
	apply func(*event.Incident, event.Command) // effects besides the status, nil if none
}

var lifecycle = map[string]step{
	event.ActionDispatch: {
		from:  []event.Status{event.StatusNew},
		to:    event.StatusDispatched,
		check: needAssignment,
		apply: func(inc *event.Incident, c event.Command) { inc.Assignment = *c.Assignment },
	},
	event.ActionAccept: {from: []event.Status{event.StatusDispatched}, to: event.StatusAccepted},
	event.ActionStart:  {from: []event.Status{event.StatusAccepted}, to: event.StatusInProgress},
	event.ActionResolve: {
		from:  []event.Status{event.StatusInProgress},
		to:    event.StatusResolved,
		check: needEvidence,
	},
	event.ActionClose: {from: []event.Status{event.StatusResolved}, to: event.StatusClosed},
}

func needAssignment(c event.Command) error {
	if c.Assignment == nil || (c.Assignment.WorkerID == "" && c.Assignment.Agency == "") {
		return fmt.Errorf("%w: %q needs an assignment with a worker or an agency", ErrInvalidCommand, c.Action)
	}
	return nil
}

func needEvidence(c event.Command) error {
	if c.Note == "" {
		return fmt.Errorf("%w: %q needs a note with the evidence", ErrInvalidCommand, c.Action)
	}
	return nil
}

// Roles as they appear in Actor.Role (the token's role claim).
const (
	roleAdmin      = "admin"
	roleOperator   = "operator"
	roleSupervisor = "supervisor"
	roleWorker     = "worker"
	roleSystem     = "system"
)

// grant is what a role may do. A nil action set means every action; own means only on
// incidents assigned to the actor.
type grant struct {
	actions []string
	own     bool
}

// grants is the first-cut policy. Roles not listed (viewer, ingest, rule_author) may issue no
// command. District scope for operators belongs here when it arrives.
var grants = map[string]grant{
	roleAdmin:      {},
	roleOperator:   {},
	roleSupervisor: {},
	roleSystem:     {actions: []string{event.ActionDispatch}},
	roleWorker:     {actions: []string{event.ActionAccept, event.ActionStart, event.ActionResolve}, own: true},
}

// mayIssue checks the role alone, before the incident is looked up, so that an actor who may
// do nothing learns nothing about which incidents exist.
func mayIssue(a event.Actor, action string) error {
	g, ok := grants[a.Role]
	if !ok || (g.actions != nil && !slices.Contains(g.actions, action)) {
		return fmt.Errorf("%w: role %q may not %q", ErrForbidden, a.Role, action)
	}
	return nil
}

// mayTouch checks the actor's scope on one incident.
func mayTouch(a event.Actor, inc *event.Incident) error {
	if grants[a.Role].own && (a.Subject == "" || inc.Assignment.WorkerID != a.Subject) {
		return fmt.Errorf("%w: %s is not assigned to %q", ErrForbidden, inc.ID, a.Subject)
	}
	return nil
}
