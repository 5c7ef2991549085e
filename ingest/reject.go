package ingest

import (
	"fmt"
	"net/http"
)

// Class groups rejection reasons. Its name is both the metrics label and the HTTP error code,
// so a dashboard and an API caller speak of the same thing.
type Class uint8

// Rejection classes. Each has a fixed HTTP status (see Class.HTTPStatus).
const (
	ClassTooLarge  Class = iota + 1 // payload_too_large (413): event, batch or item count over the limit
	ClassMediaType                  // unsupported_media_type (415): HTTP Content-Type or datacontenttype
	ClassMalformed                  // malformed (400): not JSON, invalid UTF-8, nested too deep, not an object
	ClassEnvelope                   // invalid_envelope (422): CloudEvents attributes: id, type, source, specversion
	ClassTime                       // invalid_time (422): not RFC 3339, too far in the future or the past
	ClassPayload                    // invalid_payload (422): a required field missing or out of range
	ClassLocation                   // invalid_location (422): coordinates out of range, outside China, unknown coordsys
	numClasses
)

var classNames = [numClasses]string{
	"",
	"payload_too_large",
	"unsupported_media_type",
	"malformed",
	"invalid_envelope",
	"invalid_time",
	"invalid_payload",
	"invalid_location",
}

func (c Class) String() string {
	if c == 0 || c >= numClasses {
		return "unknown"
	}
	return classNames[c]
}

// HTTPStatus is the status a single rejected event gets over HTTP.
func (c Class) HTTPStatus() int {
	switch c {
	case ClassTooLarge:
		return http.StatusRequestEntityTooLarge
	case ClassMediaType:
		return http.StatusUnsupportedMediaType
	case ClassMalformed:
		return http.StatusBadRequest
	default:
		return http.StatusUnprocessableEntity
	}
}

// RejectError is why ingest refused an input: the reason is what the dead letter and the HTTP
// caller see, precise enough to fix the producer without reading our code.
type RejectError struct {
	Class  Class
	Reason string
}

func (e *RejectError) Error() string { return e.Reason }

func reject(c Class, format string, args ...any) *RejectError {
	return &RejectError{Class: c, Reason: fmt.Sprintf(format, args...)}
}
