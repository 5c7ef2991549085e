package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"go.uber.org/zap"
)

// Error codes of the HTTP API (docs/api.md lists them). Every error body is
// {"code": "...", "error": "..."}.
const (
	CodeInvalidRequest    = "invalid_request"
	CodeNotFound          = "not_found"
	CodeForbidden         = "forbidden"
	CodeIllegalTransition = "illegal_transition"
	CodeInvalidCommand    = "invalid_command"
	CodeTimeout           = "timeout"
	CodeUnavailable       = "unavailable"
	CodeInternal          = "internal"
)

func statusForCode(code string) int {
	switch code {
	case CodeNotFound:
		return http.StatusNotFound
	case CodeForbidden:
		return http.StatusForbidden
	case CodeIllegalTransition:
		return http.StatusConflict
	case CodeInvalidCommand:
		return http.StatusUnprocessableEntity
	default:
		return http.StatusInternalServerError
	}
}

func (s *Server) internalError(w http.ResponseWriter, what string, err error) {
	s.log.Error(what, zap.Error(err))
	writeError(w, http.StatusInternalServerError, CodeInternal, what+" failed")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, ErrorAnswer{Code: code, Error: msg})
}

func intParam(s string, def, lo, hi int) (int, error) {
	if strings.TrimSpace(s) == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	if n < lo || n > hi {
		return 0, fmt.Errorf("%d is outside %d..%d", n, lo, hi)
	}
	return n, nil
}

// decodeBody reads a JSON body of at most maxCommandBody bytes into v (decodeJSON).
func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	return decodeJSON(w, r, maxCommandBody, v)
}

// decodeJSON reads a JSON body of at most limit bytes into v, refusing unknown fields; when it
// cannot, it has answered 400 invalid_request.
func decodeJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, CodeInvalidRequest, "body: "+err.Error())
		return false
	}
	return true
}
