package ingest

import (
	"strings"
	"testing"
)

func TestCheckText(t *testing.T) {
	t.Parallel()
	deep := make([]byte, 0, 2*(maxDepth+1))
	for range maxDepth + 1 {
		deep = append(deep, '[')
	}
	for range maxDepth + 1 {
		deep = append(deep, ']')
	}
	tests := []struct {
		name, in string
		want     string // "" = accepted
	}{
		{"plain", `{"a":"b"}`, ""},
		{"Chinese", `{"content":"井盖缺失"}`, ""},
		{"escaped quote and brackets in a string", `{"a":"\"[[[[\\"}`, ""},
		{"surrogate pair", `{"a":"\ud83d\ude00"}`, ""},
		{"escaped BMP char", `{"a":"\u4e95"}`, ""},
		{"invalid UTF-8", "{\"a\":\"\xc3\x28\"}", "invalid UTF-8 at byte 6"},
		{"encoded surrogate (CESU-8)", "{\"a\":\"\xed\xa0\x80\"}", "invalid UTF-8 at byte 6"},
		{"lone high surrogate", `{"a":"\ud800x"}`, "lone UTF-16 surrogate escape at byte 6"},
		{"lone low surrogate", `{"a":"\udc00"}`, "lone UTF-16 surrogate escape at byte 6"},
		{"high then non-surrogate", `{"a":"\ud800\u0041"}`, "lone UTF-16 surrogate"},
		{"nesting at the bound", string(deep[1 : len(deep)-1]), ""},
		{"nesting over the bound", string(deep), "nested deeper than 32 levels"},
		{"brackets inside strings do not count", `["` + string(deep) + `"]`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, rej := checkText([]byte(tt.in))
			switch {
			case tt.want == "" && rej != nil:
				t.Errorf("rejected: %s", rej.Reason)
			case tt.want != "" && (rej == nil || !strings.Contains(rej.Reason, tt.want)):
				t.Errorf("got %v, want a rejection containing %q", rej, tt.want)
			}
		})
	}
}

func TestCheckTextCountsTopLevelMembers(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]int{
		`{}`:      0,
		`{"a":1}`: 1,
		`{"a":1,"b":{"c":2,"d":[{"e":3}]},"f":"g:h"}`: 3,
		`{"a":1,"a":2}`: 2,
		`{"k\":":1}`:    1,
	} {
		if got, rej := checkText([]byte(in)); rej != nil || got != want {
			t.Errorf("checkText(%s) = %d, %v; want %d members", in, got, rej, want)
		}
	}
}
