package ingest

// The envelope reader ingest had before its one-pass scan: checkText, a map of the top level,
// then the CloudEvents SDK's reader. It stays here as the reference the scan is held to
// (FuzzEnvelopeMatchesSDK): the same input must be accepted with the same attributes and data,
// or refused, by both.

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	ce "github.com/cloudevents/sdk-go/v2/event"

	"github.com/urbanbrain/urbanbrain/event"
)

var sdkStringAttrs = []string{"specversion", "id", "type", "source", "subject", "time", "datacontenttype", "dataschema", "data_base64"}

// readEnvelope finds the CloudEvent in an input (binary, structured or bare).
func (s *Service) sdkReadEnvelope(in input) (envelope, *RejectError) {
	if len(in.value) > s.cfg.MaxEventBytes {
		return envelope{}, reject(ClassTooLarge, "payload too large: %d bytes, limit %d", len(in.value), s.cfg.MaxEventBytes)
	}
	if in.attrs != nil {
		return sdkBinaryEnvelope(*in.attrs, in.value)
	}
	if len(in.value) == 0 {
		return envelope{}, reject(ClassMalformed, "empty record: no JSON")
	}
	members, rej := checkText(in.value)
	if rej != nil {
		return envelope{}, rej
	}
	top, rej := sdkReadObject(in.value, members)
	if rej != nil {
		return envelope{}, rej
	}
	if _, ok := top["specversion"]; ok {
		return sdkStructuredEnvelope(in.value, top)
	}
	if in.bareType == "" {
		return envelope{}, reject(ClassEnvelope, "not a CloudEvent: missing specversion")
	}
	env := envelope{typ: in.bareType, source: in.origin, data: in.value, bare: true}
	if env.typ != event.TypeHotlineTicket {
		// A sensor or camera has no natural id per reading: the content hash makes a replay
		// of the same bytes the same event. Hotline tickets use their ticket_id.
		env.id = contentID(in.value)
	}
	return env, nil
}

// readObject splits a JSON object into its members, refusing duplicate names: encoding/json
// and the SDK's reader need not agree on which of two equal names wins, and one order
// (data_base64 given as a number, then datacontenttype, then data_base64 as a string) makes
// the SDK slice out of range. members is the count checkText made of the top level.
func sdkReadObject(b []byte, members int) (map[string]json.RawMessage, *RejectError) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil {
		return nil, jsonReject(err, "object")
	}
	if top == nil {
		return nil, reject(ClassMalformed, "expected a JSON object, got null")
	}
	if len(top) != members {
		return nil, reject(ClassMalformed, "duplicate member names in the object")
	}
	return top, nil
}

func sdkStructuredEnvelope(b []byte, top map[string]json.RawMessage) (envelope, *RejectError) {
	for _, name := range sdkStringAttrs {
		if raw, ok := top[name]; ok && (len(raw) < 2 || raw[0] != '"') {
			return envelope{}, reject(ClassEnvelope, "attribute %s must be a string", name)
		}
	}
	_, hasData := top["data"]
	if _, ok := top["data_base64"]; ok && hasData {
		return envelope{}, reject(ClassEnvelope, "both data and data_base64 present")
	}
	if sv := sdkJsonString(top["specversion"]); sv != ce.CloudEventsVersionV1 {
		return envelope{}, reject(ClassEnvelope, "unsupported specversion %q (want 1.0)", clip(sv))
	}
	if raw, ok := top["datacontenttype"]; ok {
		if rej := checkDataContentType(sdkJsonString(raw)); rej != nil {
			return envelope{}, rej
		}
	}
	if raw, ok := top["time"]; ok {
		if rej := checkRFC3339(sdkJsonString(raw)); rej != nil {
			return envelope{}, rej
		}
	}
	var e ce.Event
	if err := e.UnmarshalJSON(b); err != nil {
		var b64 base64.CorruptInputError
		if errors.As(err, &b64) {
			return envelope{}, reject(ClassEnvelope, "invalid data_base64: %v", err)
		}
		return envelope{}, reject(ClassEnvelope, "malformed CloudEvent: %s", clipTo(strings.TrimSpace(err.Error()), 200))
	}
	return sdkFromCloudEvent(&e)
}

