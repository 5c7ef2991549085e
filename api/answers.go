package api

import (
	"time"

	"github.com/urbanbrain/urbanbrain/auth"
	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/rules/authoring"
	"github.com/urbanbrain/urbanbrain/rules/engine"
	"github.com/urbanbrain/urbanbrain/rules/lang"
)

// The named answers of the handlers that once wrote map literals: each is the body's JSON as
// it was, given a type so that the OpenAPI document (openapi.go) can take its schema from it.

// ErrorAnswer is every error body: {"code", "error"} (errors.go lists the codes).
type ErrorAnswer struct {
	Code  string `json:"code"`
	Error string `json:"error"`
}

// LiveAnswer is GET /livez's body.
type LiveAnswer struct {
	Status string `json:"status"`
}

// SignInAnswer is a successful sign-in: the account (without its hash) and the CSRF token
// that every changing request made with the session cookie must echo.
type SignInAnswer struct {
	Account auth.Account `json:"account"`
	CSRF    string       `json:"csrf"`
}

// SessionAnswer is GET /api/v1/session: who the caller is; csrf for a signed-in session.
type SessionAnswer struct {
	Subject     string            `json:"subject"`
	Role        auth.Role         `json:"role"`
	District    string            `json:"district"`
	Grids       []string          `json:"grids"`
	Permissions []auth.Permission `json:"permissions"`
	CSRF        string            `json:"csrf,omitempty"`
}

// UserList is GET /api/v1/users.
type UserList struct {
	Users []auth.Account `json:"users"`
	Count int            `json:"count"`
}

// CityAnswer is GET /api/v1/city: grids with their roster, agencies and categories.
type CityAnswer struct {
	Grids      []cityGrid     `json:"grids"`
	Agencies   []cityEntry    `json:"agencies"`
	Categories []cityCategory `json:"categories"`
}

// IncidentList is GET /api/v1/incidents and /api/v1/search/incidents: a page and the total.
type IncidentList struct {
	Incidents []event.Incident `json:"incidents"`
	Count     int              `json:"count"`
	Total     int              `json:"total"`
}

// EventList is GET /api/v1/events.
type EventList struct {
	Events []event.Event `json:"events"`
	Count  int           `json:"count"`
}

// TaskList is GET /api/v1/me/tasks (我的任务).
type TaskList struct {
	Tasks []event.Incident `json:"tasks"`
	Count int              `json:"count"`
}

// Timeline is GET /api/v1/incidents/{id}/timeline.
type Timeline struct {
	IncidentID string         `json:"incident_id"`
	Timeline   []TimelineItem `json:"timeline"`
}

// CommandPending is the 202 of a command whose outcome did not arrive in time.
type CommandPending struct {
	Code      string `json:"code"`
	CommandID string `json:"command_id"`
	Error     string `json:"error"`
}

// PhotoAnswer is an uploaded photo's name and where to read it.
type PhotoAnswer struct {
	Name string `json:"name"`
	URL  string `json:"url"`
}

// RuleList is GET /api/v1/rules.
type RuleList struct {
	Rules         []RuleView         `json:"rules"`
	Count         int                `json:"count"`
	VersionErrors map[string]string  `json:"version_errors"`
	Engine        engine.EngineStats `json:"engine"`
}

// RuleCheck is POST /api/v1/rules/validate of a valid rule.
type RuleCheck struct {
	Valid bool      `json:"valid"`
	Rule  lang.Rule `json:"rule"`
	Kind  string    `json:"kind"`
}

// RuleInvalid is the 422 of a rule that does not compile: each error with its position.
type RuleInvalid struct {
	Code   string      `json:"code"`
	Error  string      `json:"error"`
	Errors []RuleError `json:"errors"`
}

// RuleSaved is a saved rule version: applied once this instance has read it back; a 202
// carries code "timeout" and the error when it did not in time.
type RuleSaved struct {
	Code      string                `json:"code,omitempty"`
	Version   authoring.RuleVersion `json:"version"`
	Applied   bool                  `json:"applied"`
	Unchanged bool                  `json:"unchanged,omitempty"`
	Error     string                `json:"error,omitempty"`
}

// RuleHistory is GET /api/v1/rules/{id}/versions, oldest first, without the sources.
type RuleHistory struct {
	RuleID   string             `json:"rule_id"`
	Versions []RuleHistoryEntry `json:"versions"`
}

// RuleHistoryEntry is one version of RuleHistory.
type RuleHistoryEntry struct {
	Version int       `json:"version"`
	Action  string    `json:"action"`
	Author  string    `json:"author"`
	At      time.Time `json:"at"`
	Comment string    `json:"comment,omitempty"`
	Deleted bool      `json:"deleted,omitempty"`
}

// RuleFields is GET /api/v1/rules/fields: what an expression may read and call.
type RuleFields struct {
	Fields    []lang.EnvField `json:"fields"`
	Functions []lang.Function `json:"functions"`
	Builtins  []string        `json:"builtins"`
}
