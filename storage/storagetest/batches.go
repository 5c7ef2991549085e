package storagetest

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/storage"
	"github.com/urbanbrain/urbanbrain/storage/internal/canon"
)

// testPoisonRow: one record the store refuses, in a large batch, is reported with its index and
// a reason, and every other record is stored exactly once, also when the batch comes again.
func testPoisonRow(t *testing.T, open func(t *testing.T) Store) {
	s := open(t)
	ctx := t.Context()
	a := area("d1", "s1", "c1", "g1")
	const n = 2000
	evs := make([]event.Event, n)
	for i := range evs {
		evs[i] = sensorEvent(fmt.Sprintf("poison-%04d", i), a, fmt.Sprintf("dev-%d", i%50), at(time.Duration(i)*time.Second))
	}
	bad := 1234
	evs[bad].Time = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC) // beyond what a store can keep

	for pass := range 2 {
		err := s.HandleEvents(ctx, evs)
		rows, ok := storage.Rejections(err)
		if !ok {
			t.Fatalf("pass %d: HandleEvents error = %v, want a *storage.RejectedError", pass, err)
		}
		if len(rows) != 1 || rows[0].Index != bad || rows[0].Reason == "" {
			t.Fatalf("pass %d: rejected %+v, want only index %d with a reason", pass, rows, bad)
		}
		var re *storage.RejectedError
		if !errors.As(err, &re) || !strings.Contains(err.Error(), "rejected") {
			t.Errorf("pass %d: error text %q", pass, err)
		}
	}
	got, err := s.ListEvents(ctx, storage.EventFilter{Limit: storage.MaxLimit})
	must(t, err)
	if len(got) != storage.MaxLimit {
		t.Fatalf("first page has %d events, want %d", len(got), storage.MaxLimit)
	}
	second, err := s.ListEvents(ctx, storage.EventFilter{Limit: storage.MaxLimit, Offset: storage.MaxLimit})
	must(t, err)
	all := append(got, second...)
	if len(all) != n-1 {
		t.Fatalf("stored %d events, want %d (all but the poison row, once each)", len(all), n-1)
	}
	seen := map[string]bool{}
	for _, e := range all {
		if seen[e.ID] {
			t.Fatalf("event %s stored twice", e.ID)
		}
		seen[e.ID] = true
	}
	if seen[evs[bad].ID] {
		t.Fatalf("the poison row %s was stored", evs[bad].ID)
	}
	// Alone, and before the epoch, it is refused the same way.
	old := sensorEvent("poison-old", a, "dev-1", time.Date(1969, 12, 31, 23, 0, 0, 0, time.UTC))
	if rows, ok := storage.Rejections(s.HandleEvent(ctx, old)); !ok || len(rows) != 1 || rows[0].Index != 0 {
		t.Fatalf("HandleEvent(before 1970) rejections = %+v, want index 0", rows)
	}
	_, err = s.GetEvent(ctx, old.Type, old.ID)
	isNotFound(t, "refused event", err)
}

// snapshot is everything a store answers about a little world, for comparing two states.
type snapshot struct {
	Events    []event.Event
	Incidents []event.Incident
	Details   []storage.IncidentDetail
	Count     int
}

func takeSnapshot(t *testing.T, s Store) snapshot {
	t.Helper()
	ctx := t.Context()
	var snap snapshot
	var err error
	snap.Events, err = s.ListEvents(ctx, storage.EventFilter{Limit: storage.MaxLimit})
	must(t, err)
	snap.Incidents, err = s.ListIncidents(ctx, storage.IncidentFilter{Limit: storage.MaxLimit})
	must(t, err)
	snap.Count, err = s.CountIncidents(ctx, storage.IncidentFilter{})
	must(t, err)
	for _, inc := range snap.Incidents {
		d, err := s.GetIncident(ctx, inc.ID)
		must(t, err)
		snap.Details = append(snap.Details, d)
	}
	return snap
}

// testReplayEverythingTwice: a consumer that restarts from offset 0 delivers every topic
// again, cut into different batches; the store answers exactly as before.
func testReplayEverythingTwice(t *testing.T, open func(t *testing.T) Store) {
	s := open(t)
	ctx := t.Context()
	var (
		evs       []event.Event
		changelog []event.IncidentChange
		dispatch  []event.Dispatch
		latest    = map[string]event.Incident{}
	)
	for i := range 30 {
		spec := incidentSpec{
			id: fmt.Sprintf("INC-s%d-replay-%02d", i%3, i), category: []string{"waterlogging", "garbage"}[i%2],
			severity: event.SeverityYellow, area: area("d1", fmt.Sprintf("s%d", i%3), "c1", fmt.Sprintf("g%d", i%5)),
			created: at(time.Duration(i) * time.Minute), worker: fmt.Sprintf("w%d", i%4), steps: 1 + i%7,
		}
		evs = append(evs, spec.reportEvents()...)
		log := spec.changelog()
		changelog = append(changelog, log...)
		latest[spec.id] = log[len(log)-1].Incident
		if spec.steps >= 3 {
			dispatch = append(dispatch, dispatchFor(spec, 3, spec.worker, spec.created.Add(2*time.Minute)))
		}
	}
	write := func(batch int) {
		for i := 0; i < len(evs); i += batch {
			must(t, s.HandleEvents(ctx, evs[i:min(i+batch, len(evs))]))
		}
		for i := 0; i < len(changelog); i += batch {
			must(t, s.HandleIncidentChanges(ctx, changelog[i:min(i+batch, len(changelog))]))
		}
		for i := 0; i < len(dispatch); i += batch {
			must(t, s.HandleDispatches(ctx, dispatch[i:min(i+batch, len(dispatch))]))
		}
	}
	write(7)
	first := takeSnapshot(t, s)
	if len(first.Events) != len(evs) || first.Count != len(latest) {
		t.Fatalf("after one pass: %d events and %d incidents, want %d and %d", len(first.Events), first.Count, len(evs), len(latest))
	}
	for _, inc := range first.Incidents {
		mustEqual(t, "incident "+inc.ID, inc, canon.Incident(latest[inc.ID]))
	}
	write(50) // the replay, in other batches
	write(1)  // and once more, one record at a time
	second := takeSnapshot(t, s)
	mustEqual(t, "store after replaying everything twice", second, first)
}

func testDispatchBatches(t *testing.T, open func(t *testing.T) Store) {
	s := open(t)
	ctx := t.Context()
	spec := flood
	spec.steps = 3
	must(t, s.HandleIncidentChanges(ctx, spec.changelog()))
	d3 := dispatchFor(spec, 3, "w1", spec.created.Add(2*time.Minute))
	d5 := dispatchFor(spec, 5, "w2", spec.created.Add(5*time.Minute))
	d5.Level = event.LevelStreet // issue 12 item 7: the detail's dispatches[].level was missing
	bad := event.Dispatch{ID: "no-incident"}
	must(t, s.HandleDispatches(ctx, []event.Dispatch{d5, bad, d3, d5}))
	must(t, s.HandleDispatches(ctx, []event.Dispatch{d3}))
	must(t, s.HandleDispatches(ctx, nil))
	got, err := s.GetIncident(ctx, spec.id)
	must(t, err)
	mustEqual(t, "dispatches", got.Dispatches, []event.Dispatch{canon.Dispatch(d3), canon.Dispatch(d5)})
}
