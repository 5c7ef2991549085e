package event_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	ce "github.com/cloudevents/sdk-go/v2/event"

	"github.com/urbanbrain/urbanbrain/event"
)

// sdkEncode is how Encode worked before it wrote the envelope itself: the CloudEvents SDK's
// generic path. It stays as the reference the direct encoder is held to.
func sdkEncode(ceType, id string, at time.Time, data any) ([]byte, error) {
	e := ce.New(ce.CloudEventsVersionV1)
	e.SetID(id)
	e.SetSource(event.Source)
	e.SetType(ceType)
	e.SetTime(at.UTC())
	if err := e.SetData(ce.ApplicationJSON, data); err != nil {
		return nil, err
	}
	return json.Marshal(e)
}

// dataType is what to read a sample's data back into.
func dataType(t reflect.Type) reflect.Type {
	switch {
	case t.Kind() == reflect.Pointer:
		return t.Elem()
	case t == reflect.TypeFor[[]byte]():
		return reflect.TypeFor[map[string]any]() // the bytes carried JSON
	}
	return t
}

func f64(v float64) *float64 { return &v }

// shanghai makes times that are not in UTC, so the encoders' conversion is exercised.
var shanghai = time.FixedZone("CST", 8*3600)

// samples are representative records of every type that travels on a topic: Chinese text,
// characters HTML escaping touches, control characters, U+2028, times with and without a
// fraction, zero times, empty and nil collections.
func samples() []struct {
	name, ceType, id string
	at               time.Time
	data             any
} {
	at := time.Date(2025, 6, 1, 8, 30, 15, 123456789, shanghai)
	whole := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	millis := time.Date(2025, 6, 1, 8, 30, 15, 120_000_000, shanghai) // trailing zeros are dropped
	area := event.Area{District: "330102", DistrictName: "上城区", Street: "330102001", StreetName: "清波街道",
		Community: "330102001001", CommunityName: "柳翠井巷社区", Grid: "G-7", GridName: "第七网格"}
	sensor := event.Event{
		ID: "s-1", Type: event.TypeSensorReading, Source: "urn:plc:7", Time: at.UTC(), Received: at.UTC().Add(time.Second),
		Location: &event.Point{Lon: 120.1693, Lat: 30.2425}, Area: area,
		Sensor: &event.SensorReading{DeviceID: "WL-0042", Kind: "water_level", Metrics: map[string]float64{"level_cm": 42.5, "temp_c": -3.25e-7, "big": 1e21},
			Lat: f64(30.2425), Lon: f64(120.1693), CoordSys: event.CoordWGS84, Status: "alarm", Battery: f64(87)},
	}
	hotline := event.Event{
		ID: "12345-20250601-0001", Type: event.TypeHotlineTicket, Source: "/hotline/12345", Time: millis.UTC(), Received: whole,
		Area: event.Area{District: "330102"},
		Hotline: &event.HotlineTicket{TicketID: "12345-20250601-0001", Channel: "phone", CallerName: "张三", CallerPhone: "13812345678",
			RequestType: event.RequestComplaint, CategoryCode: "0101",
			Content: "小区门口<下水道>堵塞 & 污水漫到路面\n\"急\"\t\\ \u2028 \u2029 \x01 \u007f 😀",
			Address: "云川市某路 18 号", DistrictCode: "330102", Urgency: "urgent", ReceivedAt: at},
	}
	video := event.Event{
		ID: "v-1", Type: event.TypeVideoDetection, Source: "urn:camera:CAM-7", Time: at.UTC(), Received: at.UTC(),
		Location: &event.Point{Lon: 120.2, Lat: 30.25}, Area: area,
		Video: &event.VideoDetection{CameraID: "CAM-7", Algorithm: "illegal_parking", Confidence: 0.93, BBox: []float64{10, 20, 300, 180},
			SnapshotURL: "https://snapshots.example/cam7/1.jpg?a=1&b=<2>", ObjectCount: 2, Lat: f64(30.25), Lon: f64(120.2), CoordSys: event.CoordWGS84},
	}
	incident := event.Incident{
		ID: "INC-330102001-01HZX", Version: 7, Status: event.StatusResolved, Category: "0104", Severity: event.SeverityOrange,
		Title: "道路积水 <清波街> & 河坊街", CorrelationKey: "0104:330102001:G-7", Area: area, Location: &event.Point{Lon: 120.1, Lat: 30.2},
		Assignment: event.Assignment{WorkerID: "W-1", WorkerName: "李四", Grid: "G-7", Agency: "A-1", AgencyName: "城管局"},
		Reports: []event.Report{
			{EventID: "s-1", EventType: event.TypeSensorReading, SignalID: "r1:s-1", RuleID: "r1", At: at, Summary: "水位 42.5 cm"},
			{EventID: "h-1", EventType: event.TypeHotlineTicket, SignalID: "r2:h-1", RuleID: "r2", At: millis, TicketID: "T-1",
				Category: "0202", Caller: &event.Caller{Name: "张三", Phone: "13812345678"}},
		},
		ReportCount: 2, CreatedAt: whole, UpdatedAt: at,
		Evidence:   &event.Evidence{Note: "已疏通", Photos: []string{"https://x/1.jpg"}, By: "W-1", At: at},
		Returns:    []event.Return{{WorkerID: "W-2", Reason: "不在辖区", At: whole}},
		Lapsed:     []string{"W-2"},
		Extension:  &event.Extension{By: "W-1", Reason: "设备未到", ForSeconds: 172800, RequestedAt: at, State: event.ExtensionApproved, DecidedBy: "S-1", DecidedAt: millis},
		Escalation: event.LevelStreet, Reopens: 1, Callback: event.CallbackSatisfied,
		Clock: &event.Clock{Stage: event.StageVerify, LimitSeconds: 3600, WorkingHours: true, StartedAt: at, WarnAt: at.Add(45 * time.Minute),
			DueAt: at.Add(time.Hour), Warned: true, Breaches: 1},
	}
	actor := event.Actor{Subject: "op-1", Role: "district_operator", District: "330102", Grids: []string{"G-7", "G-8"}}
	return []struct {
		name, ceType, id string
		at               time.Time
		data             any
	}{
		{"sensor event", event.TypeSensorReading, sensor.ID, sensor.Time, sensor},
		{"hotline event", event.TypeHotlineTicket, hotline.ID, hotline.Time, hotline},
		{"video event", event.TypeVideoDetection, video.ID, video.Time, video},
		{"event pointer", event.TypeSensorReading, sensor.ID, sensor.Time, &sensor},
		{"signal", event.TypeSignal, "r1:s-1", at, event.Signal{ID: "r1:s-1", RuleID: "r1", RuleVersion: 3, Category: "0104", Severity: event.SeverityRed,
			Title: "水位超限 <42.5 cm> & 上涨", CorrelationKey: "0104:330102001", Agency: "A-1", At: at, Event: sensor}},
		{"shadow clear signal", event.TypeSignal, "r9:s-1", whole, event.Signal{ID: "r9:s-1", RuleID: "r9", Shadow: true, Clear: true, At: whole, Event: video}},
		{"incident change", event.TypeIncidentChanged, incident.ID + "/7", at, event.IncidentChange{Incident: incident,
			Change: event.Change{Action: event.ActionResolve, From: event.StatusInProgress, To: event.StatusResolved, Actor: actor,
				Note: "已疏通 <完毕>", CommandID: "cmd-1", At: at, Stage: event.StageHandle}}},
		{"new incident, empty collections", event.TypeIncidentChanged, "INC-x-1/1", whole, event.IncidentChange{
			Incident: event.Incident{ID: "INC-x-1", Version: 1, Status: event.StatusNew, Reports: []event.Report{}, CreatedAt: whole, UpdatedAt: whole},
			Change:   event.Change{Action: "open", To: event.StatusNew, Actor: event.SystemActor, At: whole}}},
		{"command", event.TypeCommand, "cmd-1", millis, event.Command{ID: "cmd-1", IncidentID: incident.ID, Action: event.ActionDispatch, Actor: actor,
			Reason: "就近 & 空闲", Assignment: &incident.Assignment, At: millis, Evidence: &event.Evidence{Note: "n"}, ExtendBy: "48h", Level: event.LevelDistrict}},
		{"command result", event.TypeCommandResult, "cmd-1", at, event.CommandResult{CommandID: "cmd-1", IncidentID: incident.ID, OK: true, Incident: &incident, At: at}},
		{"refused command result", event.TypeCommandResult, "cmd-2", at, event.CommandResult{CommandID: "cmd-2", IncidentID: incident.ID,
			Code: "illegal_transition", Error: "cannot <accept> a resolved incident", At: at}},
		{"audit record", event.TypeAudit, "audit-1", at, event.AuditRecord{ID: "audit-1", Kind: event.AuditCommand, CommandID: "cmd-1", IncidentID: incident.ID,
			Action: event.ActionAccept, Actor: actor, OK: true, From: event.StatusDispatched, To: event.StatusAccepted, Version: 4, At: at}},
		{"dispatch", event.TypeDispatch, incident.ID + "/2", at, event.Dispatch{ID: incident.ID + "/2", IncidentID: incident.ID,
			Assignment: incident.Assignment, Reason: "网格值班员，负载最低", At: at, Level: event.LevelCommunity}},
		{"dead letter", event.TypeDeadLetter, "dl-0a1b", at, event.DeadLetter{Reason: `malformed JSON at byte 3: invalid character 'x' looking for beginning of value`,
			Topic: event.TopicIngestSensor, Key: "WL-0042", Headers: map[string]string{"ce_id": "x<1>", "content-type": "application/json"},
			Original: []byte("{x\xff\xfe<script>"), At: at.UTC()}},
		{"dead letter, empty original", event.TypeDeadLetter, "dl-0", at, event.DeadLetter{Reason: "empty record: no JSON", Topic: "http", At: at.UTC()}},

		// The envelope's own edge cases.
		{"zero time: no time attribute", event.TypeDispatch, "d-0", time.Time{}, event.Dispatch{ID: "d-0"}},
		{"time before 1970, in a zone", event.TypeDispatch, "d-1", time.Date(1969, 12, 31, 23, 59, 59, 1, shanghai), event.Dispatch{ID: "d-1"}},
		{"id with escapes and Chinese", event.TypeCommand, "命令-<1>&\"2\"\\3\n\t\r\x00\x1f\u2028\u2029😀", at, event.Command{ID: "c"}},
		{"type with HTML characters", "city.<test>&", "id", at, event.Command{ID: "c"}},
		{"nil data", event.TypeAudit, "n-1", at, nil},
		{"typed nil data", event.TypeAudit, "n-2", at, (*event.AuditRecord)(nil)},
		{"raw JSON data, not compact", event.TypeAudit, "n-3", at, json.RawMessage(` { "a" : [1, 2] , "h":"<&>" } `)},
		{"bytes data: data_base64", event.TypeAudit, "n-4", at, []byte("{\"a\":1}")},
	}
}

