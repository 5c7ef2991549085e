// Package ingesttest helps test code that feeds or follows the ingest stage: a Publisher that
// keeps what it is given, and well-formed sample inputs for the three event types placed in
// a grid of a city map.
package ingesttest

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/urbanbrain/urbanbrain/event"
)

// Published is one record handed to a Recorder.
type Published struct {
	Topic, Key string
	Value      []byte
}

// Recorder is an in-memory Publisher: the recipient of what ingest publishes, so a test can
// read it back. Set Err to make every Publish fail (a broker that is down).
type Recorder struct {
	mu      sync.Mutex
	records []Published
	Err     error
}

// Publish keeps a copy of the record, or returns r.Err.
func (r *Recorder) Publish(_ context.Context, topic, key string, value []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.Err != nil {
		return r.Err
	}
	r.records = append(r.records, Published{Topic: topic, Key: key, Value: append([]byte(nil), value...)})
	return nil
}

// Records returns what was published so far.
func (r *Recorder) Records() []Published {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Published(nil), r.records...)
}

// Topic returns what was published to one topic.
func (r *Recorder) Topic(topic string) []Published {
	var out []Published
	for _, p := range r.Records() {
		if p.Topic == topic {
			out = append(out, p)
		}
	}
	return out
}

// Reset forgets everything published.
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
