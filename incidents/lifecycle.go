package incidents

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/urbanbrain/urbanbrain/auth"
	"github.com/urbanbrain/urbanbrain/event"
)

// Change actions that are not commands: a signal opening an incident or joining one, and the
// SLA clock firing.
const (
	ActionOpen       = "open"        // 立案: the first signal of a problem
	ActionLink       = "link"        // 一事多报: a further report of an open incident
	ActionSignal     = "signal"      // a further rule on an event the incident holds: evidence, may raise the severity
	ActionSLAWarning = "sla_warning" // the stage's warning time has passed (预警)
	ActionSLABreach  = "sla_breach"  // the stage's limit has passed (超时); may escalate
)

// step is one row of the lifecycle: the states an action may start from (nil: any open
// state), the state it leads to ("" keeps the state), what the command must carry, what the
// incident must satisfy, and what the action changes besides the status.
type step struct {
	from  []event.Status
	to    event.Status
	check func(event.Command) error                                 // the command's own fields
	guard func(*event.Incident, event.Command) error                // the incident's, after the state
	apply func(*Service, *event.Incident, event.Command, time.Time) // effects besides the status
}

var (
	working     = []event.Status{event.StatusDispatched, event.StatusAccepted, event.StatusInProgress}
	inHand      = []event.Status{event.StatusAccepted, event.StatusInProgress}
	finished    = []event.Status{event.StatusResolved, event.StatusVerified, event.StatusClosed}
	cancellable = []event.Status{event.StatusNew, event.StatusReturned, event.StatusDispatched,
		event.StatusAccepted, event.StatusInProgress, event.StatusResolved}
)

