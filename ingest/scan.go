package ingest

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// Attributes of a structured CloudEvent that ingest reads or must police. Anything else at the
// top level is an extension.
const (
	attrSpecVersion = iota
	attrID
	attrType
	attrSource
	attrSubject
	attrTime
	attrDataContentType
	attrDataSchema
	attrDataBase64
	attrData
	numAttrs
)

var attrNames = [numAttrs]string{"specversion", "id", "type", "source", "subject", "time", "datacontenttype", "dataschema", "data_base64", "data"}

// stringAttrs must be JSON strings in a structured event: the SDK's reader assumed it for
// some of them (data_base64 that is a number made it slice out of range), and the envelope is
// refused with that reason before any other is looked for.
var stringAttrs = [...]int{attrSpecVersion, attrID, attrType, attrSource, attrSubject, attrTime, attrDataContentType, attrDataSchema, attrDataBase64}

// span is where one member's value sits in the record.
type span struct {
	start, end int  // the raw JSON value, quotes included for a string
	str        bool // the value is a JSON string
	escaped    bool // … with backslash escapes, so its text is not the bytes between the quotes
}

// extension is a top-level member that is not a CloudEvents attribute ingest knows.
type extension struct {
	name  []byte // unescaped: the record's own bytes, or a copy where the name has escapes
	value span
}

// object is the top level of a record as one scan leaves it: where each known attribute's
// value is, the other members, and what was wrong with the names.
type object struct {
	attrs     [numAttrs]span
	has       uint16 // bit i: attrs[i] is present
	ext       []extension
	duplicate bool // two members had the same name (after unescaping, as encoding/json sees them)
}

func (o *object) present(a int) bool { return o.has&(1<<a) != 0 }

// raw returns the bytes between a string value's quotes; for an escaped one they are not its
// text (see text).
func (o *object) raw(b []byte, a int) []byte {
	s := o.attrs[a]
	return b[s.start+1 : s.end-1]
}

// text returns a string attribute's value, unescaped.
func (o *object) text(b []byte, a int) string {
	return spanText(b, o.attrs[a])
}

func spanText(b []byte, s span) string {
	if !s.escaped {
		return string(b[s.start+1 : s.end-1])
	}
	var v string
	_ = json.Unmarshal(b[s.start:s.end], &v) // the scan validated it
	return v
}

// is reports whether a string attribute's text is want, without building the string.
func (o *object) is(b []byte, a int, want string) bool {
	if o.attrs[a].escaped {
		return o.text(b, a) == want
	}
	return string(o.raw(b, a)) == want
}

// scanObject reads a record that should be a JSON object in one pass and refuses everything
// checkText refuses and everything the JSON parser would: invalid UTF-8 and lone surrogate
// escapes anywhere, nesting deeper than maxDepth, and any syntax error, trailing data
// included. On the way it notes where each top-level member's value is, so that nothing
// decodes the envelope a second time: the payload's decoder gets the data's bytes directly.
//
// The reasons are the ones the separate passes gave (checkText, then encoding/json into a
// map): a problem of text found before any of syntax is reported as found; on a syntax
// problem the record is handed to those passes, on that cold path only, for their wording.
func scanObject(b []byte) (object, *RejectError) {
	s := scanner{b: b}
	var obj object
	s.space()
	if s.i >= len(b) || b[s.i] != '{' || !s.top(&obj) {
		if s.rej != nil {
			return obj, s.rej
		}
		return obj, malformed(b)
	}
	s.space()
	if s.i != len(b) {
		return obj, malformed(b)
	}
	if !obj.duplicate {
		obj.duplicate = duplicateNames(obj.ext)
	}
	if obj.duplicate {
		return obj, reject(ClassMalformed, "duplicate member names in the object")
	}
	return obj, nil
}

// duplicateNames reports whether two extensions have the same name. A bare payload's members
// are all extensions here, a dozen or so: comparing each pair costs less than a set.
func duplicateNames(ext []extension) bool {
	if len(ext) > 16 {
		names := make(map[string]struct{}, len(ext))
		for _, e := range ext {
			if _, dup := names[string(e.name)]; dup {
				return true
			}
			names[string(e.name)] = struct{}{}
		}
		return false
	}
	for i := range ext {
		for j := i + 1; j < len(ext); j++ {
			if bytes.Equal(ext[i].name, ext[j].name) {
				return true
			}
		}
	}
	return false
}

