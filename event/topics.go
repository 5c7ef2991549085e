package event

// Topics. Every record on them is a CloudEvent in structured JSON mode, keyed by the street
// code of its area (see Area.Key) so one consumer owns all the state of a street.
const (
	TopicIngestSensor  = "city.ingest.sensor"   // raw sensor readings from producers
	TopicIngestHotline = "city.ingest.hotline"  // raw 12345 work orders
	TopicIngestVideo   = "city.ingest.video"    // raw AI camera detections
	TopicEvents        = "city.events"          // validated, located events (Event)
	TopicSignals       = "city.signals"         // rule matches (Signal)
	TopicCommands      = "city.commands"        // incident commands (Command)
	TopicResults       = "city.command-results" // outcome of each command (CommandResult)
	TopicIncidents     = "city.incidents"       // changelog, the system of record (IncidentChange)
	TopicDispatch      = "city.dispatch"        // dispatch records (Dispatch)
	TopicDeadLetter    = "city.deadletter"      // rejected input with its reason (DeadLetter)
	TopicAudit         = "city.audit"           // append-only audit log (AuditRecord)
)

// TopicRules carries rule versions (RuleVersion records of package rules, keyed by
// "<rule id>@<version>"): every instance reads it whole on start and follows it to reload
// rules without a restart. It is compacted, not time-retained, and is not in AllTopics
// because it is created with that configuration and a single partition (see app/rules.go).
const TopicRules = "city.rules"

// TypeRuleVersion is the CloudEvents type of a record on TopicRules.
const TypeRuleVersion = "city.rule.version"

// TopicAccounts carries the local accounts (auth.Account, keyed by username, the latest
// version of each kept by compaction): every instance reads it whole on start and follows
// it, so a sign-in works on any node. Like TopicRules it is compacted, has one partition and
// is not in AllTopics (app/accounts.go creates it).
const TopicAccounts = "city.accounts"

// TypeAccount is the CloudEvents type of a record on TopicAccounts.
const TypeAccount = "city.account"

// IngestTopics maps each raw ingest topic to the event type a bare payload on it has.
var IngestTopics = map[string]string{
	TopicIngestSensor:  TypeSensorReading,
	TopicIngestHotline: TypeHotlineTicket,
	TopicIngestVideo:   TypeVideoDetection,
}

// AllTopics lists every topic the system creates on start.
func AllTopics() []string {
	return []string{
		TopicIngestSensor, TopicIngestHotline, TopicIngestVideo,
		TopicEvents, TopicSignals, TopicCommands, TopicResults,
		TopicIncidents, TopicDispatch, TopicDeadLetter, TopicAudit,
	}
}

// CloudEvents types.
const (
	TypeSensorReading  = "city.sensor.reading"
	TypeHotlineTicket  = "city.hotline.ticket"
	TypeVideoDetection = "city.video.detection"

	TypeSignal          = "city.signal"
	TypeCommand         = "city.incident.command"
	TypeCommandResult   = "city.incident.command-result"
	TypeIncidentChanged = "city.incident.changed"
	TypeDispatch        = "city.dispatch.assigned"
	TypeDeadLetter      = "city.deadletter"
	TypeAudit           = "city.audit.record"
)

// Source is the CloudEvents source urbanbrain writes on its own records.
const Source = "urbanbrain"