var lifecycle = map[string]step{
	event.ActionDispatch: {
		from: []event.Status{event.StatusNew, event.StatusReturned}, to: event.StatusDispatched,
		check: all(needAssignment, needLevel(false)),
		apply: func(s *Service, inc *event.Incident, c event.Command, now time.Time) {
			inc.Assignment = *c.Assignment
			raise(inc, c.Level)
			inc.Clock = s.startClock(inc, event.StageSignFor, now)
		},
	},
	event.ActionReassign: {
		from: []event.Status{event.StatusDispatched}, to: event.StatusDispatched,
		check: all(needAssignment, needLevel(false)),
		apply: func(s *Service, inc *event.Incident, c event.Command, now time.Time) {
			inc.Assignment = *c.Assignment
			raise(inc, c.Level)
			inc.Clock = s.startClock(inc, event.StageSignFor, now)
		},
	},
	event.ActionAccept: {
		from: []event.Status{event.StatusDispatched}, to: event.StatusAccepted,
		apply: func(s *Service, inc *event.Incident, _ event.Command, now time.Time) {
			inc.Clock = s.startClock(inc, event.StageHandle, now)
		},
	},
	event.ActionReturn: {
		from: []event.Status{event.StatusDispatched, event.StatusAccepted}, to: event.StatusReturned,
		check: needReason,
		apply: func(_ *Service, inc *event.Incident, c event.Command, now time.Time) {
			who := inc.Assignment.WorkerID
			if who == "" {
				who = c.Actor.Subject
			}
			inc.Returns = append(slices.Clip(inc.Returns), event.Return{WorkerID: who, Reason: c.Reason, At: now})
			// Back to the dispatcher: the worker is released, the agency stays.
			inc.Assignment.WorkerID, inc.Assignment.WorkerName = "", ""
			inc.Extension, inc.Clock = nil, nil
		},
	},
	event.ActionStart:    {from: []event.Status{event.StatusAccepted}, to: event.StatusInProgress},
	event.ActionProgress: {from: working, check: all(needNote, placeInRange)},
	event.ActionRequestExtension: {
		from: inHand, check: all(needReason, needExtendBy),
		guard: func(inc *event.Incident, _ event.Command) error {
			if inc.Extension != nil && inc.Extension.State == event.ExtensionPending {
				return fmt.Errorf("%w: an extension request is already pending", ErrInvalidCommand)
			}
			return nil
		},
		apply: func(s *Service, inc *event.Incident, c event.Command, now time.Time) {
			d, _ := time.ParseDuration(c.ExtendBy)
			inc.Extension = &event.Extension{By: c.Actor.Subject, Reason: c.Reason, ForSeconds: int64(d / time.Second),
				RequestedAt: now, State: event.ExtensionPending}
			inc.Clock = s.pauseClock(inc.Clock, now)
		},
	},
	event.ActionApproveExtension: {
		from: inHand, guard: needPendingExtension,
		apply: func(s *Service, inc *event.Incident, c event.Command, now time.Time) {
			ext := *inc.Extension
			ext.State, ext.DecidedBy, ext.DecidedAt = event.ExtensionApproved, c.Actor.Subject, now
			inc.Extension = &ext
			inc.Clock = s.resumeClock(inc.Clock, now, time.Duration(ext.ForSeconds)*time.Second)
		},
	},
	event.ActionRefuseExtension: {
		from: inHand, check: needReason, guard: needPendingExtension,
		apply: func(s *Service, inc *event.Incident, c event.Command, now time.Time) {
			ext := *inc.Extension
			ext.State, ext.DecidedBy, ext.DecidedAt = event.ExtensionRefused, c.Actor.Subject, now
			inc.Extension = &ext
			inc.Clock = s.resumeClock(inc.Clock, now, 0)
		},
	},
	event.ActionResolve: {
		from: []event.Status{event.StatusInProgress}, to: event.StatusResolved,
		check: needEvidence,
		apply: func(s *Service, inc *event.Incident, c event.Command, now time.Time) {
			ev := event.Evidence{Note: c.Note}
			if c.Evidence != nil {
				ev = *c.Evidence
				ev.Photos = slices.Clone(ev.Photos)
				if ev.Note == "" {
					ev.Note = c.Note
				}
			}
			ev.By, ev.At = c.Actor.Subject, now
			inc.Evidence, inc.Extension = &ev, nil
			inc.Clock = s.startClock(inc, event.StageVerify, now)
		},
	},
	event.ActionVerify: {
		from: []event.Status{event.StatusResolved}, to: event.StatusVerified,
		guard: func(inc *event.Incident, c event.Command) error {
			if inc.Evidence != nil && inc.Evidence.By == c.Actor.Subject {
				return ErrSelfVerification{Actor: c.Actor.Subject}
			}
			return nil
		},
		apply: func(_ *Service, inc *event.Incident, c event.Command, _ time.Time) {
			inc.VerifiedBy, inc.Clock = c.Actor.Subject, nil
		},
	},
	event.ActionClose: {from: []event.Status{event.StatusVerified}, to: event.StatusClosed,
		apply: func(_ *Service, inc *event.Incident, _ event.Command, _ time.Time) { inc.Clock = nil }},
	event.ActionReopen: {
		from: finished, to: event.StatusDispatched, check: needReason, guard: needAssignee,
		apply: func(s *Service, inc *event.Incident, _ event.Command, now time.Time) { reopen(s, inc, now) },
	},
	event.ActionAlert: {
		guard: needNoLiveAlert,
		apply: func(_ *Service, inc *event.Incident, c event.Command, now time.Time) {
			publishAlert(inc, c.Actor.Subject, c.Note, now)
		},
	},
	event.ActionCancel: {
		from: cancellable, to: event.StatusCancelled, check: needReason,
		apply: func(_ *Service, inc *event.Incident, _ event.Command, _ time.Time) { inc.Clock = nil },
	},
	event.ActionEscalate: {
		check: all(needReasonUnlessSystem, needLevel(false)),
		guard: func(inc *event.Incident, c event.Command) error {
			if next := nextLevel(inc.Escalation, c.Level); next == "" {
				return fmt.Errorf("%w: already escalated to %q", ErrInvalidCommand, inc.Escalation)
			}
			return nil
		},
		apply: func(_ *Service, inc *event.Incident, c event.Command, _ time.Time) {
			inc.Escalation = nextLevel(inc.Escalation, c.Level)
		},
	},
	event.ActionCallback: {
		from: []event.Status{event.StatusClosed}, check: needResult,
		guard: func(inc *event.Incident, _ event.Command) error {
			if !hasHotlineReport(inc) {
				return fmt.Errorf("%w: %s has no 12345 report to call back", ErrInvalidCommand, inc.ID)
			}
			return needAssignee(inc, event.Command{})
		},
		apply: func(s *Service, inc *event.Incident, c event.Command, now time.Time) {
			inc.Callback = c.Result
			if c.Result == event.CallbackDissatisfied {
				inc.Status = event.StatusDispatched
				reopen(s, inc, now)
			}
		},
	},
	// Merge and split change two incidents at once; see merge.go. Their rows hold the checks.
	event.ActionMerge: {check: needSource},
	event.ActionSplit: {check: needEventID},
	// The SLA clock (see clock.go): only the system issues it, Tick produces it.
	event.ActionSLA: {},
}

