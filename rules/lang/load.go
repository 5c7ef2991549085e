package lang

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// MaxFileBytes caps one rule file; a bigger one is refused unread.
const MaxFileBytes = 4 << 20

// MaxIDBytes caps a rule id, which becomes part of every signal id.
const MaxIDBytes = 64

var idPattern = regexp.MustCompile(`^[a-z0-9-]+$`)

// districtPattern is what a rule's district may be: a code, as the city map and tokens carry it.
var districtPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)

// Load reads every *.yaml, *.yml and *.json file under fsys (recursively, skipping names that
// start with a dot, such as editor backups), in lexical order. It returns the rules that are
// valid and, joined, a positioned error for each problem — including ids used twice across
// files, where the first one read wins. Callers decide whether a partial set may run.
func Load(fsys fs.FS) ([]Rule, error) {
	var rules []Rule
	var errs []error
	walkErr := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			errs = append(errs, err)
			return nil
		}
		if p != "." && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() || !isRuleFile(p) {
			return nil
		}
		data, err := readLimited(fsys, p)
		if err != nil {
			errs = append(errs, err)
			return nil
		}
		rs, err := Parse(p, data)
		rules = append(rules, rs...)
		errs = append(errs, err)
		return nil
	})
	errs = append(errs, walkErr)
	rules, dups := uniqueIDs(rules)
	errs = append(errs, dups...)
	return rules, errors.Join(errs...)
}

func isRuleFile(p string) bool {
	switch strings.ToLower(path.Ext(p)) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}

func readLimited(fsys fs.FS, p string) ([]byte, error) {
	f, err := fsys.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	if len(data) > MaxFileBytes {
		return nil, &ValidationError{Pos: Position{File: p}, Msg: fmt.Sprintf("file is larger than %d bytes", MaxFileBytes)}
	}
	return data, nil
}

// uniqueIDs keeps the first rule of each id and reports the others.
func uniqueIDs(rules []Rule) ([]Rule, []error) {
	first := make(map[string]Position, len(rules))
	out := rules[:0:0]
	var errs []error
	for _, r := range rules {
		if at, dup := first[r.ID]; dup {
			errs = append(errs, &ValidationError{Pos: r.Origin, RuleID: r.ID, Field: "id",
				Msg: fmt.Sprintf("duplicate id, first defined at %s", at)})
			continue
		}
		first[r.ID] = r.Origin
		out = append(out, r)
	}
	return out, errs
}

// Parse reads the rules in one file's content: YAML (one rule, a list of rules, or several
// "---" documents of either) or JSON, which is YAML too. name is used in error positions. It
// returns the valid rules and, joined, a positioned error for each problem.
func Parse(name string, data []byte) ([]Rule, error) {
	if len(data) > MaxFileBytes {
		return nil, &ValidationError{Pos: Position{File: name}, Msg: fmt.Sprintf("file is larger than %d bytes", MaxFileBytes)}
	}
	src := &fileSource{name: name, lines: strings.Split(string(data), "\n")}
	var rules []Rule
	var errs []error
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			// yaml's messages carry the line ("yaml: line 3: ...").
			errs = append(errs, &ValidationError{Pos: Position{File: name}, Msg: err.Error()})
			break
		}
		if len(doc.Content) == 0 {
			continue
		}
		root := Deref(doc.Content[0])
		var nodes []*yaml.Node
		switch {
		case root.Kind == yaml.SequenceNode:
			nodes = root.Content
		case root.Kind == yaml.MappingNode:
			nodes = []*yaml.Node{root}
		case root.Kind == yaml.ScalarNode && root.Tag == "!!null":
			continue
		default:
			errs = append(errs, &ValidationError{Pos: src.pos(root), Msg: "want a rule (a mapping) or a list of rules"})
			continue
		}
		for _, n := range nodes {
			r, rerrs := parseRule(src, Deref(n))
			errs = append(errs, rerrs...)
			if len(rerrs) == 0 {
				if len(nodes) == 1 && n == doc.Content[0] {
					r.Source = EncodeSource(&doc) // keeps the comments above the rule
				} else {
					r.Source = EncodeSource(Deref(n))
				}
				rules = append(rules, r)
			}
		}
	}
	rules, dups := uniqueIDs(rules)
	errs = append(errs, dups...)
	return rules, errors.Join(errs...)
}

// Deref follows one YAML alias (*name) to its anchor. Only one level: rules never need more,
// and walking alias chains is how "billion laughs" documents blow up.
func Deref(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		return n.Alias
	}
	return n
}

