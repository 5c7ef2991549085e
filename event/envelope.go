package event

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	segjson "github.com/segmentio/encoding/json"
)

// Encode wraps data in a CloudEvents 1.0 envelope in structured JSON mode, the form every
// record on urbanbrain's own topics takes.
//
// It writes the envelope itself and leaves only the data to the encoder Marshal uses (into a
// pooled buffer: payloads). Going through the CloudEvents SDK (build an event, encode the data
// into it, encode the event, which encoding/json then compacts again) cost more than
// everything else a stage does to a record.
// The bytes are the SDK's, byte for byte (envelope_test.go holds it to that): the attributes
// in the SDK's order, escaped as its writer does and then as encoding/json's compaction does
// (<, >, & and U+2028/U+2029 as \u escapes), the time in UTC with as many fractional digits
// as it has, and no time at all when at is zero.
func Encode(ceType, id string, at time.Time, data any) ([]byte, error) {
	return EncodeTraced(ceType, id, at, "", data)
}

// EncodeTraced is Encode with the CloudEvents distributed-tracing extension: traceparent (a
// W3C traceparent value, written as given) is an attribute of the envelope, after the data
// as the SDK writes extensions. An empty traceparent writes none, the bytes of Encode. Decode
// ignores it: the trace a consumer continues is the record's traceparent header.
func EncodeTraced(ceType, id string, at time.Time, traceparent string, data any) ([]byte, error) {
	var payload []byte
	base64Data := false
	switch d := data.(type) {
	case nil:
		// The SDK writes no data member for no data.
	case []byte:
		// The SDK carries bytes as data_base64, whatever the content type says.
		payload, base64Data = d, true
	default:
		buf := payloads.Get().(*bytes.Buffer)
		defer putPayload(buf)
		var err error
		if payload, err = marshalInto(buf, data); err != nil {
			return nil, fmt.Errorf("encode %s %s: %w", ceType, id, err)
		}
	}

	size := len(`{"specversion":"1.0","id":"","source":"","type":"","datacontenttype":"application/json","time":"","data":}`) +
		len(Source) + len(id) + len(ceType) + len(time.RFC3339Nano) + len(payload)
	if base64Data {
		size += base64.StdEncoding.EncodedLen(len(payload)) + len(`_base64""`)
	}
	if traceparent != "" {
		size += len(`,"traceparent":""`) + len(traceparent)
	}
	b := make([]byte, 0, size+16) // a little room for escapes in the id or type
	b = append(b, `{"specversion":"1.0","id":`...)
	b = appendString(b, id)
	b = append(b, `,"source":`...)
	b = appendString(b, Source)
	b = append(b, `,"type":`...)
	b = appendString(b, ceType)
	b = append(b, `,"datacontenttype":"application/json"`...)
	if !at.IsZero() {
		b = append(b, `,"time":"`...)
		b = at.UTC().AppendFormat(b, time.RFC3339Nano)
		b = append(b, '"')
	}
	switch {
	case base64Data:
		b = append(b, `,"data_base64":"`...)
		b = base64.StdEncoding.AppendEncode(b, payload)
		b = append(b, '"')
	case data != nil:
		b = append(b, `,"data":`...)
		b = append(b, payload...)
	}
	if traceparent != "" { // the SDK writes extensions after the data
		b = append(b, `,"traceparent":`...)
		b = appendString(b, traceparent)
	}
	return append(b, '}'), nil
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string the way the SDK's records have always carried
// attributes: its writer escapes quote, backslash and control bytes (\n, \r, \t short, the
// others as \u00xx) and passes every other byte through, invalid UTF-8 included; encoding/json
// then escapes <, >, & and U+2028/U+2029 when it compacts the SDK's output. Ids come from
// ingest (checked UTF-8) or are made here, so the pass-through never meets a bad byte in
// practice; mirroring it keeps the bytes equal for every input rather than for most.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		if c == 0xE2 && i+2 < len(s) && s[i+1] == 0x80 && s[i+2]&^1 == 0xA8 {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[s[i+2]&0xF])
			i += 3
			start = i
			continue
		}
		i++
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// Envelope is what a consumer may need of a CloudEvent besides its data: the id to be
// idempotent by, the type, the producer and the time of the occurrence.
type Envelope struct {
	ID     string
	Type   string
	Source string
	Time   time.Time // zero when the record has no time
}