// TestEncodeMatchesTheSDK holds the direct encoder to the SDK's generic path it replaced:
// (b) byte equality of the two outputs for every sample — reached, so nothing weaker is
// checked in its place — and (a) the new bytes read with the SDK's own decoder give the same
// attributes and, through DataAs, the same values as the SDK path's bytes.
func TestEncodeMatchesTheSDK(t *testing.T) {
	t.Parallel()
	for _, tt := range samples() {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := event.Encode(tt.ceType, tt.id, tt.at, tt.data)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			want, err := sdkEncode(tt.ceType, tt.id, tt.at, tt.data)
			if err != nil {
				t.Fatalf("SDK encode: %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("bytes differ from the SDK's:\n got %s\nwant %s", got, want)
			}
			if !json.Valid(got) {
				t.Fatalf("not valid JSON: %s", got)
			}

			var fromNew, fromSDK ce.Event
			if err := json.Unmarshal(got, &fromNew); err != nil {
				t.Fatalf("the SDK cannot read the new bytes: %v", err)
			}
			if err := json.Unmarshal(want, &fromSDK); err != nil {
				t.Fatalf("the SDK cannot read its own bytes: %v", err)
			}
			if err := fromNew.Validate(); err != nil {
				t.Errorf("the SDK finds the new envelope invalid: %v", err)
			}
			if fromNew.SpecVersion() != "1.0" || fromNew.ID() != fromSDK.ID() || fromNew.Type() != fromSDK.Type() ||
				fromNew.Source() != event.Source || fromNew.Source() != fromSDK.Source() ||
				!fromNew.Time().Equal(fromSDK.Time()) || fromNew.DataContentType() != fromSDK.DataContentType() {
				t.Errorf("attributes differ:\n got %s\nwant %s", fromNew.Context, fromSDK.Context)
			}
			if !tt.at.IsZero() && !fromNew.Time().Equal(tt.at) {
				t.Errorf("time %v, want %v to the nanosecond", fromNew.Time(), tt.at)
			}
			if tt.at.IsZero() && !fromNew.Time().IsZero() {
				t.Errorf("time %v, want none", fromNew.Time())
			}
			if tt.data == nil {
				if fromNew.Data() != nil {
					t.Errorf("data %s, want none", fromNew.Data())
				}
				return
			}
			typ := reflect.TypeOf(tt.data)
			typ = dataType(typ)
			a, b := reflect.New(typ), reflect.New(typ)
			if err := fromNew.DataAs(a.Interface()); err != nil {
				t.Fatalf("DataAs of the new bytes: %v", err)
			}
			if err := fromSDK.DataAs(b.Interface()); err != nil {
				t.Fatalf("DataAs of the SDK's bytes: %v", err)
			}
			if !reflect.DeepEqual(a.Interface(), b.Interface()) {
				t.Errorf("data differs:\n got %+v\nwant %+v", a.Elem(), b.Elem())
			}
		})
	}
}

