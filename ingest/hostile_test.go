package ingest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/ingest"
	"github.com/urbanbrain/urbanbrain/ingest/ingesttest"
)

// envelopeJSON builds a structured event with data given as raw JSON text, so a test can put
// in it what json.Marshal never would.
func envelopeJSON(typ, id, data string) []byte {
	return []byte(fmt.Sprintf(`{"specversion":"1.0","id":%q,"source":"urn:producer:test","type":%q,"time":%q,"data":%s}`,
		id, typ, now.Format(time.RFC3339), data))
}

// sensorData is a valid sensor payload with fields replaced or added: name, JSON value, ...
func sensorData(fieldValues ...string) string {
	fields := map[string]string{
		"device_id": `"WL-1"`, "kind": `"water_level"`, "metrics": `{"level_cm":42}`,
		"lat": "30.25", "lon": "120.2",
	}
	for i := 0; i+1 < len(fieldValues); i += 2 {
		fields[fieldValues[i]] = fieldValues[i+1]
	}
	var b strings.Builder
	b.WriteString("{")
	first := true
	for _, k := range []string{"device_id", "kind", "metrics", "lat", "lon", "coordsys", "battery"} {
		v, ok := fields[k]
		if !ok {
			continue
		}
		if !first {
			b.WriteString(",")
		}
		first = false
		fmt.Fprintf(&b, "%q:%s", k, v)
	}
	b.WriteString("}")
	return b.String()
}

