package rules

import (
	"slices"
	"strings"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/parser"

	"github.com/urbanbrain/urbanbrain/event"
)

// This file reads the syntax of expressions without running them: which names an expression
// uses, and which of a condition's top-level conjuncts are plain equalities the index can use.

// findIdent returns the rune offset of the first use of name as a variable in src.
func findIdent(src, name string) (int, bool) {
	tree, err := parseSafe(src)
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
		return findIdent(src, name)
	}
	if rest, ok := strings.CutPrefix(src, "="); ok {
		off, found := findIdent(rest, name)
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
		if off, ok := findIdent(seg.text, name); ok {
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

// parseSafe parses without the checker; a parser panic is an error.
func parseSafe(src string) (tree *parser.Tree, err error) {
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

// field is one string field of an event the index and the stateful filters read without
// building the environment. It is a number and a switch, not a func value, so the compiler
// can see that reading it keeps the event on the stack.
type field uint8

const (
	fieldNone field = iota
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
)

// indexedFields are the fields whose equality conjuncts the index and the stateful filters
// use: the ones rule authors select events by.
var indexedFields = map[string]field{
	"type": fieldType, "source": fieldSource,
	"area.district": fieldDistrict, "area.street": fieldStreet, "area.community": fieldCommunity, "area.grid": fieldGrid,
	"sensor.kind": fieldSensorKind, "sensor.device_id": fieldSensorDevice, "sensor.status": fieldSensorStatus,
	"hotline.request_type": fieldHotlineRequestType, "hotline.category_code": fieldHotlineCategory,
	"hotline.channel": fieldHotlineChannel, "hotline.urgency": fieldHotlineUrgency,
	"video.algorithm": fieldVideoAlgorithm, "video.camera_id": fieldVideoCamera,
}

func (f field) get(ev *event.Event) string {
	switch f {
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

// filter is one equality conjunct: the field must be one of values.
type filter struct {
	field  string
	get    field
	values []string
}

func (f filter) match(ev *event.Event) bool {
	v := f.get.get(ev)
	for _, want := range f.values {
		if v == want {
			return true
		}
	}
	return false
}

// filtersOf returns the top-level conjuncts of when that are `field == "text"`,
// `"text" == field` or `field in ["a", "b"]` on an indexed field. Anything it does not
// understand is simply not a filter: the full condition is always evaluated as well.
func filtersOf(when string) []filter {
	tree, err := parseSafe(when)
	if err != nil {
		return nil
	}
	var out []filter
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

func equality(n ast.Node) (filter, bool) {
	b, ok := n.(*ast.BinaryNode)
	if !ok {
		return filter{}, false
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
			return filter{}, false
		}
		values := make([]string, 0, len(arr.Nodes))
		for _, item := range arr.Nodes {
			s, ok := item.(*ast.StringNode)
			if !ok {
				return filter{}, false
			}
			values = append(values, s.Value)
		}
		return makeFilter(path, values)
	}
	return filter{}, false
}

func makeFilter(path string, values []string) (filter, bool) {
	get, ok := indexedFields[path]
	if !ok {
		return filter{}, false
	}
	slices.Sort(values)
	return filter{field: path, get: get, values: slices.Compact(values)}, true
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
