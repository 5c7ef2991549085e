package ingest

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"math"
	"mime"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/urbanbrain/urbanbrain/event"
)

// specVersion is the only CloudEvents version ingest reads.
const specVersion = "1.0"

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

// envelope is what ingest needs of a CloudEvent once its attributes are checked.
type envelope struct {
	id, typ, source string
	time            time.Time // zero when absent
	data            []byte
	bare            bool // no envelope: type from the topic, id and time from the payload
	scanned         bool // data went through scanObject with the record (see decodeData)
}

// knownTypes are the event types ingest accepts, on any ingest topic.
var knownTypes = []string{event.TypeSensorReading, event.TypeHotlineTicket, event.TypeVideoDetection}

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
	obj, rej := scanObject(in.value)
	if rej != nil {
		return envelope{}, rej
	}
	if obj.present(attrSpecVersion) {
		return structuredEnvelope(in.value, &obj)
	}
	if in.bareType == "" {
		return envelope{}, reject(ClassEnvelope, "not a CloudEvent: missing specversion")
	}
	env := envelope{typ: in.bareType, source: in.origin, data: in.value, bare: true, scanned: true}
	if env.typ != event.TypeHotlineTicket {
		// A sensor or camera has no natural id per reading: the content hash makes a replay
		// of the same bytes the same event. Hotline tickets use their ticket_id.
		env.id = contentID(in.value)
	}
	return env, nil
}

// attributes are a CloudEvent's context attributes as ingest checks them, from either
// structured JSON or ce-* headers. The checks are the CloudEvents SDK's, which ingest used to
// run the record through: the reasons name the same problems in the same order.
type attributes struct {
	id, typ, source, subject, dataContentType, dataSchema    string
	hasSource, hasSubject, hasDataContentType, hasDataSchema bool
	time                                                     time.Time
}

// structuredEnvelope checks the attributes of a structured event that scanObject has read,
// without decoding any of it again: the data is handed on as the bytes it is.
func structuredEnvelope(b []byte, obj *object) (envelope, *RejectError) {
	for _, a := range stringAttrs {
		if obj.present(a) && !obj.attrs[a].str {
			return envelope{}, reject(ClassEnvelope, "attribute %s must be a string", attrNames[a])
		}
	}
	if obj.present(attrData) && obj.present(attrDataBase64) {
		return envelope{}, reject(ClassEnvelope, "both data and data_base64 present")
	}
	if !obj.is(b, attrSpecVersion, specVersion) {
		return envelope{}, reject(ClassEnvelope, "unsupported specversion %q (want 1.0)", clip(obj.text(b, attrSpecVersion)))
	}
	var a attributes
	if obj.present(attrDataContentType) {
		a.hasDataContentType = true
		if !obj.is(b, attrDataContentType, MediaJSON) { // the usual case needs no more
			a.dataContentType = obj.text(b, attrDataContentType)
			if rej := checkDataContentType(a.dataContentType); rej != nil {
				return envelope{}, rej
			}
		} else {
			a.dataContentType = MediaJSON
		}
	}
	if obj.present(attrTime) {
		ts := obj.text(b, attrTime)
		t, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			return envelope{}, timeReject(ts)
		}
		a.time = t
	}

	// What the SDK's reader refused while reading: extensions that are no attribute, a source
	// that is no URI reference, data_base64 that is no base64.
	for _, e := range obj.ext {
		if rej := checkExtension(b, e); rej != nil {
			return envelope{}, rej
		}
	}
	if obj.present(attrSource) {
		src := obj.text(b, attrSource)
		u, err := url.Parse(src)
		if src == "" || err != nil {
			return envelope{}, reject(ClassEnvelope, "malformed CloudEvent: cannot parse uri ref: %s", clipTo(src, 200))
		}
		a.source, a.hasSource = sourceString(src, u), true
	}
	var data []byte
	base64Data := false
	switch {
	case obj.present(attrDataBase64):
		var err error
		if data, err = base64.StdEncoding.DecodeString(obj.text(b, attrDataBase64)); err != nil {
			return envelope{}, reject(ClassEnvelope, "invalid data_base64: %v", err)
		}
		base64Data = true
	case obj.present(attrData):
		d := obj.attrs[attrData]
		data = b[d.start:d.end]
	}

	if obj.present(attrID) {
		a.id = obj.text(b, attrID)
	}
	if obj.present(attrType) {
		a.typ = knownType(obj.raw(b, attrType))
		if a.typ == "" || obj.attrs[attrType].escaped {
			a.typ = obj.text(b, attrType)
		}
	}
	if obj.present(attrSubject) {
		a.subject = obj.text(b, attrSubject)
		a.hasSubject = a.subject != ""
	}
	if obj.present(attrDataSchema) {
		a.dataSchema = obj.text(b, attrDataSchema)
		a.hasDataSchema = a.dataSchema != ""
	}
	env, rej := a.check()
	if rej != nil {
		return env, rej
	}
	env.data, env.scanned = data, !base64Data
	if len(env.data) == 0 {
		return env, reject(ClassPayload, "missing data")
	}
	if base64Data {
		// Decoded bytes never went through the record's scan.
		if _, rej := checkText(env.data); rej != nil {
			return env, rej
		}
	}
	return env, nil
}

// knownType returns the known type a raw attribute value spells, or "": the usual type then
// costs no string of its own.
func knownType(raw []byte) string {
	for _, t := range knownTypes {
		if string(raw) == t {
			return t
		}
	}
	return ""
}

// sourceString is the source as the SDK gave it, re-encoded from its parsed form; a source
// that is already in that form is kept as given, which is nearly every source.
func sourceString(src string, u *url.URL) string {
	if s := u.String(); s != src {
		return s
	}
	return src
}

