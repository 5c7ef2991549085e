package ingest

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	ce "github.com/cloudevents/sdk-go/v2/event"

	"github.com/urbanbrain/urbanbrain/event"
)

// maxIDBytes bounds an event id: ids are dedup keys held in memory and travel on every
// downstream record.
const maxIDBytes = 256

// input is one thing to ingest, whichever way it came in.
type input struct {
	origin   string            // the ingest topic, or "http": the dead letter's Topic
	key      string            // the Kafka key, "" over HTTP
	headers  map[string]string // kept on the dead letter
	value    []byte            // the record value or HTTP body (item)
	attrs    *binaryAttrs      // binary mode: the CloudEvents attributes from headers
	bareType string            // the type a bare payload gets; "" where none is allowed
}

// binaryAttrs are the CloudEvents attributes of a binary-mode message (ce_* Kafka headers,
// ce-* HTTP headers) and the content type of its data.
type binaryAttrs struct {
	specVersion, id, typ, source, subject, time, contentType string
}

// binaryAttributes reads ce<sep>* headers and the content type. binary reports whether the
// message is in binary mode: a specversion header is present and the content type does not
// say structured (application/cloudevents...), as the Kafka and HTTP bindings define it.
func binaryAttributes(h map[string]string, sep byte) (a binaryAttrs, binary bool) {
	hasSpec := false
	for k, v := range h {
		if strings.EqualFold(k, "content-type") {
			a.contentType = v
			continue
		}
		if len(k) < 3 || !strings.EqualFold(k[:2], "ce") || k[2] != sep {
			continue
		}
		switch strings.ToLower(k[3:]) {
		case "specversion":
			a.specVersion, hasSpec = v, true
		case "id":
			a.id = v
		case "type":
			a.typ = v
		case "source":
			a.source = v
		case "subject":
			a.subject = v
		case "time":
			a.time = v
		}
	}
	structured := strings.HasPrefix(strings.ToLower(strings.TrimSpace(a.contentType)), "application/cloudevents")
	return a, hasSpec && !structured
}

// envelope is what ingest needs of a CloudEvent once the SDK has read and validated it.
type envelope struct {
	id, typ, source string
	time            time.Time // zero when absent
	data            []byte
	bare            bool // no envelope: type from the topic, id and time from the payload
}

// knownTypes are the event types ingest accepts, on any ingest topic.
var knownTypes = []string{event.TypeSensorReading, event.TypeHotlineTicket, event.TypeVideoDetection}

// stringAttrs must be JSON strings in a structured event. The SDK's reader assumes it for
// some of them (data_base64 that is a number makes it slice out of range), so this is
// checked before the SDK sees the record.
var stringAttrs = []string{"specversion", "id", "type", "source", "subject", "time", "datacontenttype", "dataschema", "data_base64"}

// readEnvelope finds the CloudEvent in an input (binary, structured or bare).
func (s *Service) readEnvelope(in input) (envelope, *RejectError) {
	if len(in.value) > s.cfg.MaxEventBytes {
		return envelope{}, reject(ClassTooLarge, "payload too large: %d bytes, limit %d", len(in.value), s.cfg.MaxEventBytes)
	}
	if in.attrs != nil {
		return binaryEnvelope(*in.attrs, in.value)
	}
	if len(in.value) == 0 {
		return envelope{}, reject(ClassMalformed, "empty record: no JSON")
	}
	members, rej := checkText(in.value)
	if rej != nil {
		return envelope{}, rej
	}
	top, rej := readObject(in.value, members)
	if rej != nil {
		return envelope{}, rej
	}
	if _, ok := top["specversion"]; ok {
		return structuredEnvelope(in.value, top)
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
func readObject(b []byte, members int) (map[string]json.RawMessage, *RejectError) {
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

func structuredEnvelope(b []byte, top map[string]json.RawMessage) (envelope, *RejectError) {
	for _, name := range stringAttrs {
		if raw, ok := top[name]; ok && (len(raw) < 2 || raw[0] != '"') {
			return envelope{}, reject(ClassEnvelope, "attribute %s must be a string", name)
		}
	}
	_, hasData := top["data"]
	if _, ok := top["data_base64"]; ok && hasData {
		return envelope{}, reject(ClassEnvelope, "both data and data_base64 present")
	}
	if sv := jsonString(top["specversion"]); sv != ce.CloudEventsVersionV1 {
		return envelope{}, reject(ClassEnvelope, "unsupported specversion %q (want 1.0)", clip(sv))
	}
	if raw, ok := top["datacontenttype"]; ok {
		if rej := checkDataContentType(jsonString(raw)); rej != nil {
			return envelope{}, rej
		}
	}
	if raw, ok := top["time"]; ok {
		if rej := checkRFC3339(jsonString(raw)); rej != nil {
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
	return fromCloudEvent(&e)
}

func binaryEnvelope(a binaryAttrs, value []byte) (envelope, *RejectError) {
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
	env, rej := fromCloudEvent(&e)
	if rej != nil {
		return env, rej
	}
	// The value never went through the whole-record check: it is the data itself.
	_, rej = checkText(env.data)
	return env, rej
}

// fromCloudEvent validates an event the SDK has built and takes what ingest needs of it.
func fromCloudEvent(e *ce.Event) (envelope, *RejectError) {
	env := envelope{id: e.ID(), typ: e.Type(), source: e.Source()}
	if err := e.Validate(); err != nil {
		return env, validationReject(err)
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
func validationReject(err error) *RejectError {
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

// checkDataContentType accepts the JSON media types the SDK reads as JSON (it compares them
// case-sensitively, so we do too).
func checkDataContentType(ct string) *RejectError {
	mt := ct
	if i := strings.IndexByte(mt, ';'); i >= 0 {
		mt = mt[:i]
	}
	switch strings.TrimSpace(mt) {
	case ce.ApplicationJSON, ce.TextJSON:
		return nil
	}
	return reject(ClassMediaType, "unsupported datacontenttype %q (want application/json)", clip(ct))
}

func checkRFC3339(s string) *RejectError {
	if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
		return timeReject(s)
	}
	return nil
}

func timeReject(s string) *RejectError {
	return reject(ClassTime, "time %q is not RFC 3339 (e.g. 2025-06-01T08:30:00+08:00)", clip(s))
}

// jsonString unquotes a JSON string value, "" if it is not one.
func jsonString(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return ""
	}
	return s
}

// contentID is the deterministic id of a bare payload.
func contentID(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256-" + hex.EncodeToString(sum[:16])
}
