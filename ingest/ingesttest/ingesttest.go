// Package ingesttest helps test code that feeds or follows the ingest stage: a Sink that keeps
// what it is given as the records a broker would hold, and well-formed sample inputs for the
// three event types placed in a grid of a city map.
package ingesttest

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/urbanbrain/urbanbrain/event"
)

// Published is one record as it would sit on a topic.
type Published struct {
	Topic, Key string
	Value      []byte
}

// Encode turns one of ingest's outputs into the record the stage runner would produce: an
// event.Event on city.events with its own type as the CloudEvents type, an event.DeadLetter on
// city.deadletter. It is the part of the application's routes ingest's tests need.
func Encode(o event.Output) (Published, error) {
	var topic, ceType string
	switch d := o.Data.(type) {
	case event.Event:
		topic, ceType = event.TopicEvents, d.Type
	case event.DeadLetter:
		topic, ceType = event.TopicDeadLetter, event.TypeDeadLetter
	default:
		return Published{}, fmt.Errorf("ingesttest: ingest does not output %T", o.Data)
	}
	value, err := event.Encode(ceType, o.ID, o.Time, o.Data)
	if err != nil {
		return Published{}, err
	}
	return Published{Topic: topic, Key: o.Key, Value: value}, nil
}

// Recorder is an in-memory Sink: it encodes what it is given as the stage runner would and
// keeps the records, so a test can read them back. Set Err to make every Write fail (a broker
// that is down).
type Recorder struct {
	mu      sync.Mutex
	records []Published
	Err     error
}

// Write keeps the encoded records of outs, or returns r.Err and keeps none.
func (r *Recorder) Write(_ context.Context, outs event.Outputs) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.Err != nil {
		return r.Err
	}
	recs := make([]Published, 0, len(outs))
	for _, o := range outs {
		p, err := Encode(o)
		if err != nil {
			return err
		}
		recs = append(recs, p)
	}
	r.records = append(r.records, recs...)
	return nil
}

// Records returns what was written so far.
func (r *Recorder) Records() []Published {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Published(nil), r.records...)
}

// Topic returns what was written to one topic.
func (r *Recorder) Topic(topic string) []Published {
	var out []Published
	for _, p := range r.Records() {
		if p.Topic == topic {
			out = append(out, p)
		}
	}
	return out
}

// Reset forgets everything written.
func (r *Recorder) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.records = nil
}

// Sample payloads at a position (WGS-84 unless coordsys says otherwise).

// Sensor is a water-level reading.
func Sensor(p event.Point, coordsys string) event.SensorReading {
	lat, lon, battery := p.Lat, p.Lon, 87.0
	return event.SensorReading{
		DeviceID: "WL-0042", Kind: "water_level", Metrics: map[string]float64{"level_cm": 42.5},
		Lat: &lat, Lon: &lon, CoordSys: coordsys, Status: "ok", Battery: &battery,
	}
}

// Hotline is a 12345 complaint about a blocked drain.
func Hotline(ticketID string, p event.Point, coordsys string) event.HotlineTicket {
	lat, lon := p.Lat, p.Lon
	return event.HotlineTicket{
		TicketID: ticketID, Channel: "phone", CallerName: "张三", CallerPhone: "13812345678",
		RequestType: event.RequestComplaint, CategoryCode: "0101", Content: "小区门口下水道堵塞，污水漫到路面",
		Address: "云川市某路 18 号", Lat: &lat, Lon: &lon, CoordSys: coordsys, Urgency: "urgent",
	}
}

// Video is an illegal-parking detection.
func Video(p event.Point, coordsys string) event.VideoDetection {
	lat, lon := p.Lat, p.Lon
	return event.VideoDetection{
		CameraID: "CAM-7", Algorithm: "illegal_parking", Confidence: 0.93, BBox: []float64{10, 20, 300, 180},
		SnapshotURL: "https://snapshots.example/cam7/1.jpg", ObjectCount: 1, Lat: &lat, Lon: &lon, CoordSys: coordsys,
	}
}

// Structured wraps data in a CloudEvents 1.0 structured JSON record from a producer.
func Structured(tb testing.TB, ceType, id string, at time.Time, data any) []byte {
	tb.Helper()
	b, err := json.Marshal(map[string]any{
		"specversion": "1.0", "id": id, "source": "urn:producer:test", "type": ceType,
		"time": at.Format(time.RFC3339Nano), "datacontenttype": "application/json", "data": data,
	})
	if err != nil {
		tb.Fatalf("ingesttest: marshal sample: %v", err)
	}
	return b
}
