package loadbench

import (
	"testing"
)

func TestAdvanceCountsCommittedProgressPerGroup(t *testing.T) {
	t.Parallel()
	start := map[string]map[string]map[int]int64{
		"urbanbrain.rules":          {"city.events": {0: 10, 1: -1}},
		"urbanbrain.storage.events": {"city.events": {0: 5}},
	}
	now := map[string]map[string]map[int]int64{
		"urbanbrain.rules":          {"city.events": {0: 30, 1: 7}},
		"urbanbrain.storage.events": {"city.events": {0: 9, 1: 4}},
		"urbanbrain.dispatch":       {"city.incidents": {0: 100}},
	}
	got := advance(start, now, "city.events")
	want := map[string]int64{"urbanbrain.rules": 27, "urbanbrain.storage.events": 8}
	if len(got) != len(want) {
		t.Fatalf("advance = %v, want %v", got, want)
	}
	for g, n := range want {
		if got[g] != n {
			t.Errorf("%s advanced %d, want %d (a never-committed partition counts from 0)", g, got[g], n)
		}
	}
}

func TestLatencyMatchesByEventID(t *testing.T) {
	t.Parallel()
	b := &bench{received: map[string]int64{"a": 1e6, "b": 2e6}}
	l := b.latency([]seen{{"a", 11e6}, {"b", 4e6}, {"unknown", 9e9}})
	if l.Samples != 2 || l.P50 != 10 || l.Max != 10 {
		t.Errorf("latency %+v, want 2 samples (the unknown event skipped), 2 ms and 10 ms", l)
	}
}