func sdkBinaryEnvelope(a binaryAttrs, value []byte) (envelope, *RejectError) {
	for _, v := range [...]string{a.specVersion, a.id, a.typ, a.source, a.subject, a.time, a.contentType} {
		if !utf8.ValidString(v) {
			return envelope{}, reject(ClassMalformed, "invalid UTF-8 in a ce header")
		}
	}
	if a.specVersion != ce.CloudEventsVersionV1 {
		return envelope{}, reject(ClassEnvelope, "unsupported specversion %q (want 1.0)", clip(a.specVersion))
	}
	if a.contentType != "" {
		if rej := checkDataContentType(a.contentType); rej != nil {
			return envelope{}, rej
		}
	}
	var at time.Time
	if a.time != "" {
		t, err := time.Parse(time.RFC3339Nano, a.time)
		if err != nil {
			return envelope{}, timeReject(a.time)
		}
		at = t
	}
	e := ce.New(ce.CloudEventsVersionV1)
	e.SetID(a.id)
	e.SetType(a.typ)
	e.SetSource(a.source)
	if a.subject != "" {
		e.SetSubject(a.subject)
	}
	if !at.IsZero() {
		e.SetTime(at)
	}
	if a.contentType != "" {
		e.SetDataContentType(a.contentType)
	}
	e.DataEncoded = value
	env, rej := sdkFromCloudEvent(&e)
	if rej != nil {
		return env, rej
	}
	// The value never went through the whole-record check: it is the data itself.
	_, rej = checkText(env.data)
	return env, rej
}

// fromCloudEvent validates an event the SDK has built and takes what ingest needs of it.
func sdkFromCloudEvent(e *ce.Event) (envelope, *RejectError) {
	env := envelope{id: e.ID(), typ: e.Type(), source: e.Source()}
	if err := e.Validate(); err != nil {
		return env, sdkValidationReject(err)
	}
	if len(env.id) > maxIDBytes {
		return env, reject(ClassEnvelope, "id is %d bytes, limit %d", len(env.id), maxIDBytes)
	}
	if !slices.Contains(knownTypes, env.typ) {
		return env, reject(ClassEnvelope, "unknown type %q (want %s)", clip(env.typ), strings.Join(knownTypes, ", "))
	}
	env.time = e.Time()
	env.data = e.Data()
	if len(env.data) == 0 {
		return env, reject(ClassPayload, "missing data")
	}
	if e.DataBase64 {
		if _, rej := checkText(env.data); rej != nil {
			return env, rej
		}
	}
	return env, nil
}

// validationReject names the CloudEvents attributes the SDK found missing or invalid,
// required ones first and in a stable order.
func sdkValidationReject(err error) *RejectError {
	var ve ce.ValidationError
	if !errors.As(err, &ve) {
		return reject(ClassEnvelope, "invalid CloudEvent: %s", clipTo(strings.TrimSpace(err.Error()), 200))
	}
	var p problems
	for _, name := range []string{"id", "source", "type", "specversion"} {
		if _, ok := ve[name]; ok {
			p.addf("missing %s", name)
		}
	}
	keys := make([]string, 0, len(ve))
	for k := range ve {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		switch k {
		case "id", "source", "type", "specversion":
		default:
			p.addf("invalid %s: %v", k, ve[k])
		}
	}
	return p.reject(ClassEnvelope)
}

// jsonString unquotes a JSON string value, "" if it is not one.
func sdkJsonString(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return ""
	}
	return s
}

