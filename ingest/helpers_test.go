package ingest_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/urbanbrain/urbanbrain/city"
	"github.com/urbanbrain/urbanbrain/city/citytest"
	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/ingest"
	"github.com/urbanbrain/urbanbrain/ingest/ingesttest"
)

// now is the fixed clock of every test: 08:30 in Shanghai.
var now = time.Date(2025, 6, 1, 8, 30, 0, 0, time.FixedZone("CST", 8*3600))

func demoMap(tb testing.TB) *city.Map { return citytest.Demo(tb) }

// grid returns the i-th grid of the demo city, cycling.
func grid(tb testing.TB, i int) city.Grid {
	tb.Helper()
	gs := demoMap(tb).Grids()
	if len(gs) == 0 {
		tb.Fatal("demo city has no grids")
	}
	return gs[i%len(gs)]
}

func newService(tb testing.TB, cfg ingest.Config) (*ingest.Service, *ingesttest.Recorder) {
	tb.Helper()
	rec := &ingesttest.Recorder{}
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return now }
	}
	s, err := ingest.New(cfg, demoMap(tb), rec, nil)
	if err != nil {
		tb.Fatalf("ingest.New: %v", err)
	}
	return s, rec
}

// handle runs a record through HandleRecord and writes what it returns to rec, as the stage
// runner does (which retries the write; a test's Recorder fails only when told to).
func handle(ctx context.Context, s *ingest.Service, rec *ingesttest.Recorder, r ingest.Record) error {
	outs, err := s.HandleRecord(ctx, r)
	if err != nil {
		return err
	}
	if len(outs) == 0 {
		return nil
	}
	return rec.Write(ctx, outs)
}

// sensorRecord is a structured sensor reading from the i-th grid's centroid on the sensor topic.
func sensorRecord(tb testing.TB, id string, i int) ingest.Record {
	tb.Helper()
	return ingest.Record{
		Topic: event.TopicIngestSensor, Key: "WL-0042",
		Value: ingesttest.Structured(tb, event.TypeSensorReading, id, now.Add(-time.Minute), ingesttest.Sensor(grid(tb, i).Centroid, "")),
	}
}

func post(s http.Handler, contentType string, body []byte, headers ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/api/v1/events", bytes.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, req)
	return w
}

// decodeEvent reads a record of city.events, which must be of type typ.
func decodeEvent(tb testing.TB, p ingesttest.Published, typ string) event.Event {
	tb.Helper()
	if p.Topic != event.TopicEvents {
		tb.Fatalf("record on %s, want %s", p.Topic, event.TopicEvents)
	}
	var ev event.Event
	if _, err := event.Decode(p.Value, typ, &ev); err != nil {
		tb.Fatalf("decode event: %v", err)
	}
	return ev
}

// decodeDeadLetter reads a record of city.deadletter.
func decodeDeadLetter(tb testing.TB, p ingesttest.Published) event.DeadLetter {
	tb.Helper()
	if p.Topic != event.TopicDeadLetter {
		tb.Fatalf("record on %s, want %s", p.Topic, event.TopicDeadLetter)
	}
	var dl event.DeadLetter
	if _, err := event.Decode(p.Value, event.TypeDeadLetter, &dl); err != nil {
		tb.Fatalf("decode dead letter: %v", err)
	}
	return dl
}
