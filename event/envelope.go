package event

import (
	"encoding/json"
	"fmt"
	"time"

	ce "github.com/cloudevents/sdk-go/v2/event"
)

// Encode wraps data in a CloudEvents 1.0 envelope in structured JSON mode, the form every
// record on urbanbrain's own topics takes.
func Encode(ceType, id string, at time.Time, data any) ([]byte, error) {
	e := ce.New(ce.CloudEventsVersionV1)
	e.SetID(id)
	e.SetSource(Source)
	e.SetType(ceType)
	e.SetTime(at.UTC())
	if err := e.SetData(ce.ApplicationJSON, data); err != nil {
		return nil, fmt.Errorf("encode %s %s: %w", ceType, id, err)
	}
	b, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("encode %s %s: %w", ceType, id, err)
	}
	return b, nil
}

// Decode reads a structured-mode CloudEvent, checks that its type is wantType, and
// unmarshals its data into out. It returns the envelope for callers that need its id or time.
func Decode(b []byte, wantType string, out any) (ce.Event, error) {
	var e ce.Event
	if err := json.Unmarshal(b, &e); err != nil {
		return e, fmt.Errorf("decode cloudevent: %w", err)
	}
	if e.Type() != wantType {
		return e, fmt.Errorf("decode cloudevent %s: type %q, want %q", e.ID(), e.Type(), wantType)
	}
	if err := e.DataAs(out); err != nil {
		return e, fmt.Errorf("decode cloudevent %s data: %w", e.ID(), err)
	}
	return e, nil
}
