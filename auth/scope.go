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
