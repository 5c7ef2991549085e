package query

import (
	"slices"
	"testing"
	"time"

	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/storage"
)

func TestWhere(t *testing.T) {
	t.Parallel()
	hinted := &Dialect{HintCoarse: true}
	plain := &Dialect{NoConditions: " WHERE 1"}
	at := time.Unix(10, 500) // 10.0000005 s rounds up to 10001 ms
	tests := []struct {
		name  string
		d     *Dialect
		build func(w *Where)
		sql   string
		args  []any
	}{
		{"empty", hinted, func(*Where) {}, "", nil},
		{"empty WHERE 1", plain, func(*Where) {}, " WHERE 1", nil},
		{"coarse alone is not hinted", hinted, func(w *Where) { w.EqCoarse("type", "t") }, " WHERE type = ?", []any{"t"}},
		{"coarse beside selective is hinted", hinted, func(w *Where) {
			w.EqCoarse("type", "t")
			w.Eq("grid", "g")
		}, " WHERE +type = ? AND grid = ?", []any{"t", "g"}},
		{"no hint in a plain dialect", plain, func(w *Where) {
			w.EqCoarse("type", "t")
			w.Eq("grid", "g")
		}, " WHERE type = ? AND grid = ?", []any{"t", "g"}},
		{"empty values do not filter", plain, func(w *Where) {
			w.Eq("grid", "")
			w.AnyOf(Selective, "grid", nil)
		}, " WHERE 1", nil},
		{"an empty list matches nothing", hinted, func(w *Where) { w.AnyOf(Selective, "grid", []string{}) }, " WHERE 0 = 1", nil},
		{"list", hinted, func(w *Where) { w.AnyOf(Selective, "grid", []string{"a", "b"}) }, " WHERE grid IN (?, ?)", []any{"a", "b"}},
		{"bounds round up", hinted, func(w *Where) { w.Between("t", at, at.Add(time.Millisecond)) },
			" WHERE t >= ? AND t < ?", []any{int64(10001), int64(10002)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := tt.d.New()
			tt.build(w)
			if got := w.SQL(); got != tt.sql {
				t.Errorf("SQL() = %q, want %q", got, tt.sql)
			}
			if !slices.Equal(w.Args, tt.args) {
				t.Errorf("Args = %v, want %v", w.Args, tt.args)
			}
		})
	}
}

func TestMilestonesCoverStages(t *testing.T) {
	t.Parallel()
	want := []event.Status{event.StatusDispatched, event.StatusAccepted, event.StatusResolved, event.StatusClosed}
	if !slices.Equal(Milestones, want) {
		t.Fatalf("Milestones = %v, want %v", Milestones, want)
	}
	for _, st := range storage.Stages {
		for _, s := range []event.Status{st.From, st.To} {
			if s != "" && !slices.Contains(Milestones, s) {
				t.Errorf("stage %s: %s is not a milestone", st.Name, s)
			}
		}
	}
}
