package event

import (
	"regexp"
	"time"
)

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
	Alert          bool      `json:"alert,omitempty"`  // publish a CAP alert for the incident (raise.alert)
	At             time.Time `json:"at"`               // when the rule matched
	Event          Event     `json:"event"`            // the event that matched

	// Clear says the condition of a stateful rule (for, sliding window, absent) stopped
	// holding for this correlation key at At: the level went down, the device is back. A
	// clear is always also Shadow, so it never opens an incident; the incident service may
	// note it on the open incident with that key.
	Clear bool `json:"clear,omitempty"`

	// Explanation is why the rule matched (not set on a clear): the values that made its
	// condition true and what its state added.
	Explanation *Explanation `json:"explanation,omitempty"`
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
	StatusReturned   Status = "returned"    // 退单: back with the dispatcher, for re-dispatch
	StatusVerified   Status = "verified"    // 核查: checked by someone other than the resolver
	StatusCancelled  Status = "cancelled"   // 误报: a false alarm, closed without work
	StatusMerged     Status = "merged"      // 并单: merged into another incident (MergedInto)
)

// Open reports whether an incident in this state still needs work.
func (s Status) Open() bool {
	return s != StatusClosed && s != StatusCancelled && s != StatusMerged
}

// Report is one event linked to an incident (一事多报: many reports, one incident).
type Report struct {
	EventID   string    `json:"event_id"`
	EventType string    `json:"event_type"`
	SignalID  string    `json:"signal_id"`
	RuleID    string    `json:"rule_id"`
	At        time.Time `json:"at"`
	Location  *Point    `json:"location,omitempty"`
	Summary   string    `json:"summary,omitempty"`
	// TicketID is the 12345 work order number of a hotline report.
	TicketID string `json:"ticket_id,omitempty"`
	// Category is what the report was raised as; it may differ from the incident's when the
	// report joined by a related category (a 0202 call on a 0104 flood).
	Category string `json:"category,omitempty"`
	// Caller is set for 12345 reports. Personal data: mask before it leaves the system.
	Caller *Caller `json:"caller,omitempty"`

	// Device is the sensor or camera behind the report. A device that keeps raising the
	// same rule on an open incident is one episode — one report that updates — not a report
	// per reading: Count readings so far, the latest at LastAt (event LastEventID).
	Device      string    `json:"device,omitempty"`
	Count       int       `json:"count,omitempty"`
	LastAt      time.Time `json:"last_at,omitzero"`
	LastEventID string    `json:"last_event_id,omitempty"`
	// Class is what the device detected or measures: a camera's algorithm, a sensor's kind.
	// A camera's episode is one scene: the same camera, rule and class.
	Class string `json:"class,omitempty"`
	// Peak is the highest value of each measure over the episode: a sensor's metrics, a
	// camera's confidence and object count.
	Peak map[string]float64 `json:"peak,omitempty"`

	// RuleVersion is the version of RuleID that raised the report (its latest reading);
	// Explanation why it matched; Joined why the report belongs to this incident.
	RuleVersion int          `json:"rule_version,omitempty"`
	Explanation *Explanation `json:"explanation,omitempty"`
	Joined      *Join        `json:"joined,omitempty"`
	// Rules are the further rules that matched the report's events (evidence that adds no
	// report), the latest match of each.
	Rules []RuleMatch `json:"rules,omitempty"`
}

// Events are the ids of the events a report names: its first and, for an episode, its latest
// reading. Each change that continues an episode names its own reading as the latest, so a
// projection that links the events of every change links every reading.
func (r Report) Events() []string {
	switch {
	case r.EventID == "":
		return nil
	case r.LastEventID == "" || r.LastEventID == r.EventID:
		return []string{r.EventID}
	}
	return []string{r.EventID, r.LastEventID}
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

	// The full work-order loop (issue 4). All optional, so first-cut records still decode.
	Evidence   *Evidence  `json:"evidence,omitempty"`    // 反馈: what the resolver reported
	VerifiedBy string     `json:"verified_by,omitempty"` // 核查: who checked it
	Returns    []Return   `json:"returns,omitempty"`     // 退单: every return, oldest first
	Lapsed     []string   `json:"lapsed,omitempty"`      // who let a sign-for limit pass, oldest first
	Extension  *Extension `json:"extension,omitempty"`   // 延期: the latest extension request
	Escalation string     `json:"escalation,omitempty"`  // 督办: community, street or district
	Reopens    int        `json:"reopens,omitempty"`     // 重办: how often it was reopened
	Callback   string     `json:"callback,omitempty"`    // 回访: satisfied or dissatisfied
	MergedInto string     `json:"merged_into,omitempty"` // 并单: the incident that took its reports
	Clock      *Clock     `json:"clock,omitempty"`       // the SLA clock of the current stage
	// 预警: the CAP messages published about it, oldest first (AlertMessage).
	Alerts []AlertMessage `json:"alerts,omitempty"`

	// The rule, and its version, whose signal opened the incident (each report names its own).
	RuleID      string `json:"rule_id,omitempty"`
	RuleVersion int    `json:"rule_version,omitempty"`
}

