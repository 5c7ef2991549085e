package ingest

import (
	"fmt"
	"strings"
	"testing"
)

// TestScanRefusesDuplicateMemberNamesAtAnyCount: two members of one name are refused whether
// the record has a few members (compared pairwise) or many (a set), and whether the names
// are spelled alike or one with escapes; distinct names are not.
func TestScanRefusesDuplicateMemberNamesAtAnyCount(t *testing.T) {
	record := func(n int, last string) []byte {
		var b strings.Builder
		b.WriteString("{")
		for i := range n {
			fmt.Fprintf(&b, `"m%d":%d,`, i, i)
		}
		b.WriteString(`"` + last + `":true}`)
		return []byte(b.String())
	}
	for _, n := range []int{1, 2, 15, 16, 17, 40} {
		for _, c := range []struct {
			last string
			dup  bool
		}{
			{"m0", true},
			{fmt.Sprintf("m%d", n-1), true},
			{`\u006d0`, true}, // m0, escaped
			{"M0", false},     // encoding/json would match it case-insensitively, but it is another member
			{"m0 ", false},
			{fmt.Sprintf("m%d", n), false},
		} {
			_, rej := scanObject(record(n, c.last))
			if got := rej != nil && strings.Contains(rej.Reason, "duplicate member names"); got != c.dup {
				t.Errorf("%d members and %q: refused as duplicate = %v (%v), want %v", n+1, c.last, got, rej, c.dup)
			}
		}
	}
}
