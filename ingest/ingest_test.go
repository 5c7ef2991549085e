package ingest_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/urbanbrain/urbanbrain/city"
	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/ingest"
	"github.com/urbanbrain/urbanbrain/ingest/ingesttest"
)

func mustJSON(tb testing.TB, v any) []byte {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// TestHandleRecordDecodesEveryForm sends each accepted form (structured, data_base64, binary,
// bare) and checks the published event field by field.
func TestHandleRecordDecodesEveryForm(t *testing.T) {
	t.Parallel()
	at := now.Add(-2 * time.Minute)
	received := now.Add(-5 * time.Minute)
	g := grid(t, 5)
	sensor := ingesttest.Sensor(g.Centroid, "")
	hotline := ingesttest.Hotline("12345-20250601-0001", g.Centroid, "")
	video := ingesttest.Video(g.Centroid, "")
	bareHotline := hotline
	bareHotline.ReceivedAt = received

	tests := []struct {
		name       string
		rec        ingest.Record
		typ        string
		id         string // "" means: a content hash, checked by prefix
		source     string
		time       time.Time
		checkEvent func(t *testing.T, ev event.Event)
	}{
		{
			name: "structured sensor",
			rec:  ingest.Record{Topic: event.TopicIngestSensor, Key: "k", Value: ingesttest.Structured(t, event.TypeSensorReading, "s-1", at, sensor)},
			typ:  event.TypeSensorReading, id: "s-1", source: "urn:producer:test", time: at,
			checkEvent: func(t *testing.T, ev event.Event) {
				if ev.Sensor == nil || ev.Sensor.DeviceID != "WL-0042" || ev.Sensor.Metrics["level_cm"] != 42.5 || *ev.Sensor.Battery != 87 {
					t.Errorf("sensor payload = %+v", ev.Sensor)
				}
			},
		},
		{
			name: "structured hotline",
			rec:  ingest.Record{Topic: event.TopicIngestHotline, Value: ingesttest.Structured(t, event.TypeHotlineTicket, "h-1", at, hotline)},
			typ:  event.TypeHotlineTicket, id: "h-1", source: "urn:producer:test", time: at,
			checkEvent: func(t *testing.T, ev event.Event) {
				if ev.Hotline == nil || ev.Hotline.Content != hotline.Content || ev.Hotline.RequestType != event.RequestComplaint {
					t.Errorf("hotline payload = %+v", ev.Hotline)
				}
			},
		},
		{
			name: "structured video",
			rec:  ingest.Record{Topic: event.TopicIngestVideo, Value: ingesttest.Structured(t, event.TypeVideoDetection, "v-1", at, video)},
			typ:  event.TypeVideoDetection, id: "v-1", source: "urn:producer:test", time: at,
			checkEvent: func(t *testing.T, ev event.Event) {
				if ev.Video == nil || ev.Video.Confidence != 0.93 || len(ev.Video.BBox) != 4 {
					t.Errorf("video payload = %+v", ev.Video)
				}
			},
		},
		{
			name: "video type on the sensor topic",
			rec:  ingest.Record{Topic: event.TopicIngestSensor, Value: ingesttest.Structured(t, event.TypeVideoDetection, "v-2", at, video)},
			typ:  event.TypeVideoDetection, id: "v-2", source: "urn:producer:test", time: at,
		},
		{
			name: "structured data_base64",
			rec: ingest.Record{Topic: event.TopicIngestSensor, Value: mustJSON(t, map[string]any{
				"specversion": "1.0", "id": "b64-1", "source": "/plc/7", "type": event.TypeSensorReading,
				"time": at.Format(time.RFC3339), "data_base64": base64.StdEncoding.EncodeToString(mustJSON(t, sensor)),
			})},
			typ: event.TypeSensorReading, id: "b64-1", source: "/plc/7", time: at,
		},
		{
			name: "time within the allowed clock skew",
			rec:  ingest.Record{Topic: event.TopicIngestSensor, Value: ingesttest.Structured(t, event.TypeSensorReading, "skew-1", now.Add(9*time.Minute), sensor)},
			typ:  event.TypeSensorReading, id: "skew-1", source: "urn:producer:test", time: now.Add(9 * time.Minute),
		},
		{
			name: "structured without time takes the clock",
			rec: ingest.Record{Topic: event.TopicIngestSensor, Value: mustJSON(t, map[string]any{
				"specversion": "1.0", "id": "nt-1", "source": "/plc/7", "type": event.TypeSensorReading, "data": sensor,
			})},
			typ: event.TypeSensorReading, id: "nt-1", source: "/plc/7", time: now,
		},
		{
			name: "binary",
			rec: ingest.Record{Topic: event.TopicIngestSensor, Key: "WL-0042", Value: mustJSON(t, sensor), Headers: map[string]string{
				"ce_specversion": "1.0", "ce_id": "bin-1", "ce_type": event.TypeSensorReading, "ce_source": "/gateway/3",
				"ce_time": at.Format(time.RFC3339Nano), "content-type": "application/json",
			}},
			typ: event.TypeSensorReading, id: "bin-1", source: "/gateway/3", time: at,
		},
		{
			name: "bare sensor: id from the content hash, time from the clock",
			rec:  ingest.Record{Topic: event.TopicIngestSensor, Value: mustJSON(t, sensor)},
			typ:  event.TypeSensorReading, source: event.TopicIngestSensor, time: now,
		},
		{
			name: "bare hotline: id from ticket_id, time from received_at",
			rec:  ingest.Record{Topic: event.TopicIngestHotline, Value: mustJSON(t, bareHotline)},
			typ:  event.TypeHotlineTicket, id: "12345-20250601-0001", source: event.TopicIngestHotline, time: received,
			checkEvent: func(t *testing.T, ev event.Event) {
				if !ev.Hotline.ReceivedAt.Equal(received) || ev.Hotline.ReceivedAt.Location() != time.UTC {
					t.Errorf("received_at = %v, want %v in UTC", ev.Hotline.ReceivedAt, received)
				}
			},
		},
		{
			name: "bare video",
			rec:  ingest.Record{Topic: event.TopicIngestVideo, Value: mustJSON(t, video)},
			typ:  event.TypeVideoDetection, source: event.TopicIngestVideo, time: now,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, rec := newService(t, ingest.Config{})
			if err := handle(context.Background(), s, rec, tt.rec); err != nil {
				t.Fatalf("HandleRecord: %v", err)
			}
			got := rec.Records()
			if len(got) != 1 {
				t.Fatalf("published %d records, want 1: %+v", len(got), got)
			}
			if got[0].Key != g.Street {
				t.Errorf("key = %q, want the street %q", got[0].Key, g.Street)
			}
			ev := decodeEvent(t, got[0], tt.typ)
			if tt.id != "" && ev.ID != tt.id {
				t.Errorf("id = %q, want %q", ev.ID, tt.id)
			}
			if tt.id == "" && (!strings.HasPrefix(ev.ID, "sha256-") || len(ev.ID) != len("sha256-")+32) {
				t.Errorf("id = %q, want a content hash sha256-<32 hex>", ev.ID)
			}
			if ev.Type != tt.typ || ev.Source != tt.source {
				t.Errorf("type, source = %q, %q; want %q, %q", ev.Type, ev.Source, tt.typ, tt.source)
			}
			if !ev.Time.Equal(tt.time) || ev.Time.Location() != time.UTC {
				t.Errorf("time = %v, want %v in UTC", ev.Time, tt.time)
			}
			if !ev.Received.Equal(now) {
				t.Errorf("received = %v, want %v", ev.Received, now)
			}
			if ev.Area != g.Area() {
				t.Errorf("area = %+v, want %+v", ev.Area, g.Area())
			}
			if ev.Location == nil || *ev.Location != g.Centroid {
				t.Errorf("location = %v, want %v", ev.Location, g.Centroid)
			}
			if tt.checkEvent != nil {
				tt.checkEvent(t, ev)
			}
		})
	}
}