// Evidence is what a resolver reports with 反馈: notes, photo URLs and where they stood.
type Evidence struct {
	Note string `json:"note"`
	// Photos are the names of photos uploaded to the incident (IsPhotoName), or http(s) URLs of
	// photos another system keeps.
	Photos   []string  `json:"photos,omitempty"`
	Location *Point    `json:"location,omitempty"`
	By       string    `json:"by,omitempty"` // set by the incidents service: the resolver
	At       time.Time `json:"at,omitzero"`
}

// photoName is an uploaded photo's name: the SHA-256 of its bytes and its format.
var photoName = regexp.MustCompile(`^[0-9a-f]{64}\.(jpg|png|webp)$`)

// IsPhotoName says whether s names a photo uploaded to an incident
// (POST /api/v1/incidents/{id}/photos).
func IsPhotoName(s string) bool { return photoName.MatchString(s) }

// AlertMessage is one CAP message published about an incident (package alerts builds the
// document from it and the incident; docs/integration.md): first an Alert — by an operator's
// alert command or a rule whose raise says alert — then an Update whenever the incident's
// severity changes, and a Cancel when it ends. Messages are appended, never changed.
type AlertMessage struct {
	MsgType  string    `json:"msg_type"` // AlertAlert, AlertUpdate or AlertCancel
	Version  int64     `json:"version"`  // the incident version whose change published it
	Severity string    `json:"severity"` // the incident's severity when it was sent
	Sent     time.Time `json:"sent"`
	By       string    `json:"by"`             // who published it: a subject, "rule:<id>", or "system" for follow-ups
	Note     string    `json:"note,omitempty"` // the publisher's words, or why it ended

	// The incident as it was when the message was sent, so its document never changes:
	Status     Status `json:"status"`
	Reports    int    `json:"reports"`               // its report count
	AgencyName string `json:"agency_name,omitempty"` // the agency it was with
}

// CAP message types of AlertMessage.
const (
	AlertAlert  = "Alert"
	AlertUpdate = "Update"
	AlertCancel = "Cancel"
)

// Return is one 退单: who sent the incident back, why, and when.
type Return struct {
	WorkerID string    `json:"worker_id"`
	Reason   string    `json:"reason"`
	At       time.Time `json:"at"`
}

// Extension states.
const (
	ExtensionPending  = "pending"
	ExtensionApproved = "approved"
	ExtensionRefused  = "refused"
)

// Extension is a 延期 request and its decision. While pending, the SLA clock is paused.
type Extension struct {
	By          string    `json:"by"`
	Reason      string    `json:"reason"`
	ForSeconds  int64     `json:"for_seconds"` // how much more time was asked for
	RequestedAt time.Time `json:"requested_at"`
	State       string    `json:"state"` // pending, approved, refused
	DecidedBy   string    `json:"decided_by,omitempty"`
	DecidedAt   time.Time `json:"decided_at,omitzero"`
}

// The stages of the loop: one vocabulary for the SLA clocks (sign_for, handle, verify, which
// have clocks), the cockpit's live KPIs and the store's KPIs (all five).
const (
	StageDispatch = "dispatch" // created → dispatched (派遣); measured, no clock
	StageSignFor  = "sign_for" // dispatched → accepted (签收)
	StageHandle   = "handle"   // accepted → resolved (处置)
	StageVerify   = "verify"   // resolved → verified (核查)
	StageResolve  = "resolve"  // created → resolved, end to end; measured, no clock
)

