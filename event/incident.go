package event

import "time"

// Severity levels, after the Chinese early-warning colours.
const (
	SeverityRed    = "red"    // 红色: most severe
	SeverityOrange = "orange" // 橙色
	SeverityYellow = "yellow" // 黄色
	SeverityBlue   = "blue"   // 蓝色: least severe
)

// Signal is a rule's match on one event, published to city.signals. Its ID is derived from
// the rule and the event, so a replayed event yields the same signal and joins nothing twice.
type Signal struct {
	ID             string    `json:"id"`
	RuleID         string    `json:"rule_id"`
	RuleVersion    int       `json:"rule_version"`
	Category       string    `json:"category"` // category code from the category list
	Severity       string    `json:"severity"`
	Title          string    `json:"title"`
	CorrelationKey string    `json:"correlation_key"`
	Agency         string    `json:"agency,omitempty"` // routing hint: agency code
	Shadow         bool      `json:"shadow,omitempty"` // record only, never raise
	At             time.Time `json:"at"`               // when the rule matched
	Event          Event     `json:"event"`            // the event that matched
}

// Status is an incident's lifecycle state (see package incidents for the transitions).
type Status string

const (
	StatusNew        Status = "new"         // 立案
	StatusDispatched Status = "dispatched"  // 派遣
	StatusAccepted   Status = "accepted"    // 签收
	StatusInProgress Status = "in_progress" // 处置
	StatusResolved   Status = "resolved"    // 反馈 (with evidence)
	StatusClosed     Status = "closed"      // 结案
)

// Open reports whether an incident in this state still needs work.
func (s Status) Open() bool { return s != StatusClosed }

// Report is one event linked to an incident (一事多报: many reports, one incident).
type Report struct {
	EventID   string    `json:"event_id"`
	EventType string    `json:"event_type"`
	SignalID  string    `json:"signal_id"`
	RuleID    string    `json:"rule_id"`
	At        time.Time `json:"at"`
	Location  *Point    `json:"location,omitempty"`
	Summary   string    `json:"summary,omitempty"`
	// Caller is set for 12345 reports. Personal data: mask before it leaves the system.
	Caller *Caller `json:"caller,omitempty"`
}

// Caller is the citizen behind a 12345 work order.
type Caller struct {
	Name  string `json:"name,omitempty"`
	Phone string `json:"phone,omitempty"`
}

// Assignment is who an incident is dispatched to.
type Assignment struct {
	WorkerID   string `json:"worker_id,omitempty"`
	WorkerName string `json:"worker_name,omitempty"`
	Grid       string `json:"grid,omitempty"`
	Agency     string `json:"agency,omitempty"`
	AgencyName string `json:"agency_name,omitempty"`
}

// Incident is one real-world problem, however many reports it has.
type Incident struct {
	// ID is "INC-<street>-<unique>": the street lets a command be keyed to the partition that
	// owns the incident without a lookup.
	ID             string     `json:"id"`
	Version        int64      `json:"version"`
	Status         Status     `json:"status"`
	Category       string     `json:"category"`
	Severity       string     `json:"severity"`
	Title          string     `json:"title"`
	CorrelationKey string     `json:"correlation_key"`
	Area           Area       `json:"area"`
	Location       *Point     `json:"location,omitempty"`
	Assignment     Assignment `json:"assignment"`
	Reports        []Report   `json:"reports"`
	ReportCount    int        `json:"report_count"`
	CreatedAt      time.Time  `json:"created_at"`
	UpdatedAt      time.Time  `json:"updated_at"`
}

// Change describes one transition of an incident: the timeline entry and audit record.
type Change struct {
	Action    string    `json:"action"` // open, link, or a command action
	From      Status    `json:"from,omitempty"`
	To        Status    `json:"to"`
	Actor     Actor     `json:"actor"`
	Reason    string    `json:"reason,omitempty"`
	Note      string    `json:"note,omitempty"`
	CommandID string    `json:"command_id,omitempty"`
	SignalID  string    `json:"signal_id,omitempty"`
	At        time.Time `json:"at"`
}

// IncidentChange is a record of the city.incidents changelog: the incident's full state
// after the change, with its version, and the change itself. Projections upsert by
// (Incident.ID, Incident.Version), so replaying the changelog never duplicates.
type IncidentChange struct {
	Incident Incident `json:"incident"`
	Change   Change   `json:"change"`
}

// Actor is who issued a command: a person with a role and a scope, or the system itself.
type Actor struct {
	Subject  string   `json:"subject"`
	Role     string   `json:"role"`
	District string   `json:"district,omitempty"` // scope of a district operator
	Grids    []string `json:"grids,omitempty"`    // scope of a grid worker
}

// SystemActor is the actor of automatic actions (rules, dispatch).
var SystemActor = Actor{Subject: "system", Role: "system"}

// Command actions of the first-cut lifecycle.
const (
	ActionDispatch = "dispatch" // new → dispatched (Assignment required)
	ActionAccept   = "accept"   // dispatched → accepted (签收)
	ActionStart    = "start"    // accepted → in_progress
	ActionResolve  = "resolve"  // in_progress → resolved (Note as evidence)
	ActionClose    = "close"    // resolved → closed
)

// Command asks the owner of an incident's partition to change it. ID is the caller's
// idempotency key; a repeated ID yields the first outcome again.
type Command struct {
	ID         string      `json:"id"`
	IncidentID string      `json:"incident_id"`
	Action     string      `json:"action"`
	Actor      Actor       `json:"actor"`
	Reason     string      `json:"reason,omitempty"`
	Note       string      `json:"note,omitempty"`
	Assignment *Assignment `json:"assignment,omitempty"`
	At         time.Time   `json:"at"`
}

// CommandResult is the outcome of a Command, published to city.command-results so the HTTP
// caller that sent it can answer.
type CommandResult struct {
	CommandID  string    `json:"command_id"`
	IncidentID string    `json:"incident_id"`
	OK         bool      `json:"ok"`
	Code       string    `json:"code,omitempty"` // error code from the catalogue in docs/api.md
	Error      string    `json:"error,omitempty"`
	Incident   *Incident `json:"incident,omitempty"` // state after a successful command
	At         time.Time `json:"at"`
}

// Dispatch is the record of who an incident was sent to and why (派遣).
type Dispatch struct {
	ID         string     `json:"id"` // "<incident id>/<incident version>": one per decision
	IncidentID string     `json:"incident_id"`
	Assignment Assignment `json:"assignment"`
	Reason     string     `json:"reason"` // how the worker was chosen
	At         time.Time  `json:"at"`
}

// IncidentStreet returns the street code embedded in an incident ID ("INC-<street>-<unique>"),
// or "" if the ID is not of that form.
func IncidentStreet(id string) string {
	const prefix = "INC-"
	if len(id) <= len(prefix) || id[:len(prefix)] != prefix {
		return ""
	}
	rest := id[len(prefix):]
	for i := len(rest) - 1; i >= 0; i-- {
		if rest[i] == '-' {
			return rest[:i]
		}
	}
	return ""
}
