package lang

import (
	"slices"
	"strings"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/parser"

	"github.com/urbanbrain/urbanbrain/event"
)

// This file reads the syntax of expressions without running them: which names an expression
// uses, and which of a condition's top-level conjuncts are plain equalities or comparisons
// with a constant that the index can use.

// FindIdent returns the rune offset of the first use of name as a variable in src.
func FindIdent(src, name string) (int, bool) {
	tree, err := ParseSafe(src)
	if err != nil {
		return 0, false
	}
	v := &identFinder{name: name, from: -1}
	ast.Walk(&tree.Node, v)
	if v.from < 0 {
		return 0, false
	}
	return v.from, true
}

// findIdentInField is findIdent for a field that may be a template or "=expr".
func findIdentInField(field, src, name string) (int, bool) {
	if !strings.HasPrefix(field, "raise.") {
		return FindIdent(src, name)
	}
	if rest, ok := strings.CutPrefix(src, "="); ok {
		off, found := FindIdent(rest, name)
		return off + 1, found
	}
	segs, terr := splitTemplate(src)
	if terr != nil {
		return 0, false
	}
	for _, seg := range segs {
		if !seg.isExpr {
			continue
		}
		if off, ok := FindIdent(seg.text, name); ok {
			return seg.off + off, true
		}
	}
	return 0, false
}

type identFinder struct {
	name string
	from int
}

func (f *identFinder) Visit(n *ast.Node) {
	if id, ok := (*n).(*ast.IdentifierNode); ok && id.Value == f.name {
		if loc := id.Location(); f.from < 0 || loc.From < f.from {
			f.from = loc.From
		}
	}
}

// ParseSafe parses without the checker; a parser panic is an error.
func ParseSafe(src string) (tree *parser.Tree, err error) {
	defer func() {
		if r := recover(); r != nil {
			tree, err = nil, errParserPanic
		}
	}()
	return parser.Parse(src)
}

type parserPanicError struct{}

func (parserPanicError) Error() string { return "expression parser failed" }

var errParserPanic error = parserPanicError{}

// Field is one string field of an event the index and the stateful filters read without
// building the environment. It is a number and a switch, not a func value, so the compiler
// can see that reading it keeps the event on the stack.
type Field uint8

const (
	fieldNone Field = iota
	fieldType
	fieldSource
	fieldDistrict
	fieldStreet
	fieldCommunity
	fieldGrid
	fieldSensorKind
	fieldSensorDevice
	fieldSensorStatus
	fieldHotlineRequestType
	fieldHotlineCategory
	fieldHotlineChannel
	fieldHotlineUrgency
	fieldVideoAlgorithm
	fieldVideoCamera
	fieldID
	fieldDistrictName
	fieldStreetName
	fieldCommunityName
	fieldGridName
	fieldHotlineTicket
)

// indexedFields are the fields whose equality conjuncts the index and the stateful filters
// use: the ones rule authors select events by.
var indexedFields = map[string]Field{
	"type": fieldType, "source": fieldSource,
	"area.district": fieldDistrict, "area.street": fieldStreet, "area.community": fieldCommunity, "area.grid": fieldGrid,
	"sensor.kind": fieldSensorKind, "sensor.device_id": fieldSensorDevice, "sensor.status": fieldSensorStatus,
	"hotline.request_type": fieldHotlineRequestType, "hotline.category_code": fieldHotlineCategory,
	"hotline.channel": fieldHotlineChannel, "hotline.urgency": fieldHotlineUrgency,
	"video.algorithm": fieldVideoAlgorithm, "video.camera_id": fieldVideoCamera,
}

// templateFields are the string fields a raise template reads without running its
// placeholder's program: a placeholder that is just one of these names gives the event's
// value as it is, which is what the program would give.
var templateFields = func() map[string]Field {
	m := map[string]Field{"id": fieldID, "area.district_name": fieldDistrictName, "area.street_name": fieldStreetName,
		"area.community_name": fieldCommunityName, "area.grid_name": fieldGridName, "hotline.ticket_id": fieldHotlineTicket}
	for k, v := range indexedFields {
		m[k] = v
	}
	return m
}()

// templateField returns the field a placeholder's text names, or fieldNone.
func templateField(text string) Field {
	tree, err := ParseSafe(text)
	if err != nil {
		return fieldNone
	}
	path, ok := fieldPath(tree.Node)
	if !ok {
		return fieldNone
	}
	return templateFields[path]
}

