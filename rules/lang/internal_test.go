package lang

import (
	"os"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestSplitTemplate(t *testing.T) {
	tests := []struct {
		src  string
		want string // segments joined by |, expressions in []
		err  string
	}{
		{"plain", "plain", ""},
		{"", "", ""},
		{"a {{x}} b", "a |[x]| b", ""},
		{"{{x}}{{y}}", "[x]|[y]", ""},
		{`{{ "}}" }}!`, `[ "}}" ]|!`, ""},
		{`{{ '\'}}' }}`, `[ '\'}}' ]`, ""},
		{"水位 {{ a }}", "水位 |[ a ]", ""},
		{"a {{ x", "", "unclosed"},
		{"a {{ }} b", "", "empty"},
		{"a }} b", "a }} b", ""},
	}
	for _, tt := range tests {
		segs, err := splitTemplate(tt.src)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.msg, tt.err) {
				t.Errorf("%q: error %v, want %q", tt.src, err, tt.err)
			}
			continue
		}
		var parts []string
		for _, s := range segs {
			if s.isExpr {
				parts = append(parts, "["+s.text+"]")
				if got := string([]rune(tt.src)[s.off : s.off+utf8.RuneCountInString(s.text)]); got != s.text {
					t.Errorf("%q: offset %d points at %q, not %q", tt.src, s.off, got, s.text)
				}
			} else {
				parts = append(parts, s.text)
			}
		}
		if got := strings.Join(parts, "|"); err != nil || got != tt.want {
			t.Errorf("%q: %q %v, want %q", tt.src, got, err, tt.want)
		}
	}
}

// FuzzParse: no file content may panic Parse.
func FuzzParse(f *testing.F) {
	entries, err := os.ReadDir("../../city/demo/rules")
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile("../../city/demo/rules/" + e.Name())
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("a: &x [*x, *x]\nb: *x\n"))
	f.Add([]byte(`{"id": "j", "name": "n", "types": ["city.video.detection"], "when": "true", "raise": {"category": "0301", "severity": "blue"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		rs, _ := Parse("fuzz.yaml", data)
		for _, r := range rs {
			if r.Compiled() == nil {
				t.Fatalf("rule %s returned uncompiled", r.ID)
			}
		}
	})
}
