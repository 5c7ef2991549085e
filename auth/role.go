package auth

import (
	"fmt"
	"slices"
	"strings"
)

// Role is what a token's holder is. It is a plain string on the wire and in event.Actor, so
// it is an alias rather than a defined type.
type Role = string

// The roles of urbanbrain.
const (
	RoleAdmin      Role = "admin"       // everything, everywhere
	RoleOperator   Role = "operator"    // command-centre desk: triage, dispatch, chase, close (坐席)
	RoleSupervisor Role = "supervisor"  // 督办: oversees operators; may see callers' personal data
	RoleWorker     Role = "worker"      // 网格员: works the incidents of their grids
	RoleRuleAuthor Role = "rule_author" // writes and tests rules
	RoleViewer     Role = "viewer"      // read-only: leaders, wall screens
	RoleIngest     Role = "ingest"      // machine producers: may only post events
)

var roles = []Role{RoleAdmin, RoleOperator, RoleSupervisor, RoleWorker, RoleRuleAuthor, RoleViewer, RoleIngest}

// ValidRoles lists every role, for flag help and validation messages.
func ValidRoles() []Role { return slices.Clone(roles) }

// ParseRole returns the role named by s (case and surrounding spaces ignored).
func ParseRole(s string) (Role, error) {
	r := strings.ToLower(strings.TrimSpace(s))
	if !slices.Contains(roles, r) {
		return "", fmt.Errorf("unknown role %q (want one of %s)", s, strings.Join(roles, ", "))
	}
	return r, nil
}

// Permission is something a role may do.
type Permission string

// The permissions checked by the API and the websockets.
const (
	PermIngest          Permission = "ingest"             // post events
	PermReadIncidents   Permission = "incidents:read"     // list and read incidents (within scope)
	PermCommand         Permission = "incidents:command"  // issue lifecycle commands (within scope)
	PermSeePersonalData Permission = "personal_data:read" // see callers' names, phones, ID numbers unmasked
	PermRules           Permission = "rules:write"        // write, test and publish rules
	PermCockpit         Permission = "cockpit"            // subscribe to /ws/cockpit
	PermAccount         Permission = "account"            // see and end one's own session
	PermUsers           Permission = "users:admin"        // create, disable, enable and reset local accounts
)

// permissions is the role table. Personal data is deliberately narrow: an operator triages
// with masked numbers; a supervisor may call a citizen back.
var permissions = map[Role][]Permission{
	RoleAdmin:      {PermIngest, PermReadIncidents, PermCommand, PermSeePersonalData, PermRules, PermCockpit, PermAccount, PermUsers},
	RoleOperator:   {PermReadIncidents, PermCommand, PermCockpit, PermAccount},
	RoleSupervisor: {PermReadIncidents, PermCommand, PermSeePersonalData, PermCockpit, PermAccount},
	RoleWorker:     {PermReadIncidents, PermCommand, PermCockpit, PermAccount},
	RoleRuleAuthor: {PermReadIncidents, PermRules, PermCockpit, PermAccount},
	RoleViewer:     {PermReadIncidents, PermCockpit, PermAccount},
	RoleIngest:     {PermIngest},
}

// Can reports whether role holds permission p. Unknown roles hold nothing.
func Can(role Role, p Permission) bool {
	return slices.Contains(permissions[role], p)
}

// Permissions lists what role may do, for documentation and the token command's output.
func Permissions(role Role) []Permission { return slices.Clone(permissions[role]) }