func (f Field) Get(ev *event.Event) string {
	switch f {
	case fieldID:
		return ev.ID
	case fieldDistrictName:
		return ev.Area.DistrictName
	case fieldStreetName:
		return ev.Area.StreetName
	case fieldCommunityName:
		return ev.Area.CommunityName
	case fieldGridName:
		return ev.Area.GridName
	case fieldType:
		return ev.Type
	case fieldSource:
		return ev.Source
	case fieldDistrict:
		return ev.Area.District
	case fieldStreet:
		return ev.Area.Street
	case fieldCommunity:
		return ev.Area.Community
	case fieldGrid:
		return ev.Area.Grid
	}
	if s := ev.Sensor; s != nil {
		switch f {
		case fieldSensorKind:
			return s.Kind
		case fieldSensorDevice:
			return s.DeviceID
		case fieldSensorStatus:
			return s.Status
		}
	}
	if h := ev.Hotline; h != nil {
		switch f {
		case fieldHotlineRequestType:
			return h.RequestType
		case fieldHotlineCategory:
			return h.CategoryCode
		case fieldHotlineChannel:
			return h.Channel
		case fieldHotlineUrgency:
			return h.Urgency
		case fieldHotlineTicket:
			return h.TicketID
		}
	}
	if v := ev.Video; v != nil {
		switch f {
		case fieldVideoAlgorithm:
			return v.Algorithm
		case fieldVideoCamera:
			return v.CameraID
		}
	}
	return ""
}

// Filter is one equality conjunct: the field must be one of values.
type Filter struct {
	Field  string
	Get    Field
	Values []string
}

func (f Filter) Match(ev *event.Event) bool {
	v := f.Get.Get(ev)
	for _, want := range f.Values {
		if v == want {
			return true
		}
	}
	return false
}

// filtersOf returns the top-level conjuncts of when that are `field == "text"`,
// `"text" == field` or `field in ["a", "b"]` on an indexed field. Anything it does not
// understand is simply not a filter: the full condition is always evaluated as well.
func filtersOf(when string) []Filter {
	tree, err := ParseSafe(when)
	if err != nil {
		return nil
	}
	var out []Filter
	for _, c := range conjuncts(tree.Node, nil) {
		if f, ok := equality(c); ok {
			out = append(out, f)
		}
	}
	return out
}

// conjuncts flattens a && b && c.
func conjuncts(n ast.Node, out []ast.Node) []ast.Node {
	if b, ok := n.(*ast.BinaryNode); ok && (b.Operator == "&&" || b.Operator == "and") {
		out = conjuncts(b.Left, out)
		return conjuncts(b.Right, out)
	}
	return append(out, n)
}

func equality(n ast.Node) (Filter, bool) {
	b, ok := n.(*ast.BinaryNode)
	if !ok {
		return Filter{}, false
	}
	switch b.Operator {
	case "==":
		if path, ok := fieldPath(b.Left); ok {
			if s, ok := b.Right.(*ast.StringNode); ok {
				return makeFilter(path, []string{s.Value})
			}
		}
		if path, ok := fieldPath(b.Right); ok {
			if s, ok := b.Left.(*ast.StringNode); ok {
				return makeFilter(path, []string{s.Value})
			}
		}
	case "in":
		path, ok := fieldPath(b.Left)
		arr, ok2 := b.Right.(*ast.ArrayNode)
		if !ok || !ok2 || len(arr.Nodes) == 0 {
			return Filter{}, false
		}
		values := make([]string, 0, len(arr.Nodes))
		for _, item := range arr.Nodes {
			s, ok := item.(*ast.StringNode)
			if !ok {
				return Filter{}, false
			}
			values = append(values, s.Value)
		}
		return makeFilter(path, values)
	}
	return Filter{}, false
}

func makeFilter(path string, values []string) (Filter, bool) {
	get, ok := indexedFields[path]
	if !ok {
		return Filter{}, false
	}
	slices.Sort(values)
	return Filter{Field: path, Get: get, Values: slices.Compact(values)}, true
}

