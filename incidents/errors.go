package incidents

import (
	"errors"
	"fmt"

	"github.com/urbanbrain/urbanbrain/event"
)

// Stable error codes carried by event.CommandResult.Code (the catalogue in docs/api.md).
const (
	CodeIllegalTransition = "illegal_transition"
	CodeNotFound          = "not_found"
	CodeForbidden         = "forbidden"
	CodeInvalidCommand    = "invalid_command"
)

// Domain errors of a command. They are wrapped with detail; test them with errors.Is.
var (
	ErrNotFound       = errors.New("incident not found")
	ErrForbidden      = errors.New("forbidden")
	ErrInvalidCommand = errors.New("invalid command")
)

// ErrIllegalTransition is a command the state machine does not allow from the incident's
// current state.
type ErrIllegalTransition struct {
	From   event.Status
	Action string
}

func (e ErrIllegalTransition) Error() string {
	return fmt.Sprintf("cannot %q an incident that is %q", e.Action, e.From)
}

// Code maps a command error to its stable code, or "" when err is not a domain error (a
// failure of the service itself, such as an id collision, which applied nothing).
func Code(err error) string {
	var illegal ErrIllegalTransition
	switch {
	case err == nil:
		return ""
	case errors.As(err, &illegal):
		return CodeIllegalTransition
	case errors.Is(err, ErrNotFound):
		return CodeNotFound
	case errors.Is(err, ErrForbidden):
		return CodeForbidden
	case errors.Is(err, ErrInvalidCommand):
		return CodeInvalidCommand
	}
	return ""
}

// ErrSelfVerification refuses a resolver verifying their own work: 核查 needs a second person.
// It is a forbidden command (Code "forbidden").
type ErrSelfVerification struct{ Actor string }

func (e ErrSelfVerification) Error() string {
	return fmt.Sprintf("forbidden: %q resolved this incident and may not verify it; 核查 needs someone else", e.Actor)
}

func (e ErrSelfVerification) Unwrap() error { return ErrForbidden }