// reopen (重办) sends a finished incident back to its assignee, who must sign for it again.
func reopen(s *Service, inc *event.Incident, now time.Time) {
	inc.Reopens++
	inc.Evidence, inc.VerifiedBy, inc.Extension = nil, "", nil
	inc.Clock = s.startClock(inc, event.StageSignFor, now)
}

// levels is the organisation an incident climbs on escalation, after its grid worker.
var levels = []string{event.LevelCommunity, event.LevelStreet, event.LevelDistrict}

// nextLevel is the level an escalation from cur reaches: want if it is above cur, else the one
// above cur; "" if there is none.
func nextLevel(cur, want string) string {
	i := slices.Index(levels, cur) // -1 for the grid worker
	if j := slices.Index(levels, want); j > i {
		return want
	}
	if want != "" || i+1 >= len(levels) {
		return ""
	}
	return levels[i+1]
}

// raise records an escalation level brought by a dispatch, never lowering the current one.
func raise(inc *event.Incident, level string) {
	if slices.Index(levels, level) > slices.Index(levels, inc.Escalation) {
		inc.Escalation = level
	}
}

func hasHotlineReport(inc *event.Incident) bool {
	for _, r := range inc.Reports {
		if r.EventType == event.TypeHotlineTicket {
			return true
		}
	}
	return false
}

func all(checks ...func(event.Command) error) func(event.Command) error {
	return func(c event.Command) error {
		for _, ch := range checks {
			if err := ch(c); err != nil {
				return err
			}
		}
		return nil
	}
}

func needAssignment(c event.Command) error {
	if c.Assignment == nil || (c.Assignment.WorkerID == "" && c.Assignment.Agency == "") {
		return fmt.Errorf("%w: %q needs an assignment with a worker or an agency", ErrInvalidCommand, c.Action)
	}
	return nil
}

func needEvidence(c event.Command) error {
	if c.Note == "" && (c.Evidence == nil || c.Evidence.Note == "") {
		return fmt.Errorf("%w: %q needs a note with the evidence", ErrInvalidCommand, c.Action)
	}
	if c.Evidence != nil {
		for _, p := range c.Evidence.Photos {
			if !event.IsPhotoName(p) && !strings.HasPrefix(p, "https://") && !strings.HasPrefix(p, "http://") {
				return fmt.Errorf("%w: photo %q is neither an uploaded photo's name nor an http(s) URL", ErrInvalidCommand, p)
			}
		}
	}
	return placeInRange(c)
}

// placeInRange refuses a location (evidence.location: where the worker was) off the globe.
func placeInRange(c event.Command) error {
	if c.Evidence == nil {
		return nil
	}
	if l := c.Evidence.Location; l != nil && (l.Lat < -90 || l.Lat > 90 || l.Lon < -180 || l.Lon > 180) {
		return fmt.Errorf("%w: evidence location %v is out of range", ErrInvalidCommand, *l)
	}
	return nil
}

func needNote(c event.Command) error {
	if strings.TrimSpace(c.Note) == "" {
		return fmt.Errorf("%w: %q needs a note", ErrInvalidCommand, c.Action)
	}
	return nil
}

func needReason(c event.Command) error {
	if strings.TrimSpace(c.Reason) == "" {
		return fmt.Errorf("%w: %q needs a reason", ErrInvalidCommand, c.Action)
	}
	return nil
}

func needReasonUnlessSystem(c event.Command) error {
	if c.Actor.Role == roleSystem {
		return nil
	}
	return needReason(c)
}

// maxExtension bounds one extension request.
const maxExtension = 30 * 24 * time.Hour

