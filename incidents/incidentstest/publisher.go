// Package incidentstest helps test the incident pipeline: an in-memory Publisher that records
// what the incidents service and the dispatcher publish and decodes it for assertions.
package incidentstest

import (
	"context"
	"sync"
	"testing"

	"github.com/urbanbrain/urbanbrain/event"
)

// Record is one published record, as a Kafka writer would have received it.
type Record struct {
	Topic string
	Key   string
	Value []byte
}

// Publisher keeps every record it is given, in order. The zero value is ready to use.
type Publisher struct {
	mu      sync.Mutex
	records []Record
	fail    map[string]error
}

// Publish records the record, or returns the error set by FailOn for its topic.
func (p *Publisher) Publish(_ context.Context, topic, key string, value []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.fail[topic]; err != nil {
		return err
	}
	p.records = append(p.records, Record{Topic: topic, Key: key, Value: value})
	return nil
}

// FailOn makes every publish to topic fail with err until FailOn(topic, nil).
func (p *Publisher) FailOn(topic string, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fail == nil {
		p.fail = make(map[string]error)
	}
	if err == nil {
		delete(p.fail, topic)
		return
	}
	p.fail[topic] = err
}

// Records returns the records published to topic so far, or every record if topic is "".
func (p *Publisher) Records(topic string) []Record {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []Record
	for _, r := range p.records {
		if topic == "" || r.Topic == topic {
			out = append(out, r)
		}
	}
	return out
}

// Len is how many records have been published to any topic.
func (p *Publisher) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.records)
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

func decodeAll[T any](t testing.TB, p *Publisher, topic, ceType string) []T {
	t.Helper()
	var out []T
	for _, r := range p.Records(topic) {
		out = append(out, Decode[T](t, r, ceType))
	}
	return out
}

// Changes decodes the city.incidents changelog.
func (p *Publisher) Changes(t testing.TB) []event.IncidentChange {
	t.Helper()
	return decodeAll[event.IncidentChange](t, p, event.TopicIncidents, event.TypeIncidentChanged)
}

// Results decodes city.command-results.
func (p *Publisher) Results(t testing.TB) []event.CommandResult {
	t.Helper()
	return decodeAll[event.CommandResult](t, p, event.TopicResults, event.TypeCommandResult)
}

// Commands decodes city.commands.
func (p *Publisher) Commands(t testing.TB) []event.Command {
	t.Helper()
	return decodeAll[event.Command](t, p, event.TopicCommands, event.TypeCommand)
}

// Dispatches decodes city.dispatch.
func (p *Publisher) Dispatches(t testing.TB) []event.Dispatch {
	t.Helper()
	return decodeAll[event.Dispatch](t, p, event.TopicDispatch, event.TypeDispatch)
}