// TestHostileInputIsDeadLettered feeds one service a stream of bad input, over Kafka and
// HTTP. Each must be dead-lettered once with a reason naming the problem, answered with the
// right status over HTTP, and must not stop the good event that follows it.
func TestHostileInputIsDeadLettered(t *testing.T) {
	t.Parallel()
	s, rec := newService(t, ingest.Config{})
	ctx := context.Background()

	kafka := func(topic string, value []byte, headers map[string]string) func(*testing.T) int {
		return func(t *testing.T) int {
			if err := handle(ctx, s, rec, ingest.Record{Topic: topic, Key: "dev-9", Headers: headers, Value: value}); err != nil {
				t.Fatalf("HandleRecord = %v, want nil: bad data is not a transient error", err)
			}
			return 0
		}
	}
	httpPost := func(contentType string, body []byte) func(*testing.T) int {
		return func(t *testing.T) int {
			w := post(s, contentType, body)
			var eb struct{ Code, Error string }
			if err := json.Unmarshal(w.Body.Bytes(), &eb); err != nil || eb.Code == "" || eb.Error == "" {
				t.Errorf("error body %q is not {code, error}", w.Body)
			}
			return w.Code
		}
	}
	sensor := func(data string) []byte { return envelopeJSON(event.TypeSensorReading, "bad-sensor", data) }

	tooBig := envelopeJSON(event.TypeHotlineTicket, "big-1",
		`{"ticket_id":"T-big","request_type":"投诉","district_code":"990101","content":"`+strings.Repeat("噪", 100_000)+`"}`)
	deep := envelopeJSON(event.TypeSensorReading, "deep-1", strings.Repeat(`{"a":`, 5000)+"1"+strings.Repeat("}", 5000))
	invalidUTF8 := envelopeJSON(event.TypeHotlineTicket, "utf8-1", "{\"ticket_id\":\"T-1\",\"request_type\":\"投诉\",\"district_code\":\"990101\",\"content\":\"噪音\xff\xfe扰民\"}")
	goodOne := ingesttest.Structured(t, event.TypeSensorReading, "fine-1", now, ingesttest.Sensor(grid(t, 3).Centroid, ""))

	tests := []struct {
		name   string
		send   func(*testing.T) int // returns the HTTP status, 0 for Kafka
		status int
		origin string
		phrase string
	}{
		{"malformed JSON", kafka(event.TopicIngestSensor, []byte(`{"specversion":"1.0","id":`), nil), 0, event.TopicIngestSensor, "malformed JSON"},
		{"empty record", kafka(event.TopicIngestSensor, nil, nil), 0, event.TopicIngestSensor, "empty record"},
		{"JSON null", kafka(event.TopicIngestSensor, []byte("null"), nil), 0, event.TopicIngestSensor, "expected a JSON object, got null"},
		{"unknown type", kafka(event.TopicIngestSensor, envelopeJSON("city.weather.report", "w-1", sensorData()), nil), 0, event.TopicIngestSensor, `unknown type "city.weather.report"`},
		{"missing id", kafka(event.TopicIngestSensor, []byte(`{"specversion":"1.0","source":"s","type":"city.sensor.reading","data":{}}`), nil), 0, event.TopicIngestSensor, "missing id"},
		{"missing source", kafka(event.TopicIngestSensor, []byte(`{"specversion":"1.0","id":"x","type":"city.sensor.reading","data":{}}`), nil), 0, event.TopicIngestSensor, "missing source"},
		{"missing type", kafka(event.TopicIngestSensor, []byte(`{"specversion":"1.0","id":"x","source":"s","data":{}}`), nil), 0, event.TopicIngestSensor, "missing type"},
		{"specversion 0.3", kafka(event.TopicIngestSensor, []byte(`{"specversion":"0.3","id":"x","source":"s","type":"city.sensor.reading","datacontentencoding":""}`), nil), 0, event.TopicIngestSensor, "unsupported specversion"},
		{"data_base64 not a string (panics the SDK's reader)", kafka(event.TopicIngestSensor, []byte(`{"data_base64":1,"specversion":"1.0","id":"x","source":"s","type":"city.sensor.reading"}`), nil), 0, event.TopicIngestSensor, "data_base64 must be a string"},
		{"duplicate data_base64 (panics the SDK's reader)", kafka(event.TopicIngestSensor, []byte(`{"specversion":"1.0","id":"x","source":"s","type":"city.sensor.reading","data_base64":1,"datacontenttype":"application/json","data_b\u0061se64":"QQ=="}`), nil), 0, event.TopicIngestSensor, "duplicate member names"},
		{"trailing data", kafka(event.TopicIngestSensor, append(sensor(sensorData()), " {}"...), nil), 0, event.TopicIngestSensor, "invalid character '{' after top-level value"},
		{"data_base64 not base64", kafka(event.TopicIngestSensor, []byte(`{"specversion":"1.0","id":"x","source":"s","type":"city.sensor.reading","data_base64":"!!!"}`), nil), 0, event.TopicIngestSensor, "invalid data_base64"},
		{"datacontenttype text/plain", kafka(event.TopicIngestSensor, []byte(`{"specversion":"1.0","id":"x","source":"s","type":"city.sensor.reading","datacontenttype":"text/plain","data":"hi"}`), nil), 0, event.TopicIngestSensor, "unsupported datacontenttype"},
		{"binary mode without ce_id", kafka(event.TopicIngestSensor, []byte(sensorData()), map[string]string{"ce_specversion": "1.0", "ce_type": event.TypeSensorReading, "ce_source": "/gw"}), 0, event.TopicIngestSensor, "missing id"},
		{"bare payload on a topic with no type", kafka("city.ingest.weather", []byte(sensorData()), nil), 0, "city.ingest.weather", "not a CloudEvent"},
		{"coordinates outside China", kafka(event.TopicIngestSensor, sensor(sensorData("lat", "48.8566", "lon", "2.3522")) /* Paris */, nil), 0, event.TopicIngestSensor, "outside China"},
		{"lat 91", kafka(event.TopicIngestSensor, sensor(sensorData("lat", "91")), nil), 0, event.TopicIngestSensor, "lat 91 out of range"},
		{"lon 200", kafka(event.TopicIngestSensor, sensor(sensorData("lon", "200")), nil), 0, event.TopicIngestSensor, "lon 200 out of range"},
		{"NaN as a string", kafka(event.TopicIngestSensor, sensor(sensorData("metrics", `{"level_cm":"NaN"}`)), nil), 0, event.TopicIngestSensor, "metrics: want a number, got string"},
		{"Infinity literal", kafka(event.TopicIngestSensor, sensor(sensorData("lat", "Infinity")), nil), 0, event.TopicIngestSensor, "malformed JSON"},
		{"number beyond float64", kafka(event.TopicIngestSensor, sensor(sensorData("lat", "1e400")), nil), 0, event.TopicIngestSensor, "invalid number"},
		{"empty metrics", kafka(event.TopicIngestSensor, sensor(sensorData("metrics", "{}")), nil), 0, event.TopicIngestSensor, "metrics empty"},
		{"blank metric names", kafka(event.TopicIngestSensor, sensor(sensorData("metrics", `{"level_cm":1,"":2," ":3}`)), nil), 0, event.TopicIngestSensor, "metrics: empty metric name; metrics: empty metric name"},
		{"battery 120", kafka(event.TopicIngestSensor, sensor(sensorData("battery", "120")), nil), 0, event.TopicIngestSensor, "battery 120 out of range 0..100"},
		{"missing lat/lon", kafka(event.TopicIngestSensor, sensor(`{"device_id":"d","kind":"gas","metrics":{"ppm":1}}`), nil), 0, event.TopicIngestSensor, "missing lat/lon"},
		{"unknown coordsys", kafka(event.TopicIngestSensor, sensor(sensorData("coordsys", `"utm50n"`)), nil), 0, event.TopicIngestSensor, `unknown coordsys "utm50n"`},
		{"time far in the future", kafka(event.TopicIngestSensor, bytes.Replace(sensor(sensorData()), []byte(now.Format(time.RFC3339)), []byte("2099-01-01T00:00:00+08:00"), 1), nil), 0, event.TopicIngestSensor, "too far in the future"},
		{"time too old", kafka(event.TopicIngestSensor, bytes.Replace(sensor(sensorData()), []byte(now.Format(time.RFC3339)), []byte("2020-01-01T00:00:00+08:00"), 1), nil), 0, event.TopicIngestSensor, "too old"},
		{"time not RFC 3339", kafka(event.TopicIngestSensor, bytes.Replace(sensor(sensorData()), []byte(now.Format(time.RFC3339)), []byte("2025-06-01 08:30:00"), 1), nil), 0, event.TopicIngestSensor, "not RFC 3339"},
		{"invalid UTF-8 in content", kafka(event.TopicIngestHotline, invalidUTF8, nil), 0, event.TopicIngestHotline, "invalid UTF-8 at byte"},
		{"lone surrogate escape", kafka(event.TopicIngestHotline, envelopeJSON(event.TypeHotlineTicket, "sur-1", `{"ticket_id":"T","request_type":"投诉","address":"x","content":"\ud800"}`), nil), 0, event.TopicIngestHotline, "lone UTF-16 surrogate"},
		{"received_at that is in the year -1 in UTC (cannot be encoded)", kafka(event.TopicIngestHotline, envelopeJSON(event.TypeHotlineTicket, "y0-1", `{"ticket_id":"T","request_type":"投诉","address":"x","content":"c","received_at":"0000-01-01T00:00:00+08:00"}`), nil), 0, event.TopicIngestHotline, "received_at -0001-12-31T16:00:00Z is outside the years"},
		{"unknown request_type", kafka(event.TopicIngestHotline, envelopeJSON(event.TypeHotlineTicket, "rt-1", `{"ticket_id":"T","request_type":"闲聊","address":"x","content":"c"}`), nil), 0, event.TopicIngestHotline, `unknown request_type "闲聊"`},
		{"hotline with no location", kafka(event.TopicIngestHotline, envelopeJSON(event.TypeHotlineTicket, "nl-1", `{"ticket_id":"T","request_type":"投诉","content":"c"}`), nil), 0, event.TopicIngestHotline, "no location"},
		{"bare hotline without ticket_id", kafka(event.TopicIngestHotline, []byte(`{"request_type":"投诉","address":"x","content":"c"}`), nil), 0, event.TopicIngestHotline, "missing ticket_id"},
		{"confidence 1.5", kafka(event.TopicIngestVideo, envelopeJSON(event.TypeVideoDetection, "c-1", `{"camera_id":"C","algorithm":"smoke","confidence":1.5,"lat":30.25,"lon":120.2}`), nil), 0, event.TopicIngestVideo, "confidence 1.5 out of range 0..1"},
		{"javascript snapshot_url", kafka(event.TopicIngestVideo, envelopeJSON(event.TypeVideoDetection, "u-1", `{"camera_id":"C","algorithm":"smoke","confidence":0.5,"snapshot_url":"javascript:alert(1)","lat":30.25,"lon":120.2}`), nil), 0, event.TopicIngestVideo, "snapshot_url"},
		{"data not an object", kafka(event.TopicIngestVideo, envelopeJSON(event.TypeVideoDetection, "d-1", `[1,2]`), nil), 0, event.TopicIngestVideo, "data must be a JSON object, got an array"},
		{"deeply nested JSON", kafka(event.TopicIngestSensor, deep, nil), 0, event.TopicIngestSensor, "nested deeper than"},
		{"300 KB event over Kafka", kafka(event.TopicIngestHotline, tooBig, nil), 0, event.TopicIngestHotline, "payload too large"},
		{"10 MB body over HTTP", httpPost(ingest.MediaCloudEvent, bytes.Repeat([]byte("x"), 10<<20)), http.StatusRequestEntityTooLarge, ingest.OriginHTTP, "payload too large"},
		{"wrong content type over HTTP", httpPost("text/plain", goodOne), http.StatusUnsupportedMediaType, ingest.OriginHTTP, "unsupported Content-Type"},
		{"JSON array on the single-event endpoint", httpPost(ingest.MediaCloudEvent, []byte("["+string(goodOne)+"]")), http.StatusBadRequest, ingest.OriginHTTP, "expected a JSON object, got array"},
		{"malformed JSON over HTTP", httpPost(ingest.MediaJSON, []byte("{nope")), http.StatusBadRequest, ingest.OriginHTTP, "malformed JSON"},
		{"bare payload over HTTP", httpPost(ingest.MediaJSON, []byte(sensorData())), http.StatusUnprocessableEntity, ingest.OriginHTTP, "not a CloudEvent"},
		{"invalid event over HTTP", httpPost(ingest.MediaCloudEvent, sensor(sensorData("device_id", `""`))), http.StatusUnprocessableEntity, ingest.OriginHTTP, "missing device_id"},
		{"empty batch over HTTP", httpPost(ingest.MediaBatch, []byte("[]")), http.StatusBadRequest, ingest.OriginHTTP, "empty batch"},
		{"batch that is an object", httpPost(ingest.MediaBatch, goodOne), http.StatusBadRequest, ingest.OriginHTTP, "expected a JSON array, got object"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec.Reset()
			if status := tt.send(t); status != tt.status {
				t.Errorf("HTTP status = %d, want %d", status, tt.status)
			}
			got := rec.Records()
			if len(got) != 1 {
				t.Fatalf("published %d records, want exactly one dead letter: %+v", len(got), got)
			}
			dl := decodeDeadLetter(t, got[0])
			// Issue 12 item 7: a dead letter had a reason but no machine-readable code.
			if !slices.Contains(ingestCodes, dl.Code) {
				t.Errorf("dead letter code = %q, want one of %q", dl.Code, ingestCodes)
			}
			if !strings.Contains(dl.Reason, tt.phrase) {
				t.Errorf("reason = %q, want it to contain %q", dl.Reason, tt.phrase)
			}
			if dl.Topic != tt.origin || !dl.At.Equal(now) || len(dl.Original) == 0 && tt.name != "empty record" {
				t.Errorf("dead letter = {topic %q, at %v, %d original bytes}, want topic %q at %v with the original", dl.Topic, dl.At, len(dl.Original), tt.origin, now)
			}
			wantKey := "dev-9"
			if tt.status != 0 {
				wantKey = "unknown"
			}
			if got[0].Key != wantKey {
				t.Errorf("dead letter key = %q, want %q", got[0].Key, wantKey)
			}

			// Nothing blocks: the next good event goes through.
			rec.Reset()
			if err := handle(ctx, s, rec, sensorRecord(t, fmt.Sprintf("after-%d", i), i)); err != nil {
				t.Fatal(err)
			}
			if evs := rec.Topic(event.TopicEvents); len(evs) != 1 {
				t.Fatalf("the good event after %q was not published: %+v", tt.name, rec.Records())
			}
		})
	}
	if c := s.Stats().Total(); c.Rejected != uint64(len(tests)) || c.Accepted != uint64(len(tests)) {
		t.Errorf("counts = %+v, want %d rejected and %d accepted", c, len(tests), len(tests))
	}
}

