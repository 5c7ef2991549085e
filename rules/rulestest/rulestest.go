// Package rulestest helps test code around the rules engine: a Publisher that records what it
// is given, and builders for the three kinds of event with a plausible area.
package rulestest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/urbanbrain/urbanbrain/event"
)

// Record is one Publish call.
type Record struct {
	Topic string
	Key   string
	Value []byte
}

// Recorder is a rules.Publisher that keeps every record, or fails with Err when it is set.
// It is safe for concurrent use.
type Recorder struct {
	mu      sync.Mutex
	records []Record
	err     error
}

// Publish records the call, or returns the error set by FailWith.
func (r *Recorder) Publish(_ context.Context, topic, key string, value []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	r.records = append(r.records, Record{Topic: topic, Key: key, Value: append([]byte(nil), value...)})
	return nil
}

// FailWith makes every later Publish return err; nil makes it succeed again.
func (r *Recorder) FailWith(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.err = err
}

// Records returns what has been published so far.
func (r *Recorder) Records() []Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Record(nil), r.records...)
}

// Signals decodes every record as a signal CloudEvent, failing t on anything else.
func (r *Recorder) Signals(t testing.TB) []event.Signal {
	t.Helper()
	var out []event.Signal
	for _, rec := range r.Records() {
		var sig event.Signal
		if _, err := event.Decode(rec.Value, event.TypeSignal, &sig); err != nil {
			t.Fatalf("record on %s is not a signal: %v", rec.Topic, err)
		}
		out = append(out, sig)
	}
	return out
}

// At is the time the builders give events unless told otherwise: 14:30 Beijing time on a
// Wednesday.
var At = time.Date(2025, 7, 16, 6, 30, 0, 0, time.UTC)

// Area is the area the builders give events.
var Area = event.Area{
	District: "990102", DistrictName: "望江区",
	Street: "990102001", StreetName: "临溪街道",
	Community: "990102001001", CommunityName: "柳岸社区",
	Grid: "990102001001-03", GridName: "第三网格",
}

func base(id, typ string) event.Event {
	return event.Event{
		ID: id, Type: typ, Source: "test", Time: At, Received: At.Add(time.Second),
		Location: &event.Point{Lon: 120.163, Lat: 30.245}, Area: Area,
	}
}

// Sensor returns a sensor reading event.
func Sensor(id, deviceID, kind string, metrics map[string]float64) event.Event {
	ev := base(id, event.TypeSensorReading)
	ev.Sensor = &event.SensorReading{DeviceID: deviceID, Kind: kind, Metrics: metrics, Status: "ok"}
	return ev
}

// Hotline returns a 12345 work order event, with a caller whose name and phone are personal
// data a rule must never see.
func Hotline(id, requestType, categoryCode, urgency, content string) event.Event {
	ev := base(id, event.TypeHotlineTicket)
	ev.Hotline = &event.HotlineTicket{
		TicketID: "T" + id, Channel: "phone", CallerName: "张三", CallerPhone: "13812345678",
		RequestType: requestType, CategoryCode: categoryCode, Content: content,
		Address: "柳岸路 12 号", DistrictCode: Area.District, Urgency: urgency, ReceivedAt: At,
	}
	return ev
}

// Video returns an AI camera detection event.
func Video(id, cameraID, algorithm string, confidence float64, objects int) event.Event {
	ev := base(id, event.TypeVideoDetection)
	ev.Video = &event.VideoDetection{
		CameraID: cameraID, Algorithm: algorithm, Confidence: confidence, ObjectCount: objects,
		SnapshotURL: "https://cam.example/" + cameraID + ".jpg",
	}
	return ev
}