// envelopeOf is a structured CloudEvent as it is read, its data into a D: raw JSON for the
// payload's own type to read next (wireEnvelope), or the payload itself (DecodeInto).
type envelopeOf[D any] struct {
	SpecVersion     string   `json:"specversion"`
	ID              string   `json:"id"`
	Source          string   `json:"source"`
	Type            string   `json:"type"`
	Time            wireTime `json:"time"`
	DataContentType *string  `json:"datacontenttype"`
	Data            D        `json:"data"`
	DataBase64      []byte   `json:"data_base64"` // encoding/json reads base64 into []byte
}

// wireEnvelope is a structured CloudEvent with its data left raw.
type wireEnvelope = envelopeOf[json.RawMessage]

// wireTime reads the time attribute as the SDK does: RFC 3339 with any fraction, and an empty
// string as no time.
type wireTime struct{ time.Time }

func (t *wireTime) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New("time is not a string")
	}
	if s == "" {
		t.Time = time.Time{}
		return nil
	}
	at, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("time %q is not RFC 3339", s)
	}
	t.Time = at
	return nil
}

// Decode reads a structured-mode CloudEvent, checks that its type is wantType, and
// unmarshals its data into out. It returns the envelope for callers that need its id or time.
//
// It is strict where the SDK's reader was (specversion 1.0, id, source and type present and
// strings, a JSON content type) and makes one pass over the record plus one over the data.
// Whatever the bytes, it returns an error rather than panicking: records on internal topics
// are ours, but a poisoned one must be dead-lettered, not take the consumer down.
func Decode(b []byte, wantType string, out any) (Envelope, error) {
	env, data, err := readEnvelope(b)
	if err != nil {
		return env, err
	}
	if env.Type != wantType {
		return env, fmt.Errorf("decode cloudevent %s: type %q, want %q", env.ID, env.Type, wantType)
	}
	return env, decodeData(env, data, out)
}

// DecodeAny is Decode for a topic that carries more than one type: it accepts any of types.
func DecodeAny(b []byte, types []string, out any) (Envelope, error) {
	env, data, err := readEnvelope(b)
	if err != nil {
		return env, err
	}
	if !slices.Contains(types, env.Type) {
		return env, typeError(env, types)
	}
	return env, decodeData(env, data, out)
}

func typeError(env Envelope, types []string) error {
	return fmt.Errorf("decode cloudevent %s: type %q, want one of %s", env.ID, env.Type, strings.Join(types, ", "))
}

func readEnvelope(b []byte) (Envelope, []byte, error) {
	// segmentio's decoder (a drop-in for encoding/json, three to four times faster on the
	// large records every changelog consumer reads) checks syntax as it goes, but it has no
	// nesting limit: a cheap pass bounds the depth first, as encoding/json does.
	if err := checkDepth(b); err != nil {
		return Envelope{}, nil, fmt.Errorf("not a CloudEvent: %w", err)
	}
	var w wireEnvelope
	if err := segjson.Unmarshal(b, &w); err != nil {
		return Envelope{}, nil, fmt.Errorf("not a CloudEvent: %w", stdError(b, err))
	}
	env := Envelope{ID: w.ID, Type: w.Type, Source: w.Source, Time: w.Time.Time}
	if err := checkAttributes(w.SpecVersion, &env, w.DataContentType); err != nil {
		return env, nil, err
	}
	switch {
	case w.Data != nil && w.DataBase64 != nil:
		return env, nil, fmt.Errorf("decode cloudevent %s: both data and data_base64", w.ID)
	case w.DataBase64 != nil:
		// The decoded bytes were inside a string for the check above: bound them too.
		if err := checkDepth(w.DataBase64); err != nil {
			return env, nil, fmt.Errorf("decode cloudevent %s data_base64: %w", w.ID, err)
		}
		return env, w.DataBase64, nil
	}
	return env, w.Data, nil
}

// checkAttributes is what a CloudEvent's attributes must be, in the order the problems are
// reported: specversion 1.0, then id, source and type present, then a JSON content type.
func checkAttributes(specVersion string, env *Envelope, contentType *string) error {
	var missing []string
	for _, a := range [...]struct{ name, v string }{{"id", env.ID}, {"source", env.Source}, {"type", env.Type}} {
		if strings.TrimSpace(a.v) == "" {
			missing = append(missing, a.name)
		}
	}
	switch {
	case specVersion != "1.0":
		return fmt.Errorf("decode cloudevent: specversion %q, want 1.0", specVersion)
	case len(missing) > 0:
		return fmt.Errorf("decode cloudevent: missing %s", strings.Join(missing, ", "))
	case contentType != nil && !jsonMediaType(*contentType):
		return fmt.Errorf("decode cloudevent %s: datacontenttype %q, want application/json", env.ID, *contentType)
	}
	return nil
}