// malformed gives the reason for a record the scan refused on syntax, as the passes it
// replaced worded it.
func malformed(b []byte) *RejectError {
	if _, rej := checkText(b); rej != nil {
		return rej
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil {
		return jsonReject(err, "object")
	}
	if top == nil {
		return reject(ClassMalformed, "expected a JSON object, got null")
	}
	// encoding/json took what the scan did not: refuse it all the same, strict wins.
	return reject(ClassMalformed, "malformed JSON")
}

// scanner is the state of scanObject. Its methods return false at the first problem, with
// rej set for a problem of text (UTF-8, surrogates, depth) and nil for one of syntax.
type scanner struct {
	b     []byte
	i     int
	depth int
	rej   *RejectError
}

func (s *scanner) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) next(c byte) bool {
	s.space()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

func (s *scanner) peek() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

// enter counts one level of nesting at an opening bracket.
func (s *scanner) enter() bool {
	s.depth++
	if s.depth > maxDepth {
		s.rej = reject(ClassMalformed, "JSON nested deeper than %d levels at byte %d", maxDepth, s.i)
		return false
	}
	s.i++
	return true
}

// top scans the top-level object and records its members in obj.
func (s *scanner) top(obj *object) bool {
	if !s.enter() {
		return false
	}
	if s.next('}') {
		return true
	}
	for {
		s.space()
		if s.peek() != '"' {
			return false
		}
		name := span{start: s.i, str: true}
		var ok bool
		if name.escaped, ok = s.str(); !ok {
			return false
		}
		name.end = s.i
		if !s.next(':') {
			return false
		}
		s.space()
		v := span{start: s.i, str: s.peek() == '"'}
		if v.str {
			v.escaped, ok = s.str()
		} else {
			ok = s.value()
		}
		if !ok {
			return false
		}
		v.end = s.i
		obj.add(s.b, name, v)
		if s.next(',') {
			continue
		}
		return s.next('}')
	}
}

// add records one top-level member: name spans its quoted name, v its value.
func (obj *object) add(b []byte, name, v span) {
	text := b[name.start+1 : name.end-1]
	if name.escaped {
		text = []byte(spanText(b, name))
	}
	for a, known := range attrNames {
		if string(text) == known {
			if obj.present(a) {
				obj.duplicate = true
			}
			obj.attrs[a] = v
			obj.has |= 1 << a
			return
		}
	}
	if obj.ext == nil {
		obj.ext = make([]extension, 0, 12) // room for a bare payload's members
	}
	obj.ext = append(obj.ext, extension{name: text, value: v})
}

func (s *scanner) value() bool {
	switch c := s.peek(); {
	case c == '{':
		return s.object()
	case c == '[':
		return s.array()
	case c == '"':
		_, ok := s.str()
		return ok
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	case c == '-' || c >= '0' && c <= '9':
		return s.number()
	}
	return false
}

func (s *scanner) object() bool {
	if !s.enter() {
		return false
	}
	if s.next('}') {
		s.depth--
		return true
	}
	for {
		s.space()
		if s.peek() != '"' {
			return false
		}
		if _, ok := s.str(); !ok || !s.next(':') {
			return false
		}
		s.space()
		if !s.value() {
			return false
		}
		if s.next(',') {
			continue
		}
		if !s.next('}') {
			return false
		}
		s.depth--
		return true
	}
}

func (s *scanner) array() bool {
	if !s.enter() {
		return false
	}
	if s.next(']') {
		s.depth--
		return true
	}
	for {
		s.space()
		if !s.value() {
			return false
		}
		if s.next(',') {
			continue
		}
		if !s.next(']') {
			return false
		}
		s.depth--
		return true
	}
}

// plain marks the bytes a string may hold as they are: printable ASCII but quote and
// backslash.
var plain = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// str scans a string at s.i; escaped reports backslash escapes in it.
func (s *scanner) str() (escaped, ok bool) {
	b := s.b
	i := s.i + 1
	for {
		for i < len(b) && plain[b[i]] {
			i++
		}
		if i >= len(b) {
			return escaped, false
		}
		switch c := b[i]; {
		case c == '"':
			s.i = i + 1
			return escaped, true
		case c == '\\':
			escaped = true
			if i+1 >= len(b) {
				return escaped, false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if _, valid := hex4(b, i+2); !valid {
					return escaped, false
				}
				n, ok := surrogateEscape(b, i)
				if !ok {
					s.rej = reject(ClassMalformed, "lone UTF-16 surrogate escape at byte %d", i)
					return escaped, false
				}
				i += n
			default:
				return escaped, false
			}
		case c < 0x20:
			return escaped, false
		default:
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size == 1 {
				s.rej = reject(ClassMalformed, "invalid UTF-8 at byte %d", i)
				return escaped, false
			}
			i += size
		}
	}
}

func (s *scanner) literal(word string) bool {
	if !bytes.HasPrefix(s.b[s.i:], []byte(word)) {
		return false
	}
	s.i += len(word)
	return true
}

func (s *scanner) number() bool {
	b, i := s.b, s.i
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i++; i < len(b) && isDigit(b[i]); i++ {
		}
	default:
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || !isDigit(b[i]) {
			return false
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !isDigit(b[i]) {
			return false
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	s.i = i
	return true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
