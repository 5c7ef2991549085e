package ingest_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"math"
	"testing"
	"time"

	"github.com/urbanbrain/urbanbrain/city"
	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/ingest"
	"github.com/urbanbrain/urbanbrain/ingest/ingesttest"
)

var fuzzTopics = []string{event.TopicIngestSensor, event.TopicIngestHotline, event.TopicIngestVideo, "city.ingest.other"}

// FuzzHandleRecord: whatever the bytes and headers, HandleRecord returns nil (the publisher
// never fails here), publishes exactly one record — a decodable event on city.events keyed by
// its street, or a dead letter carrying the original — and the same record a second time is
// either dropped as a duplicate (if it was accepted) or dead-lettered again.
func FuzzHandleRecord(f *testing.F) {
	g := grid(f, 7)
	at := now.Add(-time.Minute)
	sensor := mustJSON(f, ingesttest.Sensor(g.Centroid, ""))
	hotline := mustJSON(f, ingesttest.Hotline("T-fuzz", city.WGS84ToGCJ02(g.Centroid), event.CoordGCJ02))
	video := mustJSON(f, ingesttest.Video(g.Centroid, ""))
	rfc := at.Format(time.RFC3339)
	seeds := []struct {
		topic  uint8
		value  []byte
		binary bool
	}{
		{0, ingesttest.Structured(f, event.TypeSensorReading, "s-1", at, ingesttest.Sensor(g.Centroid, "")), false},
		{1, ingesttest.Structured(f, event.TypeHotlineTicket, "h-1", at, ingesttest.Hotline("T-1", g.Centroid, "")), false},
		{2, ingesttest.Structured(f, event.TypeVideoDetection, "v-1", at, ingesttest.Video(city.WGS84ToBD09(g.Centroid), event.CoordBD09)), false},
		{0, []byte(`{"specversion":"1.0","id":"b","source":"s","type":"city.sensor.reading","data_base64":"` + base64.StdEncoding.EncodeToString(sensor) + `"}`), false},
		{0, sensor, false},
		{1, hotline, false},
		{2, video, false},
		{0, sensor, true},
		{3, video, false},
		{0, []byte(`{"data_base64":1,"specversion":"1.0","id":"x","source":"s","type":"city.sensor.reading"}`), false},
		{0, []byte(`{"specversion":"1.0","id":"x","source":"s","type":"city.sensor.reading","data_base64":1,"datacontenttype":"application/json","data_base64":"QQ=="}`), false},
		{0, []byte(`{"specversion":"0.3","id":"x","source":"s","type":"t","datacontentencoding":""}`), false},
		{0, []byte(`{"specversion":"1.0","id":"x","source":"s","type":"city.sensor.reading","data":{"lat":"\ud800"}}`), false},
		{1, []byte("{\"ticket_id\":\"T\",\"request_type\":\"投诉\",\"content\":\"\xff\"}"), false},
		{0, []byte(`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]`), false},
		{0, []byte(`{"specversion":"1.0","id":"x","source":"s","type":"city.sensor.reading","time":"` + rfc + `","data":{"device_id":"d","kind":"k","metrics":{"a":1e308},"lat":91,"lon":120}}`), false},
		{2, []byte(`null`), false},
		{0, nil, true},
		// Tickets whose category ingest decides: a producer's text, keywords, a forged category_by.
		{1, []byte(`{"ticket_id":"T-c1","request_type":"投诉","category":"城市管理/道路积水","content":"请处理","district_code":"990101"}`), false},
		{1, []byte(`{"ticket_id":"T-c2","request_type":"求助","category_code":"99","category":"\u5176\u4ed6","content":"下穿隧道积水很深，车辆熄火","district_code":"990101"}`), false},
		{1, []byte(`{"ticket_id":"T-c3","request_type":"投诉","category_by":"given","category_match":[1],"content":"楼下广场舞噪音太大","district_code":"990101"}`), false},
	}
	for _, sd := range seeds {
		f.Add(sd.topic, sd.value, sd.binary, "bin-1", event.TypeSensorReading, "/gw/1", rfc, "application/json")
	}
	f.Add(uint8(2), video, true, "", event.TypeVideoDetection, "", "yesterday", "text/plain")

	f.Fuzz(func(t *testing.T, topic uint8, value []byte, binary bool, ceID, ceType, ceSource, ceTime, contentType string) {
		s, rec := newService(t, ingest.Config{DedupSize: 16})
		r := ingest.Record{Topic: fuzzTopics[int(topic)%len(fuzzTopics)], Key: "k", Value: value}
		if binary {
			r.Headers = map[string]string{
				"ce_specversion": "1.0", "ce_id": ceID, "ce_type": ceType, "ce_source": ceSource,
				"ce_time": ceTime, "content-type": contentType,
			}
		}
		if err := handle(context.Background(), s, rec, r); err != nil {
			t.Fatalf("HandleRecord = %v, want nil", err)
		}
		got := rec.Records()
		if len(got) != 1 {
			t.Fatalf("published %d records, want exactly 1", len(got))
		}
		accepted := got[0].Topic == event.TopicEvents
		if accepted {
			checkFuzzedEvent(t, got[0])
		} else {
			dl := decodeDeadLetter(t, got[0])
			if dl.Reason == "" || dl.Topic != r.Topic || !bytes.HasPrefix(value, dl.Original) {
				t.Fatalf("dead letter = %+v, want a reason, the topic and the original", dl)
			}
		}

		rec.Reset()
		if err := handle(context.Background(), s, rec, r); err != nil {
			t.Fatalf("HandleRecord (again) = %v, want nil", err)
		}
		again := rec.Records()
		switch {
		case accepted && len(again) != 0:
			t.Fatalf("a replay of an accepted record published %d records, want it dropped", len(again))
		case !accepted && (len(again) != 1 || again[0].Topic != event.TopicDeadLetter):
			t.Fatalf("a replay of a rejected record published %+v, want one dead letter", again)
		}
		if c := s.Stats().Total(); c.Accepted+c.Duplicates+c.Rejected != 2 {
			t.Fatalf("counts = %+v, want 2 outcomes", c)
		}
	})
}

func checkFuzzedEvent(t *testing.T, p ingesttest.Published) {
	t.Helper()
	var ev event.Event
	var err error
	for _, typ := range []string{event.TypeSensorReading, event.TypeHotlineTicket, event.TypeVideoDetection} {
		if _, err = event.Decode(p.Value, typ, &ev); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("published event does not decode: %v", err)
	}
	if ev.ID == "" || p.Key != ev.Area.Key() {
		t.Fatalf("event id %q, key %q, area %+v: want an id and the street as key", ev.ID, p.Key, ev.Area)
	}
	payloads := 0
	for _, set := range []bool{ev.Sensor != nil, ev.Hotline != nil, ev.Video != nil} {
		if set {
			payloads++
		}
	}
	if payloads != 1 {
		t.Fatalf("event has %d payloads, want 1", payloads)
	}
	if l := ev.Location; l != nil && (math.IsNaN(l.Lat) || math.IsNaN(l.Lon) || !city.InChina(*l)) {
		t.Fatalf("location %v is not a point in China", *l)
	}
	if ev.Location == nil && ev.Hotline == nil {
		t.Fatal("a sensor or video event without a location")
	}
}
