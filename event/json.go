package event

import (
	"bytes"
	"slices"
	"sync"

	gojson "github.com/goccy/go-json"
)

// Marshal encodes v as encoding/json.Marshal does, byte for byte, in about half the time: every
// record a stage produces and every document a store writes goes through it (or through
// MarshalString and Encode, which use its encoder into a pooled buffer), and reflection
// in encoding/json was the larger part of encoding them (BenchmarkEncode: a signal 5.5 → 2.4 µs,
// an incident change 14.7 → 8.0 µs). FuzzMarshalMatchesEncodingJSON holds goccy/go-json to
// encoding/json's bytes for every record type, with any strings, numbers and times in them.
func Marshal(v any) ([]byte, error) { return gojson.Marshal(v) }

// MarshalString is Marshal for a caller that wants a string (a stored document): encoded into a
// pooled buffer and copied once into the string, where string(Marshal(v)) copies twice.
func MarshalString(v any) (string, error) {
	buf := payloads.Get().(*bytes.Buffer)
	defer putPayload(buf)
	b, err := marshalInto(buf, v)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// payloads are buffers to encode into where the bytes are copied anyway (EncodeTraced copies
// them into the record, MarshalString into a string): Marshal hands back a copy of its own
// buffer, one more allocation of every value (4.8 % of the server's allocation at 5,000
// events/s).
var payloads = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// putPayload returns buf to payloads, unless one large record left it large.
func putPayload(buf *bytes.Buffer) {
	if buf.Cap() <= 1<<20 {
		payloads.Put(buf)
	}
}

// marshalInto encodes v into buf, as Marshal does (the same encoder, options and bytes), and
// returns buf's bytes: valid until buf is used again.
func marshalInto(buf *bytes.Buffer, v any) ([]byte, error) {
	buf.Reset()
	if err := gojson.NewEncoder(buf).Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte{'\n'}), nil // Encode ends the value with a newline
}

// MayEscape reports whether JSON text b may hold a \u escape of one of runes (each in the
// Basic Multilingual Plane), its hex digits in either case. It errs towards yes, as its callers
// want: an escaped backslash before "u0064" counts too, and costs them only their careful path.
func MayEscape(b []byte, runes ...rune) bool {
	for i := 0; ; {
		j := bytes.Index(b[i:], []byte(`\u`))
		if j < 0 || i+j+6 > len(b) {
			return false
		}
		i += j + 2
		if r, ok := hex4(b[i : i+4]); ok && slices.Contains(runes, r) {
			return true
		}
	}
}

// hex4 reads the four hex digits of a \u escape.
func hex4(h []byte) (rune, bool) {
	var r rune
	for _, c := range h {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}