// TestDecodeReadsBothEncoders: what Encode and the SDK path write, Decode reads back with its
// envelope; DecodeAny takes any listed type and refuses others.
func TestDecodeReadsBothEncoders(t *testing.T) {
	t.Parallel()
	for _, tt := range samples() {
		if tt.data == nil {
			continue
		}
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			typ := reflect.TypeOf(tt.data)
			typ = dataType(typ)
			newBytes, err := event.Encode(tt.ceType, tt.id, tt.at, tt.data)
			if err != nil {
				t.Fatal(err)
			}
			sdkBytes, err := sdkEncode(tt.ceType, tt.id, tt.at, tt.data)
			if err != nil {
				t.Fatal(err)
			}
			var want ce.Event
			if err := json.Unmarshal(sdkBytes, &want); err != nil {
				t.Fatal(err)
			}
			wantData := reflect.New(typ)
			if err := want.DataAs(wantData.Interface()); err != nil {
				t.Fatal(err)
			}
			for name, b := range map[string][]byte{"Encode": newBytes, "SDK": sdkBytes} {
				out := reflect.New(typ)
				env, err := event.Decode(b, tt.ceType, out.Interface())
				if err != nil {
					t.Fatalf("Decode of the %s bytes: %v", name, err)
				}
				if env.ID != want.ID() || env.Type != want.Type() || env.Source != want.Source() || !env.Time.Equal(want.Time()) {
					t.Errorf("Decode of the %s bytes: envelope %+v, want %s", name, env, want.Context)
				}
				if !reflect.DeepEqual(out.Interface(), wantData.Interface()) {
					t.Errorf("Decode of the %s bytes: data\n%+v\nwant\n%+v", name, out.Elem(), wantData.Elem())
				}
				if _, err := event.DecodeAny(b, []string{"city.other", tt.ceType}, reflect.New(typ).Interface()); err != nil {
					t.Errorf("DecodeAny of the %s bytes: %v", name, err)
				}
				if _, err := event.DecodeAny(b, []string{"city.other"}, reflect.New(typ).Interface()); err == nil {
					t.Errorf("DecodeAny of the %s bytes took a type it was not given", name)
				}
				if _, err := event.Decode(b, "city.other", reflect.New(typ).Interface()); err == nil {
					t.Errorf("Decode of the %s bytes took the wrong type", name)
				}
			}
		})
	}
}

