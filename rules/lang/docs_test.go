package lang_test

import (
	"os"
	"strings"
	"testing"

	"github.com/urbanbrain/urbanbrain/rules/lang"
)

// Every whole rule shown in docs/rules.md parses and compiles, so the guide cannot teach a
// rule that does not load. (Fragments — a when alone — are not whole rules and are skipped.)
func TestDocsRulesExamplesCompile(t *testing.T) {
	doc, err := os.ReadFile("../../docs/rules.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := strings.Split(string(doc), "```yaml\n")
	n := 0
	for _, b := range blocks[1:] {
		text, _, _ := strings.Cut(b, "```")
		if !strings.Contains(text, "\nid: ") && !strings.HasPrefix(text, "id: ") && !strings.Contains(text, "\nname: ") {
			continue
		}
		if !strings.Contains(text, "types:") {
			continue
		}
		n++
		if _, err := lang.Parse("docs/rules.md", []byte(text)); err != nil {
			t.Errorf("example does not compile: %v\n%s", err, text)
		}
	}
	if n < 4 {
		t.Errorf("found %d whole rules in docs/rules.md; the test is not reading it", n)
	}
}
