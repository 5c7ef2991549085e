package lang_test

import (
	"errors"
	"strings"
	"testing"
	"testing/fstest"
	"unicode/utf8"

	"github.com/expr-lang/expr/file"

	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/rules/lang"
)

// flatten lists the leaves of an errors.Join tree.
func flatten(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

// runeCol is the 1-based column, in runes, of marker in line, or 0.
func runeCol(line, marker string) int {
	i := strings.Index(line, marker)
	if i < 0 {
		return 0
	}
	return utf8.RuneCountInString(line[:i]) + 1
}

func TestCompileErrorPosition(t *testing.T) {
	tests := []struct {
		name, file, src string
		field           string
		marker          string // the text the error must point at
		exprLine        int    // line of the marker within the field's text
		fileLine        int    // line of the marker in the file
		fileCol         int    // 0: the marker's column on fileLine; otherwise this column (fallback to the value's start)
		eventType       string
		msg             string
	}{
		{
			name: "misspelt field, plain scalar", file: "a.yaml",
			src: `id: water
name: 水位
types: [city.sensor.reading]
when: sensor.kind == "water_level" && sensor.levle > 80
raise: {category: "0104", severity: orange}
`,
			field: "when", marker: "levle", exprLine: 1, fileLine: 4, msg: "has no field levle",
		},
		{
			name: "literal block, second line", file: "b.yaml",
			src: `id: water
name: 水位
types: [city.sensor.reading]
when: |
  sensor.kind == "water_level" &&
    sensor.metrics["level_cm"] > 80 && sensor.stauts == "alarm"
raise:
  category: "0104"
  severity: orange
`,
			field: "when", marker: "stauts", exprLine: 2, fileLine: 6, msg: "has no field stauts",
		},
		{
			name: "placeholder in a quoted title after Chinese text", file: "c.yaml",
			src: `id: water
name: 水位
types: [city.sensor.reading]
when: sensor.kind == "water_level"
raise:
  category: "0104"
  severity: orange
  title: "{{area.street_name}} 水位 {{sensor.metrics.level_cm + sensor.nmae}}cm"
`,
			field: "raise.title", marker: "nmae", exprLine: 1, fileLine: 8, msg: "has no field nmae",
		},
		{
			name: "= expression in single quotes", file: "d.yaml",
			src: `id: gas
name: 燃气
types: [city.sensor.reading]
when: sensor.kind == "gas"
raise:
  category: "0103"
  severity: '=sensor.metrics["ppm"] > 200 ? "red" : area.stret'
`,
			field: "raise.severity", marker: "stret", exprLine: 1, fileLine: 7, msg: "has no field stret",
		},
		{
			name: "folded block, first line", file: "e.yaml",
			src: `id: gas
name: 燃气
types: [city.sensor.reading]
when: >-
  sensor.knd == "gas" &&
  sensor.metrics["ppm"] > 50
raise: {category: "0103", severity: orange}
`,
			field: "when", marker: "knd", exprLine: 1, fileLine: 5, msg: "has no field knd",
		},
		{
			name: "folded block, second line falls back to the value's start", file: "f.yaml",
			src: `id: gas
name: 燃气
types: [city.sensor.reading]
when: >-
  sensor.kind == "gas" &&
  sensor.metrix["ppm"] > 50
raise: {category: "0103", severity: orange}
`,
			field: "when", marker: "metrix", exprLine: 1, fileLine: 4, fileCol: 7, msg: "has no field metrix",
		},
		{
			name: "field missing from one of two event types", file: "g.yaml",
			src: `id: both
name: 两类
types: [city.sensor.reading, city.video.detection]
when: sensor.kind == "gas"
raise: {category: "0103", severity: orange}
`,
			field: "when", marker: "sensor", exprLine: 1, fileLine: 4, eventType: event.TypeVideoDetection,
			msg: "unknown name sensor",
		},
		{
			name: "when is not boolean", file: "h.yaml",
			src: `id: gas
name: 燃气
types: [city.sensor.reading]
when: sensor.metrics["ppm"]
raise: {category: "0103", severity: orange}
`,
			field: "when", marker: "sensor", exprLine: 1, fileLine: 4, fileCol: 7, msg: "expected bool",
		},
		{
			name: "unclosed placeholder", file: "i.yaml",
			src: `id: gas
name: 燃气
types: [city.sensor.reading]
when: sensor.kind == "gas"
raise:
  category: "0103"
  severity: orange
  title: 燃气 {{sensor.device_id
`,
			field: "raise.title", marker: "{{", exprLine: 1, fileLine: 8, msg: "unclosed {{",
		},
		{
			name: "json on one line", file: "j.json",
			src:   `{"id": "j", "name": "n", "types": ["city.video.detection"], "when": "video.confidance > 0.5", "raise": {"category": "0301", "severity": "blue"}}`,
			field: "when", marker: "confidance", exprLine: 1, fileLine: 1, msg: "has no field confidance",
		},
		{
			name: "correlation key placeholder", file: "k.yaml",
			src: `- id: cam
  name: 摄像头
  types: [city.video.detection]
  when: video.confidence > 0.5
  raise:
    category: "0301"
    severity: blue
    correlation_key: "video:{{video.camera}}"
`,
			field: "raise.correlation_key", marker: "camera", exprLine: 1, fileLine: 8, msg: "has no field camera",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs, err := lang.Parse(tt.file, []byte(tt.src))
			if len(rs) != 0 {
				t.Errorf("got %d rules from a broken file", len(rs))
			}
			errs := flatten(err)
			if len(errs) != 1 {
				t.Fatalf("want exactly one error, got %d: %v", len(errs), err)
			}
			var ce *lang.CompileError
			if !errors.As(errs[0], &ce) {
				t.Fatalf("error %T is not a CompileError: %v", errs[0], errs[0])
			}
			if ce.Field != tt.field || ce.EventType != tt.eventType || !strings.Contains(ce.Msg, tt.msg) {
				t.Errorf("field %q type %q msg %q, want %q %q containing %q", ce.Field, ce.EventType, ce.Msg, tt.field, tt.eventType, tt.msg)
			}
			if ce.RuleID == "" {
				t.Error("no rule id")
			}

			// Position within the field's text: the snippet shows the field's line, so the
			// marker's place in it is where the column must point.
			snippet := strings.Split(ce.Snippet, "\n")
			squash := func(s string) string { return strings.Join(strings.Fields(s), " ") }
			if len(snippet) != 3 || !strings.Contains(squash(tt.src), squash(snippet[1][3:])) {
				t.Fatalf("snippet %q does not quote a line of the file", ce.Snippet)
			}
			wantCol := runeCol(snippet[1][3:], tt.marker)
			if ce.Line != tt.exprLine || ce.Column != wantCol || wantCol == 0 {
				t.Errorf("position in field %d:%d, want %d:%d\n%s", ce.Line, ce.Column, tt.exprLine, wantCol, ce.Error())
			}
			if len(snippet[2])-3 != ce.Column {
				t.Errorf("snippet caret does not sit at column %d: %q", ce.Column, ce.Snippet)
			}

			// Position in the file.
			lines := strings.Split(tt.src, "\n")
			wantFileCol := tt.fileCol
			if wantFileCol == 0 {
				wantFileCol = runeCol(lines[tt.fileLine-1], tt.marker)
			}
			if ce.Pos.File != tt.file || ce.Pos.Line != tt.fileLine || ce.Pos.Column != wantFileCol {
				t.Errorf("file position %v, want %s:%d:%d\n%s", ce.Pos, tt.file, tt.fileLine, wantFileCol, ce.Error())
			}

			// expr's own error is kept where expr gave one with a position.
			if tt.msg != "unclosed {{" && tt.msg != "expected bool" {
				var fe *file.Error
				if !errors.As(err, &fe) {
					t.Errorf("expr's *file.Error is not reachable with errors.As")
				}
			}
		})
	}
}