// TestDecodeRefusesHostileInput: every one of these is an error with a reason, never a panic
// (the SDK's reader panicked on some of them).
func TestDecodeRefusesHostileInput(t *testing.T) {
	t.Parallel()
	const typ = event.TypeDispatch
	ok := `"specversion":"1.0","id":"x","source":"s","type":"` + typ + `"`
	tests := []struct{ name, in, phrase string }{
		{"empty", ``, "unexpected end of JSON"},
		{"not JSON", `nope`, "invalid character"},
		{"truncated", `{"specversion":"1.0","id":`, "unexpected end"},
		{"trailing data", `{` + ok + `,"data":{}} {}`, "after top-level value"},
		{"array", `[1,2]`, "cannot unmarshal"},
		{"null", `null`, "specversion"},
		{"no specversion", `{"id":"x","source":"s","type":"` + typ + `","data":{}}`, "specversion"},
		{"specversion 0.3", `{"specversion":"0.3","id":"x","source":"s","type":"` + typ + `","data":{}}`, "specversion"},
		{"specversion a number", `{"specversion":1.0,"id":"x","source":"s","type":"` + typ + `","data":{}}`, "specversion"},
		{"id a number", `{"specversion":"1.0","id":1,"source":"s","type":"` + typ + `","data":{}}`, "id"},
		{"missing id and source", `{"specversion":"1.0","id":" ","type":"` + typ + `","data":{}}`, "missing id, source"},
		{"wrong type", `{"specversion":"1.0","id":"x","source":"s","type":"city.other","data":{}}`, `type "city.other"`},
		{"no data", `{` + ok + `}`, "no data"},
		{"data_base64 a number (panicked the SDK)", `{"data_base64":1,` + ok + `}`, "data_base64"},
		{"duplicate data_base64 (panicked the SDK)", `{` + ok + `,"data_base64":1,"datacontenttype":"application/json","data_base64":"QQ=="}`, "data_base64"},
		{"data_base64 not base64", `{` + ok + `,"data_base64":"!!!"}`, "illegal base64"},
		{"data and data_base64", `{` + ok + `,"data":{},"data_base64":"e30="}`, "both data and data_base64"},
		{"text/plain data", `{` + ok + `,"datacontenttype":"text/plain","data":"hi"}`, "datacontenttype"},
		{"time not RFC 3339", `{` + ok + `,"time":"yesterday","data":{}}`, "RFC 3339"},
		{"time a number", `{` + ok + `,"time":1,"data":{}}`, "time"},
		{"data of the wrong shape", `{` + ok + `,"data":[1]}`, `cannot unmarshal "[1]" into Go value of type event.Dispatch`},
		{"data with a bad field", `{` + ok + `,"data":{"at":"soon"}}`, "data"},
		{"deep nesting", `{` + ok + `,"data":{"x":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}}`, "exceeded max depth"},
		{"deep nesting in data_base64", `{` + ok + `,"data_base64":"` + base64.StdEncoding.EncodeToString([]byte(strings.Repeat("[", 20000)+strings.Repeat("]", 20000))) + `"}`, "exceeded max depth"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var d event.Dispatch
			_, err := event.Decode([]byte(tt.in), typ, &d)
			if err == nil || !strings.Contains(err.Error(), tt.phrase) {
				t.Errorf("Decode = %v, want an error containing %q", err, tt.phrase)
			}
			if _, err := event.DecodeAny([]byte(tt.in), []string{typ}, &d); err == nil {
				t.Error("DecodeAny accepted it")
			}
		})
	}
}

