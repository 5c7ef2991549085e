package lang

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"

	"github.com/urbanbrain/urbanbrain/event"
)

// Compiled holds a rule's programs for each event type it listens to: the same text compiles
// to different programs against different environments, and a field may exist in only one.
type Compiled struct {
	ByType map[string]*Programs
	Having *vm.Program // window rules: the condition on the aggregate
	// Filters are the when's top-level equality conjuncts on indexed fields (sensor.kind ==
	// "gas"): the index files the rule under one of them, and for a stateful rule an event
	// that fails one does not concern the rule at all.
	Filters []Filter
	// Bounds are the when's top-level comparisons of a number with a constant
	// (sensor.metrics.x > 50): the index files stateless rules by one of them.
	Bounds []Bound
	// Fingerprint names the shape of the rule's state: a new version with the same
	// fingerprint keeps the state of the old one.
	Fingerprint string
}

type Programs struct {
	When           *vm.Program
	GroupBy        *vm.Program // stateful rules: the group key
	Of             *vm.Program // window rules with `of`: the number aggregated
	Category       value
	Severity       value
	Title          value
	CorrelationKey value
	Agency         value
}

// value is a compiled raise field: either one expression (whole) or a template of literal
// text and placeholder programs. A constant is a template with a single literal part.
type value struct {
	whole *vm.Program
	parts []part
}

type part struct {
	text string
	prog *vm.Program
	// get, when set, is the event's string field the placeholder names ({{sensor.device_id}}):
	// read from the event, which the environment was built from, without running prog.
	get Field
}

// constant returns the field's text if it has no expression in it.
func (v value) constant() (string, bool) {
	if v.whole != nil {
		return "", false
	}
	var b strings.Builder
	for _, p := range v.parts {
		if p.prog != nil {
			return "", false
		}
		b.WriteString(p.text)
	}
	return b.String(), true
}

// Eval renders the field for ev, whose environment env is, using s's VM and buffer.
func (v value) Eval(s *Scratch, env any, ev *event.Event) (string, error) {
	if v.whole != nil {
		out, err := s.VM.Run(v.whole, env)
		if err != nil {
			return "", err
		}
		str, ok := out.(string)
		if !ok {
			return "", PublicErrorf("expression gave a %T, want a string", out)
		}
		return str, nil
	}
	switch {
	case len(v.parts) == 0:
		return "", nil
	case len(v.parts) == 1 && v.parts[0].prog == nil:
		return v.parts[0].text, nil
	case len(v.parts) == 1 && v.parts[0].get != fieldNone:
		return v.parts[0].get.Get(ev), nil
	}
	b := s.Buf[:0]
	for _, p := range v.parts {
		switch {
		case p.prog == nil:
			b = append(b, p.text...)
		case p.get != fieldNone:
			b = append(b, p.get.Get(ev)...)
		default:
			out, err := s.VM.Run(p.prog, env)
			if err != nil {
				s.Buf = b
				return "", err
			}
			b = appendValue(b, out)
		}
	}
	s.Buf = b
	return string(b), nil
}

// appendValue renders a placeholder's value the way a person reads it: 85 not 8.5e+01, times
// in Beijing time, nothing for nil.
func appendValue(b []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return b
	case string:
		return append(b, x...)
	case float64:
		return strconv.AppendFloat(b, x, 'f', -1, 64)
	case int:
		return strconv.AppendInt(b, int64(x), 10)
	case bool:
		return strconv.AppendBool(b, x)
	case time.Time:
		return x.In(Beijing).AppendFormat(b, time.DateTime)
	case *float64:
		if x != nil {
			return appendValue(b, *x)
		}
		return b
	}
	return fmt.Append(b, v)
}

// locator turns a position inside a field's text into a position in the rule's file.
type locator interface {
	at(field string, line, col int) Position
}

