package cockpit

import (
	"slices"
	"testing"
)

func TestHistoryAfter(t *testing.T) {
	t.Parallel()
	h := newHistory(4)
	seqsAfter := func(seq, last uint64) ([]uint64, bool) {
		ds, ok := h.after(seq, last)
		var out []uint64
		for _, d := range ds {
			out = append(out, d.seq)
		}
		return out, ok
	}
	if got, ok := seqsAfter(0, 0); !ok || len(got) != 0 {
		t.Fatalf("empty history after 0: %v %v", got, ok)
	}
	for seq := uint64(1); seq <= 6; seq++ {
		h.add(&delta{seq: seq})
	}
	cases := []struct {
		after uint64
		want  []uint64
		ok    bool
	}{
		{6, nil, true},
		{5, []uint64{6}, true},
		{2, []uint64{3, 4, 5, 6}, true},
		{1, nil, false}, // 2 has left the ring
		{7, nil, false}, // from the future: another epoch
	}
	for _, tc := range cases {
		got, ok := seqsAfter(tc.after, 6)
		if ok != tc.ok || !slices.Equal(got, tc.want) {
			t.Errorf("after(%d) = %v, %v; want %v, %v", tc.after, got, ok, tc.want, tc.ok)
		}
	}
}

func TestTombstonesForgetOldest(t *testing.T) {
	t.Parallel()
	ts := newTombstones(2)
	ts.put("a", 1)
	ts.put("b", 1)
	ts.put("a", 3) // an update does not take a new slot
	if v, ok := ts.get("a"); !ok || v != 3 {
		t.Fatalf("a = %d, %v", v, ok)
	}
	ts.put("c", 1) // evicts a, the oldest
	if _, ok := ts.get("a"); ok {
		t.Error("a still remembered after eviction")
	}
	for _, id := range []string{"b", "c"} {
		if _, ok := ts.get(id); !ok {
			t.Errorf("%s forgotten", id)
		}
	}
	if len(ts.version) != 2 {
		t.Errorf("holds %d tombstones, want 2", len(ts.version))
	}
}