// ruleKeys, raiseKeys and windowKeys are the fields a rule file may have.
var (
	ruleKeys = []string{"id", "name", "description", "version", "enabled", "district", "types", "when", "raise",
		"group_by", "for", "window", "absent"}
	raiseKeys  = []string{"category", "severity", "title", "correlation_key", "agency", "shadow", "alert"}
	windowKeys = []string{"kind", "size", "of", "having"}
)

// parseRule reads one rule mapping, checks it, and compiles it.
func parseRule(src *fileSource, n *yaml.Node) (Rule, []error) {
	r := Rule{Version: 1, Enabled: true, Origin: src.pos(n)}
	loc := &yamlLocator{src: src, nodes: make(map[string]*yaml.Node)}
	var errs []error
	fail := func(at *yaml.Node, field, format string, args ...any) {
		pos := r.Origin
		if at != nil {
			pos = src.pos(at)
		}
		errs = append(errs, &ValidationError{Pos: pos, Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	if n.Kind != yaml.MappingNode {
		fail(n, "", "want a rule (a mapping of fields), got a %s", kindName(n))
		return r, errs
	}

	var raise, window *yaml.Node
	walkMapping(n, "", ruleKeys, fail, func(key string, v *yaml.Node) {
		loc.nodes[key] = v
		switch key {
		case "id":
			r.ID = scalar(v, key, fail)
		case "name":
			r.Name = scalar(v, key, fail)
		case "description":
			r.Description = scalar(v, key, fail)
		case "when":
			r.When = scalar(v, key, fail)
		case "version":
			r.Version = integer(v, key, fail)
		case "enabled":
			r.Enabled = boolean(v, key, fail)
		case "district":
			r.District = scalar(v, key, fail)
		case "types":
			r.Types = stringList(v, key, fail)
		case "raise":
			raise = v
		case "group_by":
			r.GroupBy = scalar(v, key, fail)
		case "for":
			r.For = duration(v, key, fail)
		case "absent":
			r.Absent = duration(v, key, fail)
		case "window":
			window = v
		}
	})
	if window != nil {
		r.Window = &Window{Kind: Sliding}
		walkMapping(window, "window.", windowKeys, fail, func(key string, v *yaml.Node) {
			field := "window." + key
			loc.nodes[field] = v
			switch key {
			case "kind":
				r.Window.Kind = scalar(v, field, fail)
			case "size":
				r.Window.Size = duration(v, field, fail)
			case "of":
				r.Window.Of = scalar(v, field, fail)
			case "having":
				r.Window.Having = scalar(v, field, fail)
			}
		})
	}
	if raise != nil {
		walkMapping(raise, "raise.", raiseKeys, fail, func(key string, v *yaml.Node) {
			field := "raise." + key
			loc.nodes[field] = v
			switch key {
			case "category":
				r.Raise.Category = scalar(v, field, fail)
			case "severity":
				r.Raise.Severity = scalar(v, field, fail)
			case "title":
				r.Raise.Title = scalar(v, field, fail)
			case "correlation_key":
				r.Raise.CorrelationKey = scalar(v, field, fail)
			case "agency":
				r.Raise.Agency = scalar(v, field, fail)
			case "shadow":
				r.Raise.Shadow = boolean(v, field, fail)
			case "alert":
				r.Raise.Alert = boolean(v, field, fail)
			}
		})
	}

	// Required fields and their shape.
	switch {
	case r.ID == "":
		fail(loc.nodes["id"], "id", "required")
	case len(r.ID) > MaxIDBytes:
		fail(loc.nodes["id"], "id", "longer than %d bytes", MaxIDBytes)
	case !idPattern.MatchString(r.ID):
		fail(loc.nodes["id"], "id", "%q may hold only a-z, 0-9 and '-'", r.ID)
	}
	if strings.TrimSpace(r.Name) == "" {
		fail(loc.nodes["name"], "name", "required")
	}
	if r.District != "" && !districtPattern.MatchString(r.District) {
		fail(loc.nodes["district"], "district", "%q is not a district code (letters, digits, '-' and '_', at most 32)", r.District)
	}
	if r.Version < 1 {
		fail(loc.nodes["version"], "version", "must be 1 or more")
	}
	if len(r.Types) == 0 {
		fail(loc.nodes["types"], "types", "required: one or more of %s", strings.Join(EventTypes, ", "))
	}
	for i, t := range r.Types {
		switch {
		case EnvFor(t) == nil:
			fail(loc.nodes["types"], "types", "%q is not one of %s", t, strings.Join(EventTypes, ", "))
		case slices.Contains(r.Types[:i], t):
			fail(loc.nodes["types"], "types", "%q is listed twice", t)
		}
	}
	if strings.TrimSpace(r.When) == "" {
		fail(loc.nodes["when"], "when", "required")
	}
	if raise == nil {
		fail(nil, "raise", "required")
	} else {
		if r.Raise.Category == "" {
			fail(raise, "raise.category", "required")
		}
		if r.Raise.Severity == "" {
			fail(raise, "raise.severity", "required")
		}
	}
	checkStateful(&r, loc, fail)
	if size := ruleSize(&r); size > MaxRuleBytes {
		fail(nil, "", "rule text is %d bytes, more than the %d allowed", size, MaxRuleBytes)
	}
	for _, e := range errs {
		e.(*ValidationError).RuleID = r.ID
	}
	if len(errs) > 0 {
		return r, errs
	}

	c, cerrs := compileRule(&r, loc)
	if len(cerrs) > 0 {
		return r, cerrs
	}
	r.c = c
	return r, nil
}

type failFunc func(at *yaml.Node, field, format string, args ...any)

// walkMapping calls fn for each known key of a mapping and reports unknown, reserved and
// repeated keys (yaml.v3 accepts a repeated key silently; a rule must not).
func walkMapping(n *yaml.Node, prefix string, known []string, fail failFunc, fn func(key string, v *yaml.Node)) {
	if n.Kind != yaml.MappingNode {
		fail(n, strings.TrimSuffix(prefix, "."), "want a mapping of fields, got a %s", kindName(n))
		return
	}
	seen := make(map[string]bool, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], Deref(n.Content[i+1])
		key := k.Value
		switch {
		case seen[key]:
			fail(k, prefix+key, "field appears twice")
			continue
		case !slices.Contains(known, key):
			fail(k, prefix+key, "unknown field (known: %s)", strings.Join(known, ", "))
			continue
		}
		seen[key] = true
		fn(key, v)
	}
}

// scalar returns a scalar's text as written: `category: 0104` stays "0104" whatever YAML
// would make of it as a number.
func scalar(v *yaml.Node, field string, fail failFunc) string {
	if v.Kind != yaml.ScalarNode {
		fail(v, field, "want text, got a %s", kindName(v))
		return ""
	}
	if v.Tag == "!!null" {
		return ""
	}
	return v.Value
}

func integer(v *yaml.Node, field string, fail failFunc) int {
	if v.Kind == yaml.ScalarNode {
		if n, err := strconv.Atoi(v.Value); err == nil {
			return n
		}
	}
	fail(v, field, "want a whole number, got %q", v.Value)
	return 0
}

func duration(v *yaml.Node, field string, fail failFunc) Duration {
	if v.Kind == yaml.ScalarNode && v.Tag != "!!null" {
		d, err := ParseDuration(v.Value)
		if err == nil {
			return d
		}
		fail(v, field, "%v", err)
		return 0
	}
	fail(v, field, "want a duration such as 5m, got a %s", kindName(v))
	return 0
}

// checkStateful checks the stateful parts' shape; their expressions are compiled with the rest.
func checkStateful(r *Rule, loc *yamlLocator, fail failFunc) {
	var kinds []string
	for _, k := range []string{"for", "window", "absent"} {
		if loc.nodes[k] != nil {
			kinds = append(kinds, k)
		}
	}
	if len(kinds) > 1 {
		fail(loc.nodes[kinds[1]], kinds[1], "a rule has at most one of for, window and absent (this one has %s)", strings.Join(kinds, " and "))
	}
	inRange := func(field string, d Duration) {
		if loc.nodes[field] != nil && d != 0 && (d < MinDuration || d > MaxDuration) {
			fail(loc.nodes[field], field, "%s is outside %s … %s", d, MinDuration, MaxDuration)
		}
	}
	inRange("for", r.For)
	inRange("absent", r.Absent)
	if w := r.Window; w != nil {
		if w.Kind != Sliding && w.Kind != Tumbling {
			fail(loc.nodes["window.kind"], "window.kind", "%q is not sliding or tumbling", w.Kind)
		}
		if w.Size == 0 && loc.nodes["window.size"] == nil {
			fail(loc.nodes["window"], "window.size", "required")
		}
		inRange("window.size", w.Size)
		if strings.TrimSpace(w.Having) == "" {
			fail(loc.nodes["window"], "window.having", "required: a condition on count, sum, avg, min or max, such as count >= 3")
		}
	}
	if r.GroupBy != "" && r.Kind() == "" && len(kinds) == 0 {
		fail(loc.nodes["group_by"], "group_by", "only a rule with for, window or absent has groups")
	}
}

// ruleSize is the length of all of a rule's text, the measure MaxRuleBytes caps.
func ruleSize(r *Rule) int {
	n := len(r.ID) + len(r.Name) + len(r.Description) + len(r.When) + len(r.Raise.Category) +
		len(r.Raise.Severity) + len(r.Raise.Title) + len(r.Raise.CorrelationKey) + len(r.Raise.Agency) + len(r.GroupBy)
	if r.Window != nil {
		n += len(r.Window.Of) + len(r.Window.Having)
	}
	return n
}

// EncodeSource renders a rule's node back to YAML, comments and scalar quoting kept, with
// mappings in block style so that a rule sent as JSON reads (and diffs) like one written
// in YAML.
func EncodeSource(n *yaml.Node) string {
	blockStyle(n, 0)
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(n); err != nil {
		return ""
	}
	_ = enc.Close()
	return b.String()
}

func blockStyle(n *yaml.Node, depth int) {
	if n == nil || depth > 32 {
		return
	}
	switch n.Kind {
	case yaml.MappingNode:
		n.Style &^= yaml.FlowStyle
		for i, c := range n.Content {
			if i%2 == 0 && c.Kind == yaml.ScalarNode {
				c.Style &^= yaml.DoubleQuotedStyle | yaml.SingleQuotedStyle
			}
		}
	case yaml.AliasNode:
		return
	}
	for _, c := range n.Content {
		blockStyle(c, depth+1)
	}
}

func boolean(v *yaml.Node, field string, fail failFunc) bool {
	if v.Kind == yaml.ScalarNode {
		switch v.Value {
		case "true":
			return true
		case "false":
			return false
		}
	}
	fail(v, field, "want true or false, got %q", v.Value)
	return false
}

// stringList accepts a list of text or, for one item, the bare text.
func stringList(v *yaml.Node, field string, fail failFunc) []string {
	if v.Kind == yaml.ScalarNode && v.Tag != "!!null" {
		return []string{v.Value}
	}
	if v.Kind != yaml.SequenceNode {
		fail(v, field, "want a list, got a %s", kindName(v))
		return nil
	}
	out := make([]string, 0, len(v.Content))
	for _, item := range v.Content {
		if s := scalar(Deref(item), field, fail); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "null"
		}
		return "scalar"
	case yaml.AliasNode:
		return "alias"
	}
	return "document"
}

// fileSource is one rule file's name and lines, for positions.
type fileSource struct {
	name  string
	lines []string
}

func (s *fileSource) pos(n *yaml.Node) Position {
	return Position{File: s.name, Line: n.Line, Column: n.Column}
}

// yamlLocator maps a position inside a field's text to the file. YAML may fold lines, strip
// indentation and unescape quotes, so a mapped position is used only after checking that the
// file really holds the field's text there; otherwise it is the start of the value.
type yamlLocator struct {
	src   *fileSource
	nodes map[string]*yaml.Node // field name → value node
}

func (l *yamlLocator) at(field string, line, col int) Position {
	n := l.nodes[field]
	if n == nil {
		return Position{File: l.src.name}
	}
	start := l.src.pos(n)
	if line == 0 {
		return start
	}
	textLines := strings.Split(n.Value, "\n")
	if line > len(textLines) {
		return start
	}
	want := []rune(textLines[line-1])
	if col-1 > len(want) {
		return start
	}
	want = want[:col-1]

	var fileLine, fileCol int // where the field's line starts in the file (1-based)
	switch n.Style {
	case 0, yaml.TaggedStyle:
		fileLine, fileCol = n.Line, n.Column
	case yaml.DoubleQuotedStyle, yaml.SingleQuotedStyle:
		fileLine, fileCol = n.Line, n.Column+1
	case yaml.LiteralStyle, yaml.FoldedStyle:
		fileLine = n.Line + line
		fileCol = l.blockIndent(n.Line) + 1
	default:
		return start
	}
	if line > 1 && n.Style != yaml.LiteralStyle {
		return start
	}
	if fileLine < 1 || fileLine > len(l.src.lines) {
		return start
	}
	have := []rune(l.src.lines[fileLine-1])
	from := fileCol - 1
	if from+len(want) > len(have) || string(have[from:from+len(want)]) != string(want) {
		return start
	}
	return Position{File: l.src.name, Line: fileLine, Column: fileCol + col - 1}
}

// blockIndent is the indentation of the first non-blank line after the block scalar header on
// line header.
func (l *yamlLocator) blockIndent(header int) int {
	for _, s := range l.src.lines[min(header, len(l.src.lines)):] {
		if t := strings.TrimLeft(s, " "); t != "" && t != "\r" {
			return len(s) - len(t)
		}
	}
	return 0
}
