package ingest_test

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/urbanbrain/urbanbrain/city"
	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/ingest"
	"github.com/urbanbrain/urbanbrain/ingest/ingesttest"
)

// Decode gives, without publishing or counting, the event HandleRecord publishes, the
// duplicate it drops and the rejection it dead-letters; and it shares HandleRecord's dedup.
func TestDecodeIsHandleRecordWithoutPublishing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := grid(t, 3)
	gcj := city.WGS84ToGCJ02(g.Centroid) // must come out converted to WGS-84
	tests := []struct {
		name  string
		rec   ingest.Record
		class ingest.Class // 0: accepted
	}{
		{"structured sensor", sensorRecord(t, "d-1", 3), 0},
		{"structured sensor in gcj02", ingest.Record{Topic: event.TopicIngestSensor,
			Value: ingesttest.Structured(t, event.TypeSensorReading, "d-2", now.Add(-time.Minute), ingesttest.Sensor(gcj, event.CoordGCJ02))}, 0},
		{"bare hotline", ingest.Record{Topic: event.TopicIngestHotline,
			Value: mustJSON(t, ingesttest.Hotline("12345-20250601-0009", g.Centroid, ""))}, 0},
		{"not JSON", ingest.Record{Topic: event.TopicIngestSensor, Value: []byte("{")}, ingest.ClassMalformed},
		{"too old", ingest.Record{Topic: event.TopicIngestSensor,
			Value: ingesttest.Structured(t, event.TypeSensorReading, "d-3", now.AddDate(-1, 0, 0), ingesttest.Sensor(g.Centroid, ""))}, ingest.ClassTime},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dec, decRec := newService(t, ingest.Config{})
			pub, rec := newService(t, ingest.Config{})
			ev, err := dec.Decode(tt.rec)
			if herr := handle(ctx, pub, rec, tt.rec); herr != nil {
				t.Fatal(herr)
			}
			if c := dec.Stats().Total(); c != (ingest.Counts{}) {
				t.Errorf("Decode counted %+v; it must count nothing", c)
			}
			if tt.class != 0 {
				var rej *ingest.RejectError
				if !errors.As(err, &rej) || rej.Class != tt.class {
					t.Fatalf("Decode error = %v, want a %s rejection", err, tt.class)
				}
				dls := rec.Topic(event.TopicDeadLetter)
				if len(dls) != 1 {
					t.Fatalf("HandleRecord dead-lettered %d, want 1", len(dls))
				}
				var dl struct {
					Data event.DeadLetter `json:"data"`
				}
				if err := json.Unmarshal(dls[0].Value, &dl); err != nil {
					t.Fatal(err)
				}
				if dl.Data.Reason != rej.Reason {
					t.Errorf("dead letter reason %q, Decode's %q", dl.Data.Reason, rej.Reason)
				}
				return
			}
			if err != nil {
				t.Fatalf("Decode = %v", err)
			}
			evs := rec.Topic(event.TopicEvents)
			if len(evs) != 1 {
				t.Fatalf("HandleRecord published %d events, want 1", len(evs))
			}
			var got struct {
				Data event.Event `json:"data"`
			}
			if err := json.Unmarshal(evs[0].Value, &got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(ev, got.Data) {
				t.Errorf("Decode:\n%+v\nHandleRecord published:\n%+v", ev, got.Data)
			}
			if ev.Location == nil || ev.Area.Grid == "" {
				t.Errorf("event not located: %+v %+v", ev.Location, ev.Area)
			}
			// One dedup set: the record Decode accepted is a replay to both paths now.
			if _, err := dec.Decode(tt.rec); !errors.Is(err, ingest.ErrDuplicate) {
				t.Errorf("second Decode = %v, want ErrDuplicate", err)
			}
			if err := handle(ctx, dec, decRec, tt.rec); err != nil {
				t.Fatal(err)
			}
			if c := dec.Stats().Total(); c.Duplicates != 1 || c.Accepted != 0 {
				t.Errorf("HandleRecord after Decode counted %+v, want one duplicate", c)
			}
		})
	}
}