// TestCoordinatesEndUpInWGS84 sends a grid's centroid as an AMap (GCJ-02) or Baidu (BD-09)
// producer would, and wants the WGS-84 centroid back, in the event and in its payload.
func TestCoordinatesEndUpInWGS84(t *testing.T) {
	t.Parallel()
	g := grid(t, 17)
	tests := []struct {
		coordsys string
		sent     event.Point
	}{
		{event.CoordGCJ02, city.WGS84ToGCJ02(g.Centroid)},
		{event.CoordBD09, city.WGS84ToBD09(g.Centroid)},
	}
	for _, tt := range tests {
		t.Run(tt.coordsys, func(t *testing.T) {
			t.Parallel()
			// The offset is hundreds of metres: if ingest skipped the conversion, this test fails.
			if math.Abs(tt.sent.Lon-g.Centroid.Lon) < 1e-3 && math.Abs(tt.sent.Lat-g.Centroid.Lat) < 1e-3 {
				t.Fatalf("%s point %v is too close to the WGS-84 one to test anything", tt.coordsys, tt.sent)
			}
			s, rec := newService(t, ingest.Config{})
			r := ingest.Record{Topic: event.TopicIngestVideo, Value: ingesttest.Structured(t, event.TypeVideoDetection, "v-"+tt.coordsys, now, ingesttest.Video(tt.sent, tt.coordsys))}
			if err := handle(context.Background(), s, rec, r); err != nil {
				t.Fatal(err)
			}
			got := rec.Topic(event.TopicEvents)
			if len(got) != 1 {
				t.Fatalf("published %d events, want 1 (all: %+v)", len(got), rec.Records())
			}
			ev := decodeEvent(t, got[0], event.TypeVideoDetection)
			const tolerance = 1e-6 // about 0.1 m
			if ev.Location == nil || math.Abs(ev.Location.Lon-g.Centroid.Lon) > tolerance || math.Abs(ev.Location.Lat-g.Centroid.Lat) > tolerance {
				t.Fatalf("location = %v, want %v", ev.Location, g.Centroid)
			}
			if ev.Video.CoordSys != event.CoordWGS84 || *ev.Video.Lat != ev.Location.Lat || *ev.Video.Lon != ev.Location.Lon {
				t.Errorf("payload position = %v, %v (%s), want the WGS-84 location %v", *ev.Video.Lat, *ev.Video.Lon, ev.Video.CoordSys, *ev.Location)
			}
			if ev.Area != g.Area() {
				t.Errorf("area = %+v, want %+v", ev.Area, g.Area())
			}
		})
	}
}