// checkExtension applies the SDK's rules for extension attributes: a name of ASCII letters
// and digits that is no spec attribute in another case, and a value that is a string, a
// boolean, null or a number in the int32 range.
func checkExtension(b []byte, e extension) *RejectError {
	name := string(e.name)
	bad := name == ""
	for i := 0; i < len(name) && !bad; i++ {
		c := name[i]
		bad = !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9')
	}
	if bad {
		return reject(ClassEnvelope, "malformed CloudEvent: attribute name %q: want ASCII letters and digits", clip(name))
	}
	for _, a := range attrNames[:attrDataBase64] {
		if strings.EqualFold(name, a) {
			return reject(ClassEnvelope, "malformed CloudEvent: extension %q would overwrite the attribute %s", clip(name), a)
		}
	}
	v := b[e.value.start:e.value.end]
	switch v[0] {
	case '"', 't', 'f', 'n':
		return nil
	case '{', '[':
		return reject(ClassEnvelope, "malformed CloudEvent: extension %s is an object or array; want a string, boolean or integer", clip(name))
	}
	f, err := strconv.ParseFloat(string(v), 64)
	if err != nil || f > math.MaxInt32 || f < math.MinInt32 {
		return reject(ClassEnvelope, "malformed CloudEvent: extension %s: %s is out of the integer range", clip(name), clip(string(v)))
	}
	return nil
}

func binaryEnvelope(h binaryAttrs, value []byte) (envelope, *RejectError) {
	for _, v := range [...]string{h.specVersion, h.id, h.typ, h.source, h.subject, h.time, h.contentType} {
		if !utf8.ValidString(v) {
			return envelope{}, reject(ClassMalformed, "invalid UTF-8 in a ce header")
		}
	}
	if h.specVersion != specVersion {
		return envelope{}, reject(ClassEnvelope, "unsupported specversion %q (want 1.0)", clip(h.specVersion))
	}
	if h.contentType != "" {
		if rej := checkDataContentType(h.contentType); rej != nil {
			return envelope{}, rej
		}
	}
	// Headers are trimmed as the SDK's setters trimmed them; an unparseable source is a
	// missing one, as it was.
	a := attributes{id: strings.TrimSpace(h.id), typ: strings.TrimSpace(h.typ), subject: strings.TrimSpace(h.subject),
		dataContentType: strings.TrimSpace(h.contentType)}
	a.hasSubject, a.hasDataContentType = a.subject != "", a.dataContentType != ""
	if h.time != "" {
		t, err := time.Parse(time.RFC3339Nano, h.time)
		if err != nil {
			return envelope{}, timeReject(h.time)
		}
		a.time = t
	}
	if u, err := url.Parse(h.source); err == nil {
		a.source, a.hasSource = sourceString(h.source, u), true
	}
	env, rej := a.check()
	if rej != nil {
		return env, rej
	}
	env.data = value
	if len(env.data) == 0 {
		return env, reject(ClassPayload, "missing data")
	}
	// The value never went through the whole-record scan: it is the data itself.
	_, rej = checkText(env.data)
	return env, rej
}

// check validates attributes as the SDK's Validate did (required ones, then the optional ones
// that have a format) and as ingest must (id length, known type).
func (a *attributes) check() (envelope, *RejectError) {
	env := envelope{id: a.id, typ: a.typ, source: a.source, time: a.time}
	var p problems
	if strings.TrimSpace(a.id) == "" {
		p.addf("missing id")
	}
	if !a.hasSource || strings.TrimSpace(a.source) == "" {
		p.addf("missing source")
	}
	if strings.TrimSpace(a.typ) == "" {
		p.addf("missing type")
	}
	if a.hasDataContentType && a.dataContentType != MediaJSON {
		if strings.TrimSpace(a.dataContentType) == "" {
			p.addf("invalid datacontenttype: if present, MUST adhere to the format specified in RFC 2046")
		} else if _, _, err := mime.ParseMediaType(strings.TrimSpace(a.dataContentType)); err != nil {
			p.addf("invalid datacontenttype: failed to parse RFC 2046 media type %v", err)
		}
	}
	if a.hasDataSchema {
		if u, err := url.Parse(a.dataSchema); err == nil && !u.IsAbs() {
			p.addf("invalid dataschema: if present, MUST adhere to the format specified in RFC 3986, Section 4.3. Absolute URI")
		}
	}
	if a.hasSubject && strings.TrimSpace(a.subject) == "" {
		p.addf("invalid subject: if present, MUST be a non-empty string")
	}
	if rej := p.reject(ClassEnvelope); rej != nil {
		return env, rej
	}
	if len(env.id) > maxIDBytes {
		return env, reject(ClassEnvelope, "id is %d bytes, limit %d", len(env.id), maxIDBytes)
	}
	if !slices.Contains(knownTypes, env.typ) {
		return env, reject(ClassEnvelope, "unknown type %q (want %s)", clip(env.typ), strings.Join(knownTypes, ", "))
	}
	return env, nil
}

// checkDataContentType accepts the JSON media types the SDK reads as JSON (it compares them
// case-sensitively, so we do too).
func checkDataContentType(ct string) *RejectError {
	mt := ct
	if i := strings.IndexByte(mt, ';'); i >= 0 {
		mt = mt[:i]
	}
	switch strings.TrimSpace(mt) {
	case MediaJSON, "text/json":
		return nil
	}
	return reject(ClassMediaType, "unsupported datacontenttype %q (want application/json or text/json)", clip(ct))
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

// contentID is the deterministic id of a bare payload.
func contentID(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256-" + hex.EncodeToString(sum[:16])
}