// TestDecodeCountsOnlyRealNesting: brackets inside strings are text, however many, and
// nesting at encoding/json's limit is still read; one level more is refused.
func TestDecodeCountsOnlyRealNesting(t *testing.T) {
	const typ = event.TypeDispatch
	head := `{"specversion":"1.0","id":"x","source":"s","type":"` + typ + `","data":`
	var d map[string]any
	inStrings := head + `{"reason":"` + strings.Repeat("[{", 15000) + `"}}`
	if _, err := event.Decode([]byte(inStrings), typ, &d); err != nil {
		t.Errorf("30,000 brackets inside a string: %v", err)
	}
	// The envelope and data objects are two levels; the array nests the rest.
	atLimit := head + `{"x":` + strings.Repeat("[", 9998) + strings.Repeat("]", 9998) + `}}`
	if _, err := event.Decode([]byte(atLimit), typ, &d); err != nil && strings.Contains(err.Error(), "depth") {
		t.Errorf("nesting at the limit refused: %v", err)
	}
	over := head + `{"x":` + strings.Repeat("[", 9999) + strings.Repeat("]", 9999) + `}}`
	if _, err := event.Decode([]byte(over), typ, &d); err == nil || !strings.Contains(err.Error(), "exceeded max depth") {
		t.Errorf("nesting one past the limit: %v, want exceeded max depth", err)
	}
}

