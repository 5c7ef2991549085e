// Package incidentstest helps test the incident pipeline: an in-memory Bus that takes the
// outputs of the incidents service, the dispatcher and the webhook notifier, writes each to its
// topic as a CloudEvent, and decodes them for assertions; and Scenario, which runs the loop
// over that bus on a fake clock.
package incidentstest

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/urbanbrain/urbanbrain/event"
)

// Record is one record on the bus, as a Kafka writer would have received it.
type Record struct {
	Topic string
	Key   string
	Value []byte
}

// Bus keeps every record it is given, in order, as a log over all topics. The zero value is
// ready to use.
type Bus struct {
	mu      sync.Mutex
	records []Record
	fail    map[string]error
}

// route is the topic and CloudEvents type of an output's payload. It mirrors the output side
// of the composition root's route table (app/routes.go), which the application uses; a
// scenario must write every output where the application would.
func route(o event.Output) (topic, ceType string, err error) {
	switch d := o.Data.(type) {
	case event.Event:
		return event.TopicEvents, d.Type, nil
	case event.Signal:
		return event.TopicSignals, event.TypeSignal, nil
	case event.IncidentChange:
		return event.TopicIncidents, event.TypeIncidentChanged, nil
	case event.Command:
		return event.TopicCommands, event.TypeCommand, nil
	case event.CommandResult:
		return event.TopicResults, event.TypeCommandResult, nil
	case event.AuditRecord:
		return event.TopicAudit, event.TypeAudit, nil
	case event.Dispatch:
		return event.TopicDispatch, event.TypeDispatch, nil
	case event.DeadLetter:
		return event.TopicDeadLetter, event.TypeDeadLetter, nil
	}
	return "", "", fmt.Errorf("incidentstest: output %s has no route for %T", o.ID, o.Data)
}

// Emit writes outputs to their topics, in order, each encoded as the application encodes it.
// If one cannot be written (no route, an encoding error, or a topic set to fail by FailOn),
// none is. It makes a Bus a webhook.Emitter.
func (b *Bus) Emit(_ context.Context, outs event.Outputs) error {
	recs := make([]Record, 0, len(outs))
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, o := range outs {
		topic, ceType, err := route(o)
		if err != nil {
			return err
		}
		if err := b.fail[topic]; err != nil {
			return err
		}
		value, err := event.Encode(ceType, o.ID, o.Time, o.Data)
		if err != nil {
			return fmt.Errorf("incidentstest: encode %s: %w", o.ID, err)
		}
		recs = append(recs, Record{Topic: topic, Key: o.Key, Value: value})
	}
	b.records = append(b.records, recs...)
	return nil
}

// Write is Emit failing the test on an error.
func (b *Bus) Write(t testing.TB, outs event.Outputs) {
	t.Helper()
	if err := b.Emit(t.Context(), outs); err != nil {
		t.Fatal(err)
	}
}

// Publish writes an encoded record, as a producer outside the handlers does (the API
// publishing a command), or returns the error set by FailOn for its topic.
func (b *Bus) Publish(_ context.Context, topic, key string, value []byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.fail[topic]; err != nil {
		return err
	}
	b.records = append(b.records, Record{Topic: topic, Key: key, Value: value})
	return nil
}

// FailOn makes every write to topic fail with err until FailOn(topic, nil).
func (b *Bus) FailOn(topic string, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.fail == nil {
		b.fail = make(map[string]error)
	}
	if err == nil {
		delete(b.fail, topic)
		return
	}
	b.fail[topic] = err
}

// Records returns the records written to topic so far, or every record if topic is "".
func (b *Bus) Records(topic string) []Record {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []Record
	for _, r := range b.records {
		if topic == "" || r.Topic == topic {
			out = append(out, r)
		}
	}
	return out
}

// Len is how many records have been written to any topic.
func (b *Bus) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.records)
}

// Decode decodes a record's CloudEvent of type ceType, failing the test if it is not one.
func Decode[T any](t testing.TB, r Record, ceType string) T {
	t.Helper()
	var v T
	if _, err := event.Decode(r.Value, ceType, &v); err != nil {
		t.Fatalf("record on %s (key %s): %v", r.Topic, r.Key, err)
	}
	return v
}

func decodeAll[T any](t testing.TB, b *Bus, topic, ceType string) []T {
	t.Helper()
	var out []T
	for _, r := range b.Records(topic) {
		out = append(out, Decode[T](t, r, ceType))
	}
	return out
}

// Changes decodes the city.incidents changelog.
func (b *Bus) Changes(t testing.TB) []event.IncidentChange {
	t.Helper()
	return decodeAll[event.IncidentChange](t, b, event.TopicIncidents, event.TypeIncidentChanged)
}

// Results decodes city.command-results.
func (b *Bus) Results(t testing.TB) []event.CommandResult {
	t.Helper()
	return decodeAll[event.CommandResult](t, b, event.TopicResults, event.TypeCommandResult)
}

// Commands decodes city.commands.
func (b *Bus) Commands(t testing.TB) []event.Command {
	t.Helper()
	return decodeAll[event.Command](t, b, event.TopicCommands, event.TypeCommand)
}

// Dispatches decodes city.dispatch.
func (b *Bus) Dispatches(t testing.TB) []event.Dispatch {
	t.Helper()
	return decodeAll[event.Dispatch](t, b, event.TopicDispatch, event.TypeDispatch)
}

// Audit decodes city.audit.
func (b *Bus) Audit(t testing.TB) []event.AuditRecord {
	t.Helper()
	return decodeAll[event.AuditRecord](t, b, event.TopicAudit, event.TypeAudit)
}
