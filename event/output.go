package event

import "time"

// Output is one record a handler produces. Domain handlers return outputs instead of choosing
// topics: the composition root's routes file (app/routes.go) binds each payload type to its
// topic and CloudEvents type, and the stage runner produces them asynchronously, committing an
// input only once every output of it is acknowledged.
type Output struct {
	// Key is the partition key: the street code of the record's area.
	Key string
	// ID is the CloudEvent id, the consumers' idempotency key.
	ID string
	// Time is the CloudEvent time.
	Time time.Time
	// Data is the payload: one of Event, Signal, IncidentChange, Command, CommandResult,
	// AuditRecord, Dispatch or DeadLetter (a pointer to one is not accepted).
	Data any
}

// Outputs is what one input produced, in the order it must be written.
type Outputs []Output