// FuzzEnvelopeMatchesSDK holds the one-pass envelope reader to the one it replaced: for any
// record (structured, bare, or binary with any headers) both accept it with the same id, type,
// source, time and data, or both refuse it with the same class of reason. The wording of a
// reason may differ where the SDK's was its own error text.
func FuzzEnvelopeMatchesSDK(f *testing.F) {
	const head = `"specversion":"1.0","id":"x","source":"urn:s","type":"city.sensor.reading"`
	for _, v := range []string{
		`{` + head + `,"time":"2025-06-01T08:29:00+08:00","datacontenttype":"application/json","data":{"device_id":"d","lat":30.2}}`,
		`{` + head + `,"data_base64":"eyJhIjoxfQ=="}`,
		`{` + head + `,"data_base64":"!!!"}`,
		`{` + head + `,"data_base64":1}`,
		`{` + head + `,"data_base64":1,"datacontenttype":"application/json","data_b\u0061se64":"QQ=="}`,
		`{` + head + `,"data":{},"data_base64":"e30="}`,
		`{` + head + `,"datacontenttype":"text/plain","data":"hi"}`,
		`{` + head + `,"datacontenttype":"application/json; charset=utf-8","data":{}}`,
		`{` + head + `,"datacontenttype":"application/json; charset","data":{}}`,
		`{` + head + `,"dataschema":"/relative","data":{}}`,
		`{` + head + `,"dataschema":"https://schema/x","data":{}}`,
		`{` + head + `,"subject":" ","data":{}}`,
		`{` + head + `,"subject":"","data":{}}`,
		`{` + head + `,"traceparent":"00-ab","n":12,"big":1e12,"ok":true,"no":null,"data":{}}`,
		`{` + head + `,"bad_name":"x","data":{}}`,
		`{` + head + `,"ID":"y","data":{}}`,
		`{` + head + `,"obj":{"a":1},"data":{}}`,
		`{` + head + `,"time":"","data":{}}`,
		`{` + head + `,"time":"2025-06-01 08:30:00","data":{}}`,
		`{` + head + `}`,
		`{` + head + `,"data":null}`,
		`{` + head + `,"data":{"a":"\ud800"}}`,
		`{"specversion":"1.0","id":"x","source":"","type":"city.sensor.reading","data":{}}`,
		`{"specversion":"1.0","id":"x","source":"%zz","type":"city.sensor.reading","data":{}}`,
		`{"specversion":"1.0","id":"x","source":"/a b","type":"city.sensor.reading","data":{}}`,
		`{"specversion":"1.0","id":" ","type":" ","data":{}}`,
		`{"specversion":"1.0","id":"x","source":"s","type":"city.weather","data":{}}`,
		`{"specversion":"0.3","id":"x","source":"s","type":"t","datacontentencoding":""}`,
		`{"spec\u0076ersion":"1.0","id":"x","source":"s","type":"city.sensor.reading","data":{}}`,
		`{"specversion":"1.0","specversion":"1.0"}`,
		`{"device_id":"d","kind":"k","metrics":{"a":1},"lat":30.2,"lon":120.1}`,
		`{"a":1,"a":2}`,
		`{"a":1} {}`, `{"a":`, `null`, `[1,2]`, `"s"`, `12`, ` `, `{}`, "{\"a\":\"\xff\"}",
		`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]`,
		`{"a":[1,-0.5e+3,true,false,null,{"b":"\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00"}]}`,
		`{"a":01}`, `{"a":1.}`, `{"a":-}`, `{"a":1e}`, `{"a":tru}`, `{"a" 1}`, `{"a":1,}`, `{,}`, `{"a":"\x"}`,
	} {
		f.Add([]byte(v), uint8(0), false, "", "", "", "", "")
	}
	f.Add([]byte(`{"device_id":"d"}`), uint8(0), true, "bin-1", event.TypeSensorReading, "/gw/1", "2025-06-01T08:29:00Z", "application/json")
	f.Add([]byte(`{"device_id":"d"}`), uint8(2), true, " ", " city.video.detection ", "%zz", "yesterday", " text/json ")
	f.Add([]byte(`{"device_id":"d"}`), uint8(1), true, "x", event.TypeHotlineTicket, "/a b", "", "application/json; charset")
	f.Add([]byte(nil), uint8(0), true, "x", event.TypeSensorReading, "s", "", "")

	s := &Service{cfg: Config{MaxEventBytes: DefaultMaxEventBytes}}
	topics := []string{event.TopicIngestSensor, event.TopicIngestHotline, event.TopicIngestVideo, "city.ingest.other"}
	f.Fuzz(func(t *testing.T, value []byte, topic uint8, binary bool, id, typ, source, at, contentType string) {
		in := input{origin: topics[int(topic)%len(topics)], value: value}
		in.bareType = event.IngestTopics[in.origin]
		if binary {
			in.attrs = &binaryAttrs{specVersion: specVersion, id: id, typ: typ, source: source, time: at, contentType: contentType}
		}
		want, wrej, panicked := func() (env envelope, rej *RejectError, panicked bool) {
			defer func() {
				if recover() != nil {
					panicked = true
				}
			}()
			env, rej = s.sdkReadEnvelope(in)
			return env, rej, false
		}()
		got, grej := s.readEnvelope(in)
		if panicked {
			if grej == nil {
				t.Fatalf("the SDK's reader panicked and the scan accepted %q", value)
			}
			return
		}
		switch {
		case (grej == nil) != (wrej == nil):
			t.Fatalf("scan: %v; SDK: %v\ninput %q", grej, wrej, value)
		case grej != nil:
			if grej.Class != wrej.Class {
				t.Fatalf("scan refused as %s (%s), SDK as %s (%s)\ninput %q", grej.Class, grej.Reason, wrej.Class, wrej.Reason, value)
			}
		default:
			if got.id != want.id || got.typ != want.typ || got.source != want.source || !got.time.Equal(want.time) ||
				got.bare != want.bare || !bytes.Equal(got.data, want.data) {
				t.Fatalf("scan read\n%+v\nSDK read\n%+v\ninput %q", got, want, value)
			}
		}
	})
}
