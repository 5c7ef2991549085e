package auth

import (
	"slices"

	"github.com/urbanbrain/urbanbrain/event"
)

// CanSee reports whether the holder of c may see an object located in area a:
//
//   - admin: everything;
//   - worker (网格员): only areas whose grid is one of c.Grids;
//   - operator, supervisor, rule_author, viewer: the district c.District, or the whole city
//     when District is empty;
//   - ingest and unknown roles: nothing.
//
// Handlers call it on every object they return or act on, so an id guessed outside the
// caller's scope looks exactly like an id that does not exist.
func (c Claims) CanSee(a event.Area) bool {
	return c.canSeeArea(a)
}

// CanSeeIncident is the scope policy for an incident: CanSee its area, and for a worker also
// the incidents assigned to them (dispatch may send a worker a neighbouring grid's incident
// when nobody of that grid is on duty, and they must be able to work it). The API, the
// cockpit, the worker feed and the incident service all ask this one question.
func (c Claims) CanSeeIncident(inc event.Incident) bool {
	return c.canSeeArea(inc.Area) || c.Role == RoleWorker && c.Subject != "" && inc.Assignment.WorkerID == c.Subject
}

// ClaimsOf is the claims of the actor of a command: who it is and what part of the city it
// acts in, so the incident service applies the same scope policy as the API.
func ClaimsOf(a event.Actor) Claims {
	return Claims{Subject: a.Subject, Role: a.Role, District: a.District, Grids: a.Grids}
}

func (c Claims) canSeeArea(a event.Area) bool {
	switch c.Role {
	case RoleAdmin:
		return true
	case RoleWorker:
		return a.Grid != "" && slices.Contains(c.Grids, a.Grid)
	case RoleOperator, RoleSupervisor, RoleRuleAuthor, RoleViewer:
		return c.District == "" || a.District == c.District
	default:
		return false
	}
}