// TestPersonalDataUnreachable: a rule cannot read the 12345 caller's name or phone, by any
// spelling, in any field.
func TestPersonalDataUnreachable(t *testing.T) {
	for _, ref := range []string{
		`hotline.caller_phone != ""`,
		`hotline.caller_name != ""`,
		`hotline.CallerPhone != ""`,
		`hotline["caller_phone"] != ""`,
		`caller_phone != ""`,
	} {
		src := "id: pii\nname: pii\ntypes: [city.hotline.ticket]\nwhen: '" + ref + "'\nraise: {category: \"0602\", severity: blue}\n"
		_, err := lang.Parse("pii.yaml", []byte(src))
		var ce *lang.CompileError
		if !errors.As(err, &ce) || ce.Field != "when" {
			t.Errorf("%s: want a compile error in when, got %v", ref, err)
		}
	}
	// Nor through a template.
	src := "id: pii\nname: pii\ntypes: [city.hotline.ticket]\nwhen: 'true'\nraise: {category: \"0602\", severity: blue, title: '来电 {{hotline.caller_phone}}'}\n"
	if _, err := lang.Parse("pii.yaml", []byte(src)); err == nil {
		t.Error("a title template read the caller's phone")
	}
}

func TestValidation(t *testing.T) {
	const ok = "types: [city.sensor.reading]\nwhen: sensor.kind == \"gas\"\nraise: {category: \"0103\", severity: orange}\n"
	tests := []struct {
		name, src string
		field     string
		msg       string
		line      int
	}{
		{"missing id", "name: n\n" + ok, "id", "required", 1},
		{"bad id", "id: Water_Level\nname: n\n" + ok, "id", "may hold only", 1},
		{"long id", "id: " + strings.Repeat("a", 65) + "\nname: n\n" + ok, "id", "longer than 64", 1},
		{"missing name", "id: a\n" + ok, "name", "required", 1},
		{"version 0", "id: a\nname: n\nversion: 0\n" + ok, "version", "1 or more", 3},
		{"version text", "id: a\nname: n\nversion: two\n" + ok, "version", "whole number", 3},
		{"enabled yes", "id: a\nname: n\nenabled: yes\n" + ok, "enabled", "true or false", 3},
		{"no types", "id: a\nname: n\nwhen: \"true\"\nraise: {category: \"0103\", severity: orange}\n", "types", "required", 1},
		{"unknown type", "id: a\nname: n\ntypes: [city.sensor.reading, city.weather]\nwhen: \"true\"\nraise: {category: \"0103\", severity: orange}\n", "types", `"city.weather" is not one of`, 3},
		{"type twice", "id: a\nname: n\ntypes: [city.sensor.reading, city.sensor.reading]\nwhen: \"true\"\nraise: {category: \"0103\", severity: orange}\n", "types", "twice", 3},
		{"no when", "id: a\nname: n\ntypes: [city.sensor.reading]\nraise: {category: \"0103\", severity: orange}\n", "when", "required", 1},
		{"no raise", "id: a\nname: n\ntypes: [city.sensor.reading]\nwhen: \"true\"\n", "raise", "required", 1},
		{"no category", "id: a\nname: n\ntypes: [city.sensor.reading]\nwhen: \"true\"\nraise: {severity: orange}\n", "raise.category", "required", 5},
		{"bad severity", "id: a\nname: n\ntypes: [city.sensor.reading]\nwhen: \"true\"\nraise: {category: \"0103\", severity: purple}\n", "raise.severity", `"purple" is not one of`, 5},
		{"bad category", "id: a\nname: n\ntypes: [city.sensor.reading]\nwhen: \"true\"\nraise: {category: \"01 03\", severity: red}\n", "raise.category", "may hold only", 5},
		{"unknown field", "id: a\nname: n\ncorrelation_key: x\n" + ok, "correlation_key", "unknown field", 3},
		{"unknown raise field", "id: a\nname: n\ntypes: [city.sensor.reading]\nwhen: \"true\"\nraise:\n  category: \"0103\"\n  severity: red\n  sevrity: blue\n", "raise.sevrity", "unknown field", 8},
		{"for and window", "id: a\nname: n\nfor: 5m\nwindow: {size: 5m, having: count > 1}\n" + ok, "window", "at most one of", 4},
		{"window without having", "id: a\nname: n\nwindow: {size: 5m}\n" + ok, "window.having", "required", 3},
		{"window bad kind", "id: a\nname: n\nwindow: {kind: hopping, size: 5m, having: count > 1}\n" + ok, "window.kind", "not sliding or tumbling", 3},
		{"for too long", "id: a\nname: n\nfor: 30d\n" + ok, "for", "outside 1s … 7d", 3},
		{"for not a duration", "id: a\nname: n\nfor: five minutes\n" + ok, "for", "not a duration", 3},
		{"absent sub-second", "id: a\nname: n\nabsent: 1500ms\n" + ok, "absent", "whole seconds", 3},
		{"group_by without state", "id: a\nname: n\ngroup_by: sensor.device_id\n" + ok, "group_by", "only a rule with", 3},
		{"field twice", "id: a\nname: n\nname: m\n" + ok, "name", "twice", 3},
		{"when is a list", "id: a\nname: n\ntypes: [city.sensor.reading]\nwhen: [a]\nraise: {category: \"0103\", severity: orange}\n", "when", "want text", 4},
		{"raise is text", "id: a\nname: n\ntypes: [city.sensor.reading]\nwhen: \"true\"\nraise: red\n", "raise", "want a mapping", 5},
		{"too big", "id: a\nname: n\ndescription: " + strings.Repeat("x", lang.MaxRuleBytes) + "\n" + ok, "", "more than the 65536 allowed", 1},
		{"not a rule", "just text\n", "", "want a rule", 1},
		{"yaml syntax", "id: [a\n", "", "yaml:", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs, err := lang.Parse("v.yaml", []byte(tt.src))
			if len(rs) != 0 {
				t.Errorf("got %d rules from an invalid file", len(rs))
			}
			var ve *lang.ValidationError
			for _, e := range flatten(err) {
				if errors.As(e, &ve) && ve.Field == tt.field && strings.Contains(ve.Msg, tt.msg) {
					break
				}
				ve = nil
			}
			if ve == nil {
				t.Fatalf("want a ValidationError on %q containing %q, got:\n%v", tt.field, tt.msg, err)
			}
			if ve.Pos.File != "v.yaml" || ve.Pos.Line != tt.line {
				t.Errorf("position %v, want v.yaml line %d", ve.Pos, tt.line)
			}
			if !strings.HasPrefix(ve.Error(), "v.yaml") {
				t.Errorf("message %q does not start with the file name", ve.Error())
			}
		})
	}
}