func needExtendBy(c event.Command) error {
	d, err := time.ParseDuration(c.ExtendBy)
	if err != nil || d < time.Minute || d > maxExtension {
		return fmt.Errorf("%w: extend_by %q: want a duration from 1m to %s, e.g. \"48h\"", ErrInvalidCommand, c.ExtendBy, maxExtension)
	}
	return nil
}

func needLevel(required bool) func(event.Command) error {
	return func(c event.Command) error {
		if c.Level == "" && !required {
			return nil
		}
		if !slices.Contains(levels, c.Level) {
			return fmt.Errorf("%w: level %q: want one of %s", ErrInvalidCommand, c.Level, strings.Join(levels, ", "))
		}
		return nil
	}
}

func needResult(c event.Command) error {
	if c.Result != event.CallbackSatisfied && c.Result != event.CallbackDissatisfied {
		return fmt.Errorf("%w: result %q: want %q or %q", ErrInvalidCommand, c.Result,
			event.CallbackSatisfied, event.CallbackDissatisfied)
	}
	return nil
}

func needSource(c event.Command) error {
	if c.Source == "" || c.Source == c.IncidentID {
		return fmt.Errorf("%w: merge needs source, another incident", ErrInvalidCommand)
	}
	return nil
}

func needEventID(c event.Command) error {
	if c.EventID == "" {
		return fmt.Errorf("%w: split needs event_id, the report to split out", ErrInvalidCommand)
	}
	return nil
}

func needPendingExtension(inc *event.Incident, _ event.Command) error {
	if inc.Extension == nil || inc.Extension.State != event.ExtensionPending {
		return fmt.Errorf("%w: no extension request is pending", ErrInvalidCommand)
	}
	return nil
}

func needAssignee(inc *event.Incident, _ event.Command) error {
	if inc.Assignment.WorkerID == "" {
		return fmt.Errorf("%w: %s has nobody to send it back to; dispatch it instead", ErrInvalidCommand, inc.ID)
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

// grant is what a role may do. A nil action set means every action but those in except; own
// means only on incidents assigned to the actor.
type grant struct {
	actions []string
	except  []string
	own     bool
}

// grants is the policy of who may do what (docs/api.md has it as a table). Roles not listed
// (viewer, ingest, rule_author) may issue no command. Scope — a worker's own incidents, an
// operator's or supervisor's district — is checked by mayTouch.
var grants = map[string]grant{
	roleAdmin:      {except: []string{event.ActionSLA}},
	roleSupervisor: {except: []string{event.ActionSLA}},
	// 延期 is decided by a supervisor; desk operators triage, chase, verify and close.
	roleOperator: {except: []string{event.ActionSLA, event.ActionApproveExtension, event.ActionRefuseExtension}},
	roleSystem:   {actions: []string{event.ActionDispatch, event.ActionReassign, event.ActionEscalate, event.ActionSLA}},
	roleWorker: {actions: []string{event.ActionAccept, event.ActionReturn, event.ActionStart, event.ActionProgress,
		event.ActionRequestExtension, event.ActionResolve}, own: true},
}

// mayIssue checks the role alone, before the incident is looked up, so that an actor who may
// do nothing learns nothing about which incidents exist.
func mayIssue(a event.Actor, action string) error {
	g, ok := grants[a.Role]
	if !ok || slices.Contains(g.except, action) || (g.actions != nil && !slices.Contains(g.actions, action)) {
		return fmt.Errorf("%w: role %q may not %q", ErrForbidden, a.Role, action)
	}
	return nil
}

// MayTouch checks the actor's scope on one incident: a worker only what is assigned to them
// (dispatch only ever assigns a worker of the incident's grid, a neighbouring grid's, or a
// supervisor), an operator or supervisor with a district only that district.
func MayTouch(a event.Actor, inc *event.Incident) error {
	if grants[a.Role].own && (a.Subject == "" || inc.Assignment.WorkerID != a.Subject) {
		return fmt.Errorf("%w: %s is not assigned to %q", ErrForbidden, inc.ID, a.Subject)
	}
	// The scope policy of the API (auth.Claims.CanSeeIncident), asked of the actor the
	// command carries; the system acts everywhere.
	if a.Role != roleSystem && !auth.ClaimsOf(a).CanSeeIncident(*inc) {
		return fmt.Errorf("%w: %s is outside the scope of %q", ErrForbidden, inc.ID, a.Subject)
	}
	return nil
}
