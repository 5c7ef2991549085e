package lang

import (
	"errors"
	"fmt"
	"strings"

	"github.com/expr-lang/expr/file"
)

// What a run-time error may say. An error of a rule on an event is shown to rule authors (a
// dry run's steps, a backtest's last_error, the rule's stats) and logged, and the text of an
// error raised inside expr may carry the value it failed on — `int(hotline.content)` fails
// with the ticket's text in its message. So an error says its kind, the field and the
// position in the expression, never a value: messages written here are value-free by
// construction (publicError), and expr's own are reduced to their kind.

// publicError is an error whose message holds no value of the event: only types, counts and
// limits.
type publicError struct{ msg string }

func (e *publicError) Error() string { return e.msg }

// PublicErrorf makes a publicError. Its arguments must be types, counts or limits.
func PublicErrorf(format string, args ...any) error {
	return &publicError{msg: fmt.Sprintf(format, args...)}
}

// ErrMemoryBudget is the sandbox's memory budget (MemoryBudget) exceeded by one run.
var ErrMemoryBudget = PublicErrorf("memory budget exceeded: the expression built more than %d elements", MemoryBudget)

// exprKinds reduce expr's run-time messages to their kind, first match wins.
var exprKinds = []struct{ has, kind string }{
	{"divide by zero", "integer division by zero"},
	{"out of range", "index out of range"},
	{"invalid syntax", "text is not a number"},
	{"strconv.", "text is not a number"},
	{"invalid operation", "invalid operation for the operands' types"},
	{"cannot fetch", "no such field or element"},
	{"interface conversion", "a value of an unexpected type"},
	{"cannot convert", "a value of an unexpected type"},
	{"nil pointer", "a value is missing (nil)"},
}

// PublicMessage is err as an author may see it: its kind and position, no value.
func PublicMessage(err error) string {
	if err == nil {
		return ""
	}
	var ee *EvalError
	if errors.As(err, &ee) {
		return ee.Error()
	}
	return KindOf(err)
}

// KindOf names a run-time error of an expression without its values.
func KindOf(err error) string {
	var fe *file.Error
	hasPos := errors.As(err, &fe)
	var pe *publicError
	msg := "run-time error"
	switch {
	case isMemoryBudget(err):
		msg = ErrMemoryBudget.Error()
	case errors.As(err, &pe):
		msg = pe.msg
	case hasPos:
		for _, k := range exprKinds {
			if strings.Contains(fe.Message, k.has) {
				msg = k.kind
				break
			}
		}
	}
	if hasPos && fe.Line > 0 {
		msg += fmt.Sprintf(" (%d:%d)", fe.Line, fe.Column+1)
	}
	return msg
}

// isMemoryBudget reports expr's VM stopping a run at its memory budget: expr raises it as
// a bare message, so it is recognised by that message.
func isMemoryBudget(err error) bool {
	if errors.Is(err, ErrMemoryBudget) {
		return true
	}
	var fe *file.Error
	return errors.As(err, &fe) && fe.Message == "memory budget exceeded"
}

// OverBudget reports an error that is the sandbox stopping a rule for what it costs (loop
// steps, memory, string length) rather than for odd data: such a rule is quarantined at once.
func OverBudget(err error) bool {
	return errors.Is(err, ErrStepBudget) || errors.Is(err, ErrStringBudget) || isMemoryBudget(err)
}
