package storagetest

import (
	"testing"
	"time"

	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/storage"
)

func testRetention(t *testing.T, open func(t *testing.T) Store) {
	s := open(t)
	ctx := t.Context()
	a := area("d1", "s1", "c1", "g1")
	must(t, s.HandleEvents(ctx, []event.Event{
		sensorEvent("old-month", a, "dev-1", at(-60*24*time.Hour)), // a whole month before the rest
		sensorEvent("t0", a, "dev-1", at(0)),
		sensorEvent("t1h", a, "dev-1", at(time.Hour)),
		sensorEvent("t2h", a, "dev-1", at(2*time.Hour)),
	}))
	kpiWorld(t, s) // a closed at +6m, b c d open, e closed at 20h+6m
	ka := incidentSpec{id: "INC-s1-ka", area: a}
	ke := incidentSpec{id: "INC-s1-ke", area: a}
	must(t, s.HandleDispatches(ctx, []event.Dispatch{
		dispatchFor(ka, 3, "w1", at(2*time.Minute)), dispatchFor(ke, 3, "w1", at(20*time.Hour+2*time.Minute)),
	}))

	removed, err := s.Retain(ctx, storage.Cutoffs{})
	must(t, err)
	mustEqual(t, "removed with zero cutoffs", removed, storage.Removed{})

	cut := storage.Cutoffs{Events: at(90 * time.Minute), Incidents: at(10 * time.Hour)}
	removed, err = s.Retain(ctx, cut)
	must(t, err)
	mustEqual(t, "removed", removed, storage.Removed{Events: 3, Incidents: 1})

	evs, err := s.ListEvents(ctx, storage.EventFilter{})
	must(t, err)
	mustEqual(t, "events kept", eventIDs(evs), []string{"t2h"})
	incs, err := s.ListIncidents(ctx, storage.IncidentFilter{})
	must(t, err)
	// Open incidents stay whatever their age; a closed one stays until its last change is old.
	mustEqual(t, "incidents kept", incidentIDs(incs), []string{"INC-s1-ke", "INC-s3-kd", "INC-s3-kc", "INC-s1-kb"})
	_, err = s.GetIncident(ctx, "INC-s1-ka")
	isNotFound(t, "removed incident", err)
	e, err := s.GetIncident(ctx, "INC-s1-ke")
	must(t, err)
	if len(e.Timeline) != 7 || len(e.Dispatches) != 1 {
		t.Errorf("kept incident has %d timeline entries and %d dispatches, want 7 and 1", len(e.Timeline), len(e.Dispatches))
	}
	stages, err := s.StageTimes(ctx, storage.KPIFilter{Since: at(0), Until: at(time.Hour)}, nil)
	must(t, err)
	if stages[0].Completed != 0 {
		t.Errorf("the removed incident still counts in the KPIs: %+v", stages[0])
	}

	removed, err = s.Retain(ctx, cut)
	must(t, err)
	mustEqual(t, "removed the second time", removed, storage.Removed{})
}