// fieldPath reads `a.b` or `a["b"]` (no deeper) as "a.b", or a bare `type`/`source`.
func fieldPath(n ast.Node) (string, bool) {
	switch x := n.(type) {
	case *ast.IdentifierNode:
		return x.Value, true
	case *ast.MemberNode:
		if x.Optional || x.Method {
			return "", false
		}
		id, ok := x.Node.(*ast.IdentifierNode)
		prop, ok2 := x.Property.(*ast.StringNode)
		if !ok || !ok2 {
			return "", false
		}
		return id.Value + "." + prop.Value, true
	}
	return "", false
}

// Number is one numeric field of an event the index reads without building the environment:
// a sensor metric (name set) or the video detection's confidence. A metric the reading does
// not carry reads as 0, as it does in an expression.
type Number struct {
	Field  string // "sensor.metrics.level_cm", "video.confidence"
	metric string // the metric's name; "" for video.confidence
}

func (n Number) Get(ev *event.Event) float64 {
	if n.metric != "" {
		if s := ev.Sensor; s != nil {
			return s.Metrics[n.metric]
		}
		return 0
	}
	if v := ev.Video; v != nil {
		return v.Confidence
	}
	return 0
}

// Bound is one conjunct comparing a number with a constant: `sensor.metrics.x > 50` is a
// lower bound (the number must be above n), `video.confidence <= 0.5` an upper one.
type Bound struct {
	Num    Number
	N      float64
	Lower  bool // the number must be above n (>, >=); else below it (<, <=)
	Strict bool // > or <
}

// Admits reports whether v satisfies the bound, with Go's (and expr's) float comparisons: a
// NaN satisfies none.
func (b Bound) Admits(v float64) bool {
	switch {
	case b.Lower && b.Strict:
		return v > b.N
	case b.Lower:
		return v >= b.N
	case b.Strict:
		return v < b.N
	}
	return v <= b.N
}

// boundsOf returns the top-level conjuncts of when that compare a float field the index can
// read — `sensor.metrics.x`, `sensor.metrics["x"]`, `video.confidence` — with a number
// constant, either way round: `sensor.metrics.x > 50`, `0.8 <= video.confidence`. Both
// sides are float64 or an integer constant, which expr compares as float64, exactly as
// admits does.
func boundsOf(when string) []Bound {
	tree, err := ParseSafe(when)
	if err != nil {
		return nil
	}
	var out []Bound
	for _, c := range conjuncts(tree.Node, nil) {
		if b, ok := comparison(c); ok {
			out = append(out, b)
		}
	}
	return out
}

func comparison(n ast.Node) (Bound, bool) {
	b, ok := n.(*ast.BinaryNode)
	if !ok {
		return Bound{}, false
	}
	var lower, strict bool
	switch b.Operator {
	case ">":
		lower, strict = true, true
	case ">=":
		lower = true
	case "<":
		strict = true
	case "<=":
	default:
		return Bound{}, false
	}
	if num, ok := numberPath(b.Left); ok {
		if c, ok := constant(b.Right); ok {
			return Bound{Num: num, N: c, Lower: lower, Strict: strict}, true
		}
	}
	if num, ok := numberPath(b.Right); ok {
		if c, ok := constant(b.Left); ok {
			// 50 < x is x > 50.
			return Bound{Num: num, N: c, Lower: !lower, Strict: strict}, true
		}
	}
	return Bound{}, false
}

// numberPath reads sensor.metrics.x, sensor.metrics["x"] and video.confidence.
func numberPath(n ast.Node) (Number, bool) {
	if path, ok := fieldPath(n); ok && path == "video.confidence" {
		return Number{Field: path}, true
	}
	m, ok := n.(*ast.MemberNode)
	if !ok || m.Optional || m.Method {
		return Number{}, false
	}
	name, ok := m.Property.(*ast.StringNode)
	if !ok {
		return Number{}, false
	}
	if path, ok := fieldPath(m.Node); !ok || path != "sensor.metrics" {
		return Number{}, false
	}
	return Number{Field: "sensor.metrics." + name.Value, metric: name.Value}, true
}

// constant reads an integer or float literal, negated or not.
func constant(n ast.Node) (float64, bool) {
	switch x := n.(type) {
	case *ast.IntegerNode:
		return float64(x.Value), true
	case *ast.FloatNode:
		return x.Value, true
	case *ast.UnaryNode:
		if x.Operator == "-" {
			if v, ok := constant(x.Node); ok {
				return -v, true
			}
		}
	}
	return 0, false
}
