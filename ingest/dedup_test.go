package ingest

import "testing"

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