// DecodeInto is DecodeAny that replaces *out with the record's data, whatever out held (after
// an error, what it holds is not to be used). The usual record — data present once and not
// null, no data_base64, everything decodable — is read in one pass, where DecodeAny reads the
// envelope with the data as raw JSON and then the data again: a quarter to a third of a
// decode. Anything else is read by DecodeAny, so the verdict and the errors are DecodeAny's
// (FuzzDecodeIntoMatchesDecodeAny holds them to it).
func DecodeInto[T any](b []byte, types []string, out *T) (Envelope, error) {
	var zero T
	*out = zero
	if checkDepth(b) == nil && oneDataMember(b) {
		var w envelopeOf[*T] // Data stays nil for no data and for null
		if segjson.Unmarshal(b, &w) == nil && w.Data != nil && w.DataBase64 == nil {
			env := Envelope{ID: w.ID, Type: w.Type, Source: w.Source, Time: w.Time.Time}
			if err := checkAttributes(w.SpecVersion, &env, w.DataContentType); err != nil {
				return env, err
			}
			if !slices.Contains(types, env.Type) {
				return env, typeError(env, types)
			}
			*out = *w.Data
			return env, nil
		}
	}
	return DecodeAny(b, types, out)
}

// oneDataMember reports whether b surely holds at most one member a decoder takes for "data":
// `"data"` at most once, and nothing that spells it with a capital letter or an escape.
// segmentio's decoder lays a second data member over the first, where encoding/json — and
// DecodeAny, which keeps the member's raw bytes — keeps only the last; a record that may have
// two is left to DecodeAny. The checks are byte searches, a fraction of a decode; a false
// alarm (the word in a value) only costs the two-pass read.
func oneDataMember(b []byte) bool {
	if bytes.Count(b, []byte(`"data"`)) > 1 {
		return false
	}
	// Every spelling with a capital ends in A", Ta", Ata" or Data".
	for _, p := range [...]string{`A"`, `Ta"`, `Ata"`, `Data"`} {
		if bytes.Contains(b, []byte(p)) {
			return false
		}
	}
	// \u0064 and the like: an escaped d, a or t in either case. Records escape <, > and & and
	// control characters this way, never letters.
	return !MayEscape(b, 'd', 'a', 't', 'D', 'A', 'T')
}

// maxDepth is encoding/json's own nesting limit.
const maxDepth = 10000

// checkDepth refuses input nested deeper than maxDepth. It only counts brackets outside
// strings; syntax is the decoder's to check.
func checkDepth(b []byte) error {
	// Nesting deeper than maxDepth takes more than maxDepth opening brackets: input with
	// fewer, in strings or not (every record the stages write), needs no walk. Counting a
	// byte is vectorised, a tenth of the walk's cost.
	if bytes.Count(b, []byte{'{'})+bytes.Count(b, []byte{'['}) <= maxDepth {
		return nil
	}
	depth, inString, escaped := 0, false, false
	for _, c := range b {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			if depth++; depth > maxDepth {
				return errors.New("exceeded max depth")
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return nil
}

// stdError is encoding/json's error for input segmentio's decoder refused, when it has one:
// its messages ("invalid character 'x' looking for beginning of value") are what the
// dead-letter reasons have always said.
func stdError(b []byte, err error) error {
	var v any
	if serr := json.Unmarshal(b, &v); serr != nil {
		return serr
	}
	return err
}

func decodeData(env Envelope, data []byte, out any) error {
	if len(data) == 0 {
		return fmt.Errorf("decode cloudevent %s: no data", env.ID)
	}
	if err := segjson.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decode cloudevent %s data: %w", env.ID, err)
	}
	return nil
}

// jsonMediaType reports whether a datacontenttype says JSON, as the SDK reads it: the media
// type before any parameters, trimmed and in any case.
func jsonMediaType(ct string) bool {
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	switch strings.ToLower(strings.TrimSpace(ct)) {
	case "application/json", "text/json", "":
		return true
	}
	return false
}
