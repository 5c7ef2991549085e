package ingest

import (
	"strings"
	"testing"
)

func TestSeenSet(t *testing.T) {
	t.Parallel()
	s := newSeenSet(3)
	steps := []struct {
		op   string // add or remove
		key  string
		want bool // add's answer
	}{
		{"add", "a", true},
		{"add", "a", false},
		{"add", "b", true},
		{"add", "c", true},
		{"add", "d", true}, // evicts a
		{"add", "a", true}, // evicts b
		{"add", "c", false},
		{"remove", "c", false},
		{"add", "c", true}, // the removed slot is not a ghost: c is new again
		{"add", "e", true},
		{"add", "f", true},
		{"add", "g", true},
		{"add", "e", false},
	}
	for i, st := range steps {
		switch st.op {
		case "add":
			if got := s.add(st.key); got != st.want {
				t.Fatalf("step %d: add(%q) = %v, want %v", i, st.key, got, st.want)
			}
		case "remove":
			s.remove(st.key)
		}
		if n := s.len(); n > 3 {
			t.Fatalf("step %d: %d keys held, bound is 3", i, n)
		}
	}
}

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
			rej := checkText([]byte(tt.in))
			switch {
			case tt.want == "" && rej != nil:
				t.Errorf("rejected: %s", rej.Reason)
			case tt.want != "" && (rej == nil || !strings.Contains(rej.Reason, tt.want)):
				t.Errorf("got %v, want a rejection containing %q", rej, tt.want)
			}
		})
	}
}