func TestLoad(t *testing.T) {
	rule := func(id string) string {
		return "id: " + id + "\nname: n\ntypes: [city.sensor.reading]\nwhen: sensor.kind == \"gas\"\nraise: {category: \"0103\", severity: orange}\n"
	}
	fsys := fstest.MapFS{
		"a.yaml":              {Data: []byte(rule("one"))},
		"b/c.yml":             {Data: []byte(rule("two") + "---\n" + rule("three"))},
		"b/d.json":            {Data: []byte(`[{"id": "four", "name": "n", "types": ["city.video.detection"], "when": "true", "raise": {"category": "0301", "severity": "blue"}}]`)},
		"e.yaml":              {Data: []byte(rule("one"))}, // duplicate id: the first read wins
		"f.yaml":              {Data: []byte("# only a comment\n")},
		"notes.txt":           {Data: []byte("not a rule")},
		".editor-backup.yaml": {Data: []byte("broken: [")},
		".hidden/x.yaml":      {Data: []byte("broken: [")},
		"big.yaml":            {Data: make([]byte, lang.MaxFileBytes+1)},
	}
	rs, err := lang.Load(fsys)
	var ids []string
	for _, r := range rs {
		ids = append(ids, r.ID+"@"+r.Origin.String())
	}
	if want := "one@a.yaml:1:1 two@b/c.yml:1:1 three@b/c.yml:7:1 four@b/d.json:1:2"; strings.Join(ids, " ") != want {
		t.Errorf("rules %q, want %q", strings.Join(ids, " "), want)
	}
	errs := flatten(err)
	if len(errs) != 2 {
		t.Fatalf("want 2 errors (duplicate id, big file), got %d:\n%v", len(errs), err)
	}
	if !strings.Contains(err.Error(), "e.yaml:1:1: rule one: id: duplicate id, first defined at a.yaml:1:1") {
		t.Errorf("no duplicate-id error in:\n%v", err)
	}
	if !strings.Contains(err.Error(), "big.yaml: file is larger than") {
		t.Errorf("no size error in:\n%v", err)
	}
}

func TestLoadDefaults(t *testing.T) {
	rs, err := lang.Parse("d.yaml", []byte("id: a\nname: 燃气\ntypes: city.sensor.reading\nwhen: \"true\"\nraise: {category: 0103, severity: red}\n"))
	if err != nil {
		t.Fatal(err)
	}
	r := rs[0]
	if r.Version != 1 || !r.Enabled || r.Raise.Shadow || len(r.Types) != 1 || r.Raise.Category != "0103" {
		t.Errorf("defaults: %+v", r)
	}
}
