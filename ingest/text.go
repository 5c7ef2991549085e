package ingest

import (
	"encoding/json"
	"errors"
	"unicode/utf8"
)

// checkText refuses what the JSON decoders would accept but quietly alter or choke on:
// invalid UTF-8 and lone UTF-16 surrogate escapes (encoding/json turns both into U+FFFD, so
// a ticket's text would reach the operator corrupted with no trace of why), and nesting deeper
// than maxDepth (the decoders recurse, and a hostile record should not cost a deep stack).
// It is one pass over the bytes and allocates nothing; syntax is left to the JSON parser.
//
// On the way it counts the name/value pairs of the top-level object (the colons at depth 1),
// so that a caller can tell duplicate names from what a map decode returns.
func checkText(b []byte) (members int, rej *RejectError) {
	depth := 0
	inString := false
	for i := 0; i < len(b); {
		c := b[i]
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size == 1 {
				return 0, reject(ClassMalformed, "invalid UTF-8 at byte %d", i)
			}
			i += size
			continue
		}
		if inString {
			switch c {
			case '"':
				inString = false
			case '\\':
				if i+1 < len(b) && b[i+1] == 'u' {
					n, ok := surrogateEscape(b, i)
					if !ok {
						return 0, reject(ClassMalformed, "lone UTF-16 surrogate escape at byte %d", i)
					}
					i += n
					continue
				}
				// Skip the escaped byte (it may be a quote), unless it starts a multi-byte
				// rune: that must still go through the UTF-8 check above.
				if i+1 < len(b) && b[i+1] < utf8.RuneSelf {
					i += 2
					continue
				}
			}
			i++
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			depth++
			if depth > maxDepth {
				return 0, reject(ClassMalformed, "JSON nested deeper than %d levels at byte %d", maxDepth, i)
			}
		case '}', ']':
			depth--
		case ':':
			if depth == 1 {
				members++
			}
		}
		i++
	}
	return members, nil
}

// surrogateEscape looks at the \u escape at b[i] and returns how many bytes to skip: 6 for
// an ordinary escape, 12 for a high surrogate followed by a low one. ok is false for a lone
// surrogate. Malformed hex is skipped over here and reported by the JSON parser.
func surrogateEscape(b []byte, i int) (n int, ok bool) {
	v, valid := hex4(b, i+2)
	if !valid {
		return 2, true
	}
	switch {
	case v >= 0xDC00 && v <= 0xDFFF:
		return 0, false
	case v >= 0xD800 && v <= 0xDBFF:
		if i+7 < len(b) && b[i+6] == '\\' && b[i+7] == 'u' {
			if w, valid := hex4(b, i+8); valid && w >= 0xDC00 && w <= 0xDFFF {
				return 12, true
			}
		}
		return 0, false
	default:
		return 6, true
	}
}

func hex4(b []byte, at int) (rune, bool) {
	if at+4 > len(b) {
		return 0, false
	}
	var v rune
	for _, c := range b[at : at+4] {
		v <<= 4
		switch {
		case c >= '0' && c <= '9':
			v |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			v |= rune(c-'a') + 10
		case c >= 'A' && c <= 'F':
			v |= rune(c-'A') + 10
		default:
			return 0, false
		}
	}
	return v, true
}

// jsonReject turns a decoding error of a whole record or body into a reason; want is the
// JSON kind expected at the top ("object", "array").
func jsonReject(err error, want string) *RejectError {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return reject(ClassMalformed, "malformed JSON at byte %d: %v", syn.Offset, syn)
	case errors.As(err, &typ):
		return reject(ClassMalformed, "expected a JSON %s, got %s", want, typ.Value)
	default:
		return reject(ClassMalformed, "malformed JSON: %v", err)
	}
}

// firstByte returns the first non-whitespace byte of a JSON text, or 0.
func firstByte(b []byte) byte {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		default:
			return c
		}
	}
	return 0
}