// compileRule compiles every expression of r once per event type it listens to. Errors are
// CompileErrors; an identical error for several types is reported once.
func compileRule(r *Rule, loc locator) (*Compiled, []error) {
	c := &Compiled{ByType: make(map[string]*Programs, len(r.Types))}
	var errs []error
	seen := make(map[string]bool)
	for _, t := range r.Types {
		fc := fieldCompiler{rule: r, loc: loc, env: EnvFor(t)}
		// An empty correlation key compiles to nothing: fire uses "<rule id>:<event id>".
		p := &Programs{
			When:           fc.expression("when", r.When, expr.AsBool()),
			Category:       fc.value("raise.category", r.Raise.Category),
			Severity:       fc.value("raise.severity", r.Raise.Severity),
			Title:          fc.value("raise.title", r.Raise.Title),
			CorrelationKey: fc.value("raise.correlation_key", r.Raise.CorrelationKey),
			Agency:         fc.value("raise.agency", r.Raise.Agency),
		}
		if r.Raise.Title == "" {
			// The name is shown as it is, never read as a template.
			p.Title = value{parts: []part{{text: r.Name}}}
		}
		if r.Kind() != "" {
			group := r.GroupBy
			if group == "" {
				group = defaultGroupBy[t]
			}
			if group == "" {
				fc.errs = append(fc.errs, &CompileError{RuleID: r.ID, Field: "group_by", Pos: loc.at("group_by", 0, 0),
					Msg: fmt.Sprintf("required for a %s rule on %s (events of that type have no device to group by)", r.Kind(), t)})
			} else if r.GroupBy == "" {
				p.GroupBy = fc.expression("group_by", group, expr.AsKind(reflect.String))
			} else {
				p.GroupBy = fc.expression("group_by", r.GroupBy, expr.AsKind(reflect.String))
			}
			if r.Window != nil && r.Window.Of != "" {
				p.Of = fc.expression("window.of", r.Window.Of, expr.AsFloat64())
			}
		}
		fc.forbidWindow(r)
		for _, ce := range fc.errs {
			key := fmt.Sprint(ce.Field, ce.Line, ce.Column, ce.Msg)
			if seen[key] {
				continue
			}
			seen[key] = true
			if len(r.Types) > 1 {
				ce.EventType = t
			}
			errs = append(errs, ce)
		}
		c.ByType[t] = p
	}
	if r.Window != nil {
		fc := fieldCompiler{rule: r, loc: loc, env: HavingEnv{}}
		c.Having = fc.expression("window.having", r.Window.Having, expr.AsBool())
		if r.Window.Of == "" && c.Having != nil {
			for _, name := range []string{"sum", "avg", "min", "max"} {
				if off, ok := FindIdent(r.Window.Having, name); ok {
					ce := &CompileError{RuleID: r.ID, Field: "window.having",
						Msg: name + " needs window.of, the number to aggregate; without it only count is known"}
					ce.Line, ce.Column, ce.Snippet = locate(r.Window.Having, off)
					ce.Pos = loc.at("window.having", ce.Line, ce.Column)
					fc.errs = append(fc.errs, ce)
					break
				}
			}
		}
		for _, ce := range fc.errs {
			errs = append(errs, ce)
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	c.Filters = filtersOf(r.When)
	c.Bounds = boundsOf(r.When)
	c.Fingerprint = Fingerprint(r)
	// Constants are checked once here rather than on every match.
	p := c.ByType[r.Types[0]]
	if s, ok := p.Severity.constant(); ok && !ValidSeverity(s) {
		errs = append(errs, &ValidationError{Pos: loc.at("raise.severity", 0, 0), RuleID: r.ID,
			Field: "raise.severity", Msg: fmt.Sprintf("%q is not one of red, orange, yellow, blue", s)})
	}
	if s, ok := p.Category.constant(); ok {
		if msg := CheckCategory(s); msg != "" {
			errs = append(errs, &ValidationError{Pos: loc.at("raise.category", 0, 0), RuleID: r.ID,
				Field: "raise.category", Msg: msg})
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return c, nil
}

func ValidSeverity(s string) bool {
	switch s {
	case event.SeverityRed, event.SeverityOrange, event.SeverityYellow, event.SeverityBlue:
		return true
	}
	return false
}

// CheckCategory returns why s cannot be a category code, or "". The category list itself
// belongs to the city map; rules only insist on something an index and a URL can carry.
func CheckCategory(s string) string {
	if s == "" {
		return "category is empty"
	}
	if len(s) > 32 {
		return "category is longer than 32 bytes"
	}
	for _, r := range s {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '-' || r == '_' || r == '.') {
			return fmt.Sprintf("category %q may hold only letters, digits, '-', '_' and '.'", s)
		}
	}
	return ""
}

// defaultGroupBy is the group key of a stateful rule that names none: the device for sensors,
// the camera for video. A 12345 ticket has no device, so hotline rules must say.
var defaultGroupBy = map[string]string{
	event.TypeSensorReading:  "sensor.device_id",
	event.TypeVideoDetection: "video.camera_id",
}

// Fingerprint is what a rule's state depends on: its kind, its group key, and for windows
// the kind, the aggregated number, and a tumbling window's size (its periods). The window's
// size (sliding), the condition and the raise fields may change and keep the state.
func Fingerprint(r *Rule) string {
	fp := r.Kind() + "\x00" + r.GroupBy
	if w := r.Window; w != nil {
		fp += "\x00" + w.Kind + "\x00" + w.Of
		if w.Kind == Tumbling {
			fp += "\x00" + w.Size.String()
		}
	}
	return fp
}

// forbidWindow reports `window` read where it has no value: anywhere but the raise fields of
// a window rule.
func (fc *fieldCompiler) forbidWindow(r *Rule) {
	fields := []struct{ name, src string }{{"when", r.When}, {"group_by", r.GroupBy}}
	if r.Window != nil {
		fields = append(fields, struct{ name, src string }{"window.of", r.Window.Of})
	} else {
		fields = append(fields,
			struct{ name, src string }{"raise.category", r.Raise.Category},
			struct{ name, src string }{"raise.severity", r.Raise.Severity},
			struct{ name, src string }{"raise.title", r.Raise.Title},
			struct{ name, src string }{"raise.correlation_key", r.Raise.CorrelationKey},
			struct{ name, src string }{"raise.agency", r.Raise.Agency})
	}
	for _, f := range fields {
		if !strings.Contains(f.src, "window") {
			continue
		}
		off, ok := findIdentInField(f.name, f.src, "window")
		if !ok {
			continue
		}
		ce := &CompileError{RuleID: fc.rule.ID, Field: f.name, Msg: "window is known only in the raise fields of a window rule"}
		ce.Line, ce.Column, ce.Snippet = locate(f.src, off)
		ce.Pos = fc.loc.at(f.name, ce.Line, ce.Column)
		fc.errs = append(fc.errs, ce)
	}
}

// fieldCompiler compiles the fields of one rule for one event type and collects the errors.
type fieldCompiler struct {
	rule *Rule
	loc  locator
	env  any
	errs []*CompileError
}

// compileAt compiles text, which starts at rune offset off of the field's text src, and
// records a positioned error on failure.
func (fc *fieldCompiler) compileAt(field, src, text string, off int, opts ...expr.Option) *vm.Program {
	all := make([]expr.Option, 0, len(BaseOptions)+len(opts)+1)
	all = append(all, expr.Env(fc.env))
	all = append(all, BaseOptions...)
	all = append(all, opts...)
	if at, msg, bad := checkRanges(text); bad {
		ce := &CompileError{RuleID: fc.rule.ID, Field: field, Msg: msg}
		ce.Line, ce.Column, ce.Snippet = locate(src, off+at)
		ce.Pos = fc.loc.at(field, ce.Line, ce.Column)
		fc.errs = append(fc.errs, ce)
		return nil
	}
	prog, err := CompileSafe(text, all)
	if err == nil {
		return prog
	}
	ce := &CompileError{RuleID: fc.rule.ID, Field: field, Msg: err.Error(), Err: err}
	var fe *file.Error
	if errors.As(err, &fe) {
		ce.Msg = fe.Message
		ce.Line, ce.Column, ce.Snippet = locate(src, off+fe.From)
	} else {
		// A whole-expression error ("expected bool, but got float64") points at its start.
		ce.Line, ce.Column, ce.Snippet = locate(src, off)
	}
	ce.Pos = fc.loc.at(field, ce.Line, ce.Column)
	fc.errs = append(fc.errs, ce)
	return nil
}

// CompileSafe is expr.Compile that turns a panic inside expr into an error: a rule author's
// typo must never take the process down.
func CompileSafe(text string, opts []expr.Option) (prog *vm.Program, err error) {
	defer func() {
		if r := recover(); r != nil {
			prog, err = nil, fmt.Errorf("expression compiler failed: %v", r)
		}
	}()
	return expr.Compile(text, opts...)
}

// expression compiles a field that is one expression throughout.
func (fc *fieldCompiler) expression(field, src string, opts ...expr.Option) *vm.Program {
	return fc.compileAt(field, src, src, 0, opts...)
}

// value compiles a raise field: "=expr" or a template.
func (fc *fieldCompiler) value(field, src string) value {
	if src == "" {
		return value{}
	}
	if rest, ok := strings.CutPrefix(src, "="); ok {
		p := fc.compileAt(field, src, rest, 1, expr.AsKind(reflect.String))
		return value{whole: p}
	}
	segs, err := splitTemplate(src)
	if err != nil {
		ce := &CompileError{RuleID: fc.rule.ID, Field: field, Msg: err.msg}
		ce.Line, ce.Column, ce.Snippet = locate(src, err.off)
		ce.Pos = fc.loc.at(field, ce.Line, ce.Column)
		fc.errs = append(fc.errs, ce)
		return value{}
	}
	v := value{parts: make([]part, 0, len(segs))}
	for _, s := range segs {
		if !s.isExpr {
			v.parts = append(v.parts, part{text: s.text})
			continue
		}
		p := part{prog: fc.compileAt(field, src, s.text, s.off)}
		if p.prog != nil {
			p.get = templateField(s.text)
		}
		v.parts = append(v.parts, p)
	}
	return v
}

type segment struct {
	text   string
	isExpr bool
	off    int // rune offset of text within the template
}

type templateError struct {
	msg string
	off int // rune offset within the template
}

// splitTemplate cuts "a {{ x }} b" into literal and expression segments. A "}}" inside a
// string literal of the expression does not close the placeholder.
func splitTemplate(src string) ([]segment, *templateError) {
	var segs []segment
	rest, base := src, 0 // base: byte offset of rest within src
	for {
		i := strings.Index(rest, "{{")
		if i < 0 {
			if rest != "" {
				segs = append(segs, segment{text: rest})
			}
			return segs, nil
		}
		if i > 0 {
			segs = append(segs, segment{text: rest[:i]})
		}
		start := i + 2
		end := closePlaceholder(rest[start:])
		if end < 0 {
			return nil, &templateError{msg: "unclosed {{: missing }}", off: utf8.RuneCountInString(src[:base+i])}
		}
		inner := rest[start : start+end]
		if strings.TrimSpace(inner) == "" {
			return nil, &templateError{msg: "empty {{ }} placeholder", off: utf8.RuneCountInString(src[:base+i])}
		}
		segs = append(segs, segment{text: inner, isExpr: true, off: utf8.RuneCountInString(src[:base+start])})
		base += start + end + 2
		rest = rest[start+end+2:]
	}
}

// closePlaceholder returns the byte index of the "}}" that closes a placeholder whose text
// starts s, or -1.
func closePlaceholder(s string) int {
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote == 0 && c == '}' && i+1 < len(s) && s[i+1] == '}':
			return i
		case quote == 0 && (c == '"' || c == '\'' || c == '`'):
			quote = c
		case quote != 0 && c == '\\' && quote != '`':
			i++ // skip the escaped byte
		case quote != 0 && c == quote:
			quote = 0
		}
	}
	return -1
}

// locate returns the 1-based line and column of rune offset off in src, and a snippet of that
// line with a caret under the column, in expr's style.
func locate(src string, off int) (line, col int, snippet string) {
	line, col = 1, 1
	lineStart := 0
	n := 0
	for i, r := range src {
		if n == off {
			break
		}
		n++
		if r == '\n' {
			line++
			col = 1
			lineStart = i + 1
		} else {
			col++
		}
	}
	text := src[lineStart:]
	if j := strings.IndexByte(text, '\n'); j >= 0 {
		text = text[:j]
	}
	if text == "" {
		return line, col, ""
	}
	return line, col, "\n | " + strings.ReplaceAll(text, "\t", " ") + "\n | " + strings.Repeat(".", col-1) + "^"
}