// Clock is the SLA clock of an incident's current stage. It travels with the incident on the
// changelog, so a restart rebuilds every clock from the last record.
type Clock struct {
	Stage        string    `json:"stage"`
	LimitSeconds int64     `json:"limit_seconds"`
	WorkingHours bool      `json:"working_hours,omitempty"` // counts only working time
	StartedAt    time.Time `json:"started_at"`
	WarnAt       time.Time `json:"warn_at"`
	DueAt        time.Time `json:"due_at"`
	// PausedAt is set while an extension request is pending; RemainingSeconds is the time to
	// DueAt (working time if WorkingHours) when it was paused.
	PausedAt         time.Time `json:"paused_at,omitzero"`
	RemainingSeconds int64     `json:"remaining_seconds,omitempty"`
	Warned           bool      `json:"warned,omitempty"`
	Breached         bool      `json:"breached,omitempty"`
	Breaches         int       `json:"breaches,omitempty"` // escalations this stage caused
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
	Stage     string    `json:"stage,omitempty"`   // SLA actions: the stage whose clock fired
	Level     string    `json:"level,omitempty"`   // escalations: the level reached
	Related   string    `json:"related,omitempty"` // merge and split: the other incident
	// Location is where the actor was (WGS-84), when the command said: a worker's phone on
	// progress and resolution.
	Location *Point `json:"location,omitempty"`

	// Changes made by a signal (open, link, signal): its rule, rule version, event and why
	// it matched.
	RuleID      string       `json:"rule_id,omitempty"`
	RuleVersion int          `json:"rule_version,omitempty"`
	EventID     string       `json:"event_id,omitempty"`
	Explanation *Explanation `json:"explanation,omitempty"`
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
	ActionClose    = "close"    // verified → closed (结案)

	// The full loop (issue 4); docs/api.md has the table of states and roles.
	ActionReassign         = "reassign"          // dispatched → dispatched, to someone else
	ActionReturn           = "return"            // 退单: dispatched/accepted → returned (Reason)
	ActionProgress         = "progress"          // 处置进展: a note, state unchanged
	ActionRequestExtension = "request_extension" // 延期申请 (Reason, ExtendBy): pauses the clock
	ActionApproveExtension = "approve_extension" // supervisor: adds the time, resumes the clock
	ActionRefuseExtension  = "refuse_extension"  // supervisor (Reason): resumes the clock
	ActionVerify           = "verify"            // 核查: resolved → verified, not by the resolver
	ActionReopen           = "reopen"            // 重办: resolved/verified/closed → dispatched
	ActionCancel           = "cancel"            // 误报: open → cancelled (Reason)
	ActionEscalate         = "escalate"          // 督办: one level up (or to Level), state unchanged
	ActionCallback         = "callback"          // 回访 (Result): dissatisfied reopens
	ActionMerge            = "merge"             // 并单: Source's reports join this incident
	ActionSplit            = "split"             // 拆单: report EventID leaves for a new incident
	ActionSLA              = "sla"               // system: apply whatever the SLA clock has due
	ActionAlert            = "alert"             // 发布预警: publish a CAP alert (Note), state unchanged
)

// Escalation levels, bottom up: grid worker → community → street → district.
const (
	LevelCommunity = "community"
	LevelStreet    = "street"
	LevelDistrict  = "district"
)

// Call-back results (回访).
const (
	CallbackSatisfied    = "satisfied"
	CallbackDissatisfied = "dissatisfied"
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

	Evidence *Evidence `json:"evidence,omitempty"`  // resolve: notes, photos, position
	ExtendBy string    `json:"extend_by,omitempty"` // request_extension: a Go duration ("48h")
	Level    string    `json:"level,omitempty"`     // escalate, dispatch, reassign: level reached
	Result   string    `json:"result,omitempty"`    // callback: satisfied or dissatisfied
	Source   string    `json:"source,omitempty"`    // merge: the incident merged into this one
	EventID  string    `json:"event_id,omitempty"`  // split: the report to split out
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

// AuditRecord is one line of the append-only audit log (city.audit): every command and its
// outcome, refusals included (successes are also on the changelog), and every attempt to
// notify an agency. ID is unique per record; projections insert it once.
type AuditRecord struct {
	ID         string    `json:"id"`
	Kind       string    `json:"kind"` // command, notify or read
	CommandID  string    `json:"command_id,omitempty"`
	IncidentID string    `json:"incident_id"`
	Action     string    `json:"action"`
	Actor      Actor     `json:"actor"`
	OK         bool      `json:"ok"`
	Code       string    `json:"code,omitempty"`  // error code of a refusal, HTTP status of a notification
	Error      string    `json:"error,omitempty"` // why it was refused or failed
	From       Status    `json:"from,omitempty"`
	To         Status    `json:"to,omitempty"`
	Version    int64     `json:"version,omitempty"` // the incident version a success produced
	Reason     string    `json:"reason,omitempty"`
	Attempt    int       `json:"attempt,omitempty"` // notify: 1, 2, ...
	Target     string    `json:"target,omitempty"`  // notify: the agency code; read: the event id, when an event was read
	Fields     []string  `json:"fields,omitempty"`  // read: the personal-data fields shown unmasked ("reports.caller.phone")
	At         time.Time `json:"at"`
}

// Audit record kinds.
const (
	AuditCommand = "command"
	AuditNotify  = "notify"
	// AuditRead is a read that showed personal data unmasked (a supervisor's or an admin's
	// incident detail, list, search, timeline or event history): Actor read the object
	// (IncidentID, or the event Target) through Action (the API route) and saw Fields.
	AuditRead = "read"
	// AuditAccount is a change to a local account (Action: create, disable, enable, reset)
	// by Actor; Target is the username.
	AuditAccount = "account"
	// AuditSignIn is a sign-in to the pages, refused ones included (OK false, Error why);
	// Target is the username tried.
	AuditSignIn = "sign_in"
	// AuditPhoto is a photo attached to incident IncidentID by Actor (Target is its name, the
	// hash of its bytes): evidence is kept, so who brought it is too.
	AuditPhoto = "photo"
)

// Dispatch is the record of who an incident was sent to and why (派遣).
type Dispatch struct {
	ID         string     `json:"id"` // "<incident id>/<incident version>": one per decision
	IncidentID string     `json:"incident_id"`
	Assignment Assignment `json:"assignment"`
	Reason     string     `json:"reason"` // how the worker was chosen
	At         time.Time  `json:"at"`
	Level      string     `json:"level,omitempty"` // escalation level the decision reached, if any
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