// FuzzDecode: whatever the bytes, Decode returns (no panic), and what it accepts the SDK's
// decoder reads to the same id, type and data.
func FuzzDecode(f *testing.F) {
	for _, s := range samples() {
		if b, err := event.Encode(s.ceType, s.id, s.at, s.data); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`{"data_base64":1,"specversion":"1.0","id":"x","source":"s","type":"city.dispatch.assigned"}`))
	f.Add([]byte(`{"specversion":"1.0","id":"x","source":"s","type":"city.dispatch.assigned","data_base64":"e30="}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var got map[string]any
		env, err := event.DecodeAny(b, []string{event.TypeDispatch, event.TypeSensorReading, event.TypeAudit, event.TypeCommand}, &got)
		if err != nil {
			return
		}
		if env.ID == "" || env.Type == "" || env.Source == "" {
			t.Fatalf("accepted an envelope without id, type or source: %+v", env)
		}
		// The fast decoder accepts nothing encoding/json would refuse.
		if !json.Valid(b) {
			t.Fatalf("accepted input encoding/json refuses: %q", b)
		}
		_ = fmt.Sprint(got)
	})
}

// Benchmarks: the direct encoder against the SDK path it replaced, in the same run.

func benchRecords() []struct {
	name, ceType, id string
	at               time.Time
	data             any
} {
	var out []struct {
		name, ceType, id string
		at               time.Time
		data             any
	}
	for _, s := range samples() {
		switch s.name {
		case "signal":
			s.name = "signal"
		case "incident change":
			s.name = "incident-change"
		default:
			continue
		}
		out = append(out, s)
	}
	return out
}

func BenchmarkEncode(b *testing.B) {
	for _, r := range benchRecords() {
		for _, enc := range []struct {
			name string
			fn   func(string, string, time.Time, any) ([]byte, error)
		}{{"sdk", sdkEncode}, {"direct", event.Encode}} {
			b.Run(r.name+"/"+enc.name, func(b *testing.B) {
				b.ReportAllocs()
				var n int
				for b.Loop() {
					v, err := enc.fn(r.ceType, r.id, r.at, r.data)
					if err != nil {
						b.Fatal(err)
					}
					n = len(v)
				}
				b.SetBytes(int64(n))
			})
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	for _, r := range benchRecords() {
		value, err := event.Encode(r.ceType, r.id, r.at, r.data)
		if err != nil {
			b.Fatal(err)
		}
		typ := reflect.TypeOf(r.data)
		b.Run(r.name+"/sdk", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(value)))
			for b.Loop() {
				var e ce.Event
				if err := json.Unmarshal(value, &e); err != nil {
					b.Fatal(err)
				}
				if err := e.DataAs(reflect.New(typ).Interface()); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(r.name+"/direct", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(value)))
			for b.Loop() {
				if _, err := event.Decode(value, r.ceType, reflect.New(typ).Interface()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestEncodeTracedMatchesTheSDK: the traceparent extension is written where the SDK writes
// an extension attribute, and reading the record ignores it.
func TestEncodeTracedMatchesTheSDK(t *testing.T) {
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	at := time.Date(2025, 6, 3, 10, 0, 0, 123000000, time.UTC)
	data := event.Signal{ID: "rule:ev-1", RuleID: "rule"}
	e := ce.New(ce.CloudEventsVersionV1)
	e.SetID("rule:ev-1")
	e.SetSource(event.Source)
	e.SetType(event.TypeSignal)
	e.SetTime(at)
	e.SetExtension("traceparent", tp)
	if err := e.SetData(ce.ApplicationJSON, data); err != nil {
		t.Fatal(err)
	}
	want, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	got, err := event.EncodeTraced(event.TypeSignal, "rule:ev-1", at, tp, data)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("EncodeTraced:\n got %s\nwant %s", got, want)
	}
	var back event.Signal
	if _, err := event.Decode(got, event.TypeSignal, &back); err != nil || back.ID != data.ID {
		t.Errorf("Decode of a traced record: %+v, %v", back, err)
	}
}

// selfEncoding encodes itself through event.MarshalString: a value whose encoding reenters the
// pooled buffers.
type selfEncoding struct{ S string }

func (v selfEncoding) MarshalJSON() ([]byte, error) {
	s, err := event.MarshalString(struct{ Inner string }{v.S})
	return []byte(s), err
}

// What Encode and MarshalString return is the caller's own: encoding more values afterwards,
// in other goroutines, larger than the pool keeps, or reentering the encoder, changes none of
// it (they encode into pooled buffers and must copy out of them).
func TestEncodedBytesOutliveThePooledBuffers(t *testing.T) {
	first, err := event.Encode(event.TypeSignal, "s-1", time.Time{}, event.Signal{ID: "s-1", RuleID: "r1"})
	if err != nil {
		t.Fatal(err)
	}
	doc, err := event.MarshalString(event.Signal{ID: "s-2", RuleID: "r2"})
	if err != nil {
		t.Fatal(err)
	}
	firstWas, docWas := bytes.Clone(first), strings.Clone(doc)
	huge := strings.Repeat("<清波>", 1<<18) // over 1 MiB encoded: its buffer is not kept
	done := make(chan error, 4)
	for g := range 4 {
		go func() {
			for i := range 50 {
				var v any = event.Signal{ID: fmt.Sprintf("g%d-%d", g, i), RuleID: strings.Repeat("x", i*100)}
				switch {
				case i == 25 && g == 0:
					v = event.Signal{ID: "huge", RuleID: huge}
				case i%10 == 3:
					v = selfEncoding{S: fmt.Sprintf("g%d-%d", g, i)}
				}
				want, err := json.Marshal(v)
				if err != nil {
					done <- err
					return
				}
				got, err := event.Encode("t", "id", time.Time{}, v)
				if err != nil || !bytes.HasSuffix(got, append(append([]byte(`,"data":`), want...), '}')) {
					done <- fmt.Errorf("Encode %d/%d: %v, %.80s", g, i, err, got)
					return
				}
				if s, err := event.MarshalString(v); err != nil || s != string(want) {
					done <- fmt.Errorf("MarshalString %d/%d: %v, %.80s", g, i, err, s)
					return
				}
			}
			done <- nil
		}()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(first, firstWas) {
		t.Errorf("an encoded record changed after more encoding:\n got %s\nwant %s", first, firstWas)
	}
	if doc != docWas {
		t.Errorf("a document changed after more encoding:\n got %s\nwant %s", doc, docWas)
	}
}