func TestReplayIsDropped(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, rec := newService(t, ingest.Config{})
	first := sensorRecord(t, "r-1", 0)
	bare := ingest.Record{Topic: event.TopicIngestSensor, Value: mustJSON(t, ingesttest.Sensor(grid(t, 1).Centroid, ""))}
	// The same id under another type is another event.
	sameIDOtherType := ingest.Record{Topic: event.TopicIngestVideo, Value: ingesttest.Structured(t, event.TypeVideoDetection, "r-1", now, ingesttest.Video(grid(t, 2).Centroid, ""))}
	for _, r := range []ingest.Record{first, first, bare, bare, sameIDOtherType, first} {
		if err := handle(ctx, s, rec, r); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(rec.Topic(event.TopicEvents)); n != 3 {
		t.Errorf("published %d events, want 3", n)
	}
	if n := len(rec.Topic(event.TopicDeadLetter)); n != 0 {
		t.Errorf("dead-lettered %d replays, want 0: replays are dropped, not refused", n)
	}
	st := s.Stats()
	if c := st.ByType[event.TypeSensorReading]; c.Accepted != 2 || c.Duplicates != 3 {
		t.Errorf("sensor counts = %+v, want 2 accepted, 3 duplicates", c)
	}
	if c := st.Total(); c.Accepted != 3 || c.Duplicates != 3 || c.Rejected != 0 {
		t.Errorf("total = %+v", c)
	}
}

// TestReplayAfterDedupWindow: the set is bounded, so an id older than DedupSize others is
// accepted again (downstream idempotency takes it from there).
func TestReplayAfterDedupWindow(t *testing.T) {
	t.Parallel()
	s, rec := newService(t, ingest.Config{DedupSize: 2})
	for _, id := range []string{"a", "b", "a", "c", "a"} {
		if err := handle(context.Background(), s, rec, sensorRecord(t, id, 0)); err != nil {
			t.Fatal(err)
		}
	}
	// a, b accepted; a duplicate; c evicts a; a accepted again.
	if n := len(rec.Topic(event.TopicEvents)); n != 4 {
		t.Errorf("published %d events, want 4", n)
	}
}

// TestHandleRecordReturnsOutputs: the stage path writes nothing itself (a broken sink does not
// matter to it); it returns the event as a value keyed by its street, a dead letter keyed by
// the record's key, and nothing for a replay, and counts each as it returns it.
func TestHandleRecordReturnsOutputs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, rec := newService(t, ingest.Config{})
	rec.Err = errors.New("broker down: HandleRecord must not care")
	g := grid(t, 0)
	r := sensorRecord(t, "out-1", 0)

	outs, err := s.HandleRecord(ctx, r)
	if err != nil || len(outs) != 1 {
		t.Fatalf("HandleRecord = %+v, %v; want one output", outs, err)
	}
	ev, ok := outs[0].Data.(event.Event)
	if !ok {
		t.Fatalf("output data is %T, want an event.Event value", outs[0].Data)
	}
	if o := outs[0]; o.Key != g.Street || o.ID != "out-1" || !o.Time.Equal(now.Add(-time.Minute)) || ev.ID != o.ID || ev.Area != g.Area() {
		t.Errorf("output = {key %q, id %q, time %v}, event %+v; want key %q, id out-1, the event's time", o.Key, o.ID, o.Time, ev, g.Street)
	}

	if outs, err := s.HandleRecord(ctx, r); err != nil || len(outs) != 0 {
		t.Errorf("replay = %+v, %v; want no output", outs, err)
	}

	bad := ingest.Record{Topic: event.TopicIngestSensor, Key: "dev-1", Value: []byte("{")}
	outs, err = s.HandleRecord(ctx, bad)
	if err != nil || len(outs) != 1 {
		t.Fatalf("HandleRecord(bad) = %+v, %v; want one output", outs, err)
	}
	dl, ok := outs[0].Data.(event.DeadLetter)
	if !ok {
		t.Fatalf("output data is %T, want an event.DeadLetter value", outs[0].Data)
	}
	if o := outs[0]; o.Key != "dev-1" || !strings.HasPrefix(o.ID, "dl-") || !o.Time.Equal(now) || !strings.Contains(dl.Reason, "malformed JSON") || string(dl.Original) != "{" {
		t.Errorf("dead letter output = %+v", o)
	}
	again, _ := s.HandleRecord(ctx, bad)
	if len(again) != 1 || again[0].ID != outs[0].ID {
		t.Errorf("the same bad record again = %+v, want the same dead letter id %s", again, outs[0].ID)
	}
	if c := s.Stats().Total(); c.Accepted != 1 || c.Duplicates != 1 || c.Rejected != 2 {
		t.Errorf("counts = %+v, want 1 accepted, 1 duplicate, 2 rejected", c)
	}
	if n := len(rec.Records()); n != 0 {
		t.Errorf("the sink got %d records from the stage path", n)
	}
}