// TestDeadLetterKeepsTheOriginal: the original bytes and headers travel with the reason, cut
// to MaxDeadLetterBytes so a dead letter always fits in a Kafka message.
func TestDeadLetterKeepsTheOriginal(t *testing.T) {
	t.Parallel()
	s, rec := newService(t, ingest.Config{MaxEventBytes: 1000, MaxBatchBytes: 1000, MaxDeadLetterBytes: 100})
	small := []byte(`{"specversion":"1.0"}`)
	big := bytes.Repeat([]byte("a"), 2000)
	headers := map[string]string{"producer": "plc-7"}
	for _, v := range [][]byte{small, big} {
		if err := handle(context.Background(), s, rec, ingest.Record{Topic: event.TopicIngestSensor, Key: "k", Headers: headers, Value: v}); err != nil {
			t.Fatal(err)
		}
	}
	got := rec.Topic(event.TopicDeadLetter)
	if len(got) != 2 {
		t.Fatalf("dead letters = %d, want 2", len(got))
	}
	first, second := decodeDeadLetter(t, got[0]), decodeDeadLetter(t, got[1])
	if !bytes.Equal(first.Original, small) || first.Key != "k" || first.Headers["producer"] != "plc-7" {
		t.Errorf("first dead letter = %+v, want the original bytes, key and headers", first)
	}
	if !bytes.Equal(second.Original, big[:100]) || !strings.Contains(second.Reason, "truncated to its first 100 bytes") {
		t.Errorf("second dead letter: %d original bytes, reason %q; want 100 and a note", len(second.Original), second.Reason)
	}
}