func TestEventOutsideEveryGridStillGoesOn(t *testing.T) {
	t.Parallel()
	beijing := event.Point{Lon: 116.397, Lat: 39.909}
	ticket := ingesttest.Hotline("T-district", event.Point{}, "")
	ticket.Lat, ticket.Lon, ticket.DistrictCode = nil, nil, grid(t, 0).District
	tests := []struct {
		name     string
		rec      ingest.Record
		typ      string
		wantArea event.Area
		wantLoc  *event.Point
	}{
		{
			name: "sensor in China, outside the city",
			rec:  ingest.Record{Topic: event.TopicIngestSensor, Value: ingesttest.Structured(t, event.TypeSensorReading, "far-1", now, ingesttest.Sensor(beijing, ""))},
			typ:  event.TypeSensorReading, wantLoc: &beijing,
		},
		{
			name: "hotline ticket placed only by district",
			rec:  ingest.Record{Topic: event.TopicIngestHotline, Value: ingesttest.Structured(t, event.TypeHotlineTicket, "dist-1", now, ticket)},
			typ:  event.TypeHotlineTicket, wantArea: event.Area{District: grid(t, 0).District},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, rec := newService(t, ingest.Config{})
			if err := handle(context.Background(), s, rec, tt.rec); err != nil {
				t.Fatal(err)
			}
			got := rec.Records()
			if len(got) != 1 || got[0].Key != event.UnknownStreet {
				t.Fatalf("records = %+v, want one keyed %q", got, event.UnknownStreet)
			}
			ev := decodeEvent(t, got[0], tt.typ)
			if ev.Area != tt.wantArea {
				t.Errorf("area = %+v, want %+v", ev.Area, tt.wantArea)
			}
			if (ev.Location == nil) != (tt.wantLoc == nil) || (ev.Location != nil && *ev.Location != *tt.wantLoc) {
				t.Errorf("location = %v, want %v", ev.Location, tt.wantLoc)
			}
		})
	}
}

func TestMetricsRegistered(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	s, rec := newService(t, ingest.Config{Registerer: reg})
	ctx := context.Background()
	for _, r := range []ingest.Record{
		sensorRecord(t, "m-1", 0), sensorRecord(t, "m-1", 0),
		{Topic: event.TopicIngestSensor, Value: []byte("nope")},
	} {
		if err := handle(ctx, s, rec, r); err != nil {
			t.Fatal(err)
		}
	}
	got := gather(t, reg)
	for key, want := range map[string]float64{
		"urbanbrain_ingest_events_total,outcome=accepted,type=city.sensor.reading":  1,
		"urbanbrain_ingest_events_total,outcome=duplicate,type=city.sensor.reading": 1,
		"urbanbrain_ingest_events_total,outcome=rejected,type=unknown":              1,
		"urbanbrain_ingest_rejected_total,reason=malformed":                         1,
		"urbanbrain_ingest_rejected_total,reason=invalid_payload":                   0,
	} {
		if v, ok := got[key]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", key, v, ok, want)
		}
	}
	// A second service on the same registry is a wiring mistake New reports.
	if _, err := ingest.New(ingest.Config{Registerer: reg}, demoMap(t), &ingesttest.Recorder{}, nil); err == nil {
		t.Error("New registered the same metrics twice without an error")
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	t.Parallel()
	_, err := ingest.New(ingest.Config{MaxEventBytes: -1, MaxBatchItems: -1, MaxAge: -time.Hour}, nil, nil, nil)
	if err == nil {
		t.Fatal("New accepted a bad config")
	}
	for _, want := range []string{"MaxEventBytes", "MaxBatchItems", "MaxAge", "AreaResolver", "Sink"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}
