package storagetest

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/storage"
	"github.com/urbanbrain/urbanbrain/storage/internal/canon"
)

func testEventRoundTrip(t *testing.T, open func(t *testing.T) Store) {
	s := open(t)
	ctx := t.Context()
	a := area("d1", "s1", "c1", "g1")
	shanghai := time.FixedZone("CST", 8*3600)
	// Nanoseconds and a +08:00 offset: the store keeps UTC milliseconds.
	odd := time.Date(2026, 3, 1, 16, 0, 0, 123_456_789, shanghai)

	tests := []struct {
		name string
		in   event.Event
	}{
		{"sensor", sensorEvent("rt-1", a, "dev-1", at(0))},
		{"hotline with personal data and no position", hotlineEvent("rt-2", a, at(time.Minute))},
		{"video", videoEvent("rt-3", a, "cam-1", at(2*time.Minute))},
		{"local time with nanoseconds", sensorEvent("rt-4", a, "dev-1", odd)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			must(t, s.HandleEvent(ctx, tc.in))
			got, err := s.GetEvent(ctx, tc.in.Type, tc.in.ID)
			must(t, err)
			mustEqual(t, "stored event", got, canon.Event(tc.in))
		})
	}

	got, err := s.GetEvent(ctx, event.TypeSensorReading, "rt-4")
	must(t, err)
	if want := time.Date(2026, 3, 1, 8, 0, 0, 123_000_000, time.UTC); !got.Time.Equal(want) || got.Time.Location() != time.UTC {
		t.Errorf("time = %s (%s), want %s in UTC", got.Time, got.Time.Location(), want)
	}
	if got.Hotline != nil || got.Sensor == nil {
		t.Errorf("payload kind changed: %+v", got)
	}
}

func testEventReplay(t *testing.T, open func(t *testing.T) Store) {
	s := open(t)
	ctx := t.Context()
	a := area("d1", "s1", "c1", "g1")
	evs := []event.Event{
		sensorEvent("rp-1", a, "dev-1", at(0)),
		hotlineEvent("rp-2", a, at(time.Minute)),
		videoEvent("rp-3", a, "cam-1", at(2*time.Minute)),
	}
	for range 2 {
		for _, e := range evs {
			must(t, s.HandleEvent(ctx, e))
		}
	}
	// A batch that repeats stored events and itself.
	must(t, s.HandleEvents(ctx, append(slices.Clone(evs), evs[0], sensorEvent("rp-4", a, "dev-1", at(3*time.Minute)))))

	got, err := s.ListEvents(ctx, storage.EventFilter{})
	must(t, err)
	mustEqual(t, "events after replay", eventIDs(got), []string{"rp-4", "rp-3", "rp-2", "rp-1"})
	mustEqual(t, "payloads after replay", got[1:], canonEvents(evs[2], evs[1], evs[0]))
}

func testEventNotFound(t *testing.T, open func(t *testing.T) Store) {
	s := open(t)
	ctx := t.Context()
	a := area("d1", "s1", "c1", "g1")
	must(t, s.HandleEvent(ctx, sensorEvent("same-id", a, "dev-1", at(0))))

	_, err := s.GetEvent(ctx, event.TypeSensorReading, "missing")
	isNotFound(t, "missing id", err)
	// An event is known by its type and id (and time): producers of different types may reuse ids.
	_, err = s.GetEvent(ctx, event.TypeHotlineTicket, "same-id")
	isNotFound(t, "same id, other type", err)

	must(t, s.HandleEvent(ctx, hotlineEvent("same-id", a, at(time.Minute))))
	for _, typ := range []string{event.TypeSensorReading, event.TypeHotlineTicket} {
		got, err := s.GetEvent(ctx, typ, "same-id")
		must(t, err)
		if got.Type != typ {
			t.Errorf("GetEvent(%s) returned type %s", typ, got.Type)
		}
	}
}

func testListEventsFilters(t *testing.T, open func(t *testing.T) Store) {
	s := open(t)
	ctx := t.Context()
	a1 := area("d1", "s1", "c1", "g1")
	a2 := area("d1", "s1", "c1", "g2")
	a3 := area("d1", "s2", "c2", "g3")
	a4 := area("d2", "s3", "c3", "g4")
	must(t, s.HandleEvents(ctx, []event.Event{
		sensorEvent("e1", a1, "dev-1", at(0)),
		sensorEvent("e2", a2, "dev-2", at(time.Minute)),
		hotlineEvent("e3", a3, at(2*time.Minute)),
		videoEvent("e4", a4, "cam-1", at(3*time.Minute)),
		sensorEvent("e5", a4, "dev-1", at(4*time.Minute)),
		// Same time as e5: ties break by type, then id, descending.
		hotlineEvent("e6", a1, at(4*time.Minute)),
	}))

	half := 500 * time.Microsecond
	tests := []struct {
		name string
		f    storage.EventFilter
		want []string
	}{
		{"all, newest first", storage.EventFilter{}, []string{"e5", "e6", "e4", "e3", "e2", "e1"}},
		{"type sensor", storage.EventFilter{Type: event.TypeSensorReading}, []string{"e5", "e2", "e1"}},
		{"type hotline", storage.EventFilter{Type: event.TypeHotlineTicket}, []string{"e6", "e3"}},
		{"district", storage.EventFilter{District: "d2"}, []string{"e5", "e4"}},
		{"street", storage.EventFilter{Street: "s1"}, []string{"e6", "e2", "e1"}},
		{"grid", storage.EventFilter{Grid: "g4"}, []string{"e5", "e4"}},
		{"sensor device", storage.EventFilter{DeviceID: "dev-1"}, []string{"e5", "e1"}},
		{"camera", storage.EventFilter{DeviceID: "cam-1"}, []string{"e4"}},
		{"since is inclusive", storage.EventFilter{Since: at(2 * time.Minute)}, []string{"e5", "e6", "e4", "e3"}},
		{"until is exclusive", storage.EventFilter{Until: at(2 * time.Minute)}, []string{"e2", "e1"}},
		{"since and until", storage.EventFilter{Since: at(time.Minute), Until: at(3 * time.Minute)}, []string{"e3", "e2"}},
		{"since between milliseconds", storage.EventFilter{Since: at(time.Minute + half), Until: at(3 * time.Minute)}, []string{"e3"}},
		{"until between milliseconds", storage.EventFilter{Until: at(time.Minute + half)}, []string{"e2", "e1"}},
		{"combined", storage.EventFilter{Type: event.TypeSensorReading, Street: "s1", DeviceID: "dev-1"}, []string{"e1"}},
		{"limit", storage.EventFilter{Limit: 2}, []string{"e5", "e6"}},
		{"limit and offset", storage.EventFilter{Limit: 2, Offset: 2}, []string{"e4", "e3"}},
		{"offset past the end", storage.EventFilter{Offset: 6}, []string{}},
		{"no match", storage.EventFilter{Street: "nowhere"}, []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.ListEvents(ctx, tc.f)
			must(t, err)
			if got == nil {
				t.Fatal("ListEvents returned nil, want an empty slice")
			}
			mustEqual(t, "event ids", eventIDs(got), tc.want)
		})
	}
}

func testPageSize(t *testing.T, open func(t *testing.T) Store) {
	s := open(t)
	ctx := t.Context()
	a := area("d1", "s1", "c1", "g1")
	n := storage.MaxLimit + 50
	evs := make([]event.Event, n)
	specs := make([]event.IncidentChange, 0, n)
	for i := range evs {
		evs[i] = sensorEvent(fmt.Sprintf("p-%05d", i), a, "dev-1", at(time.Duration(i)*time.Second))
		spec := incidentSpec{id: fmt.Sprintf("INC-s1-%05d", i), category: "flood", severity: event.SeverityBlue,
			area: a, created: at(time.Duration(i) * time.Second), steps: 1}
		specs = append(specs, spec.changelog()...)
	}
	must(t, s.HandleEvents(ctx, evs))
	must(t, s.HandleIncidentChanges(ctx, specs))

	tests := []struct {
		limit, want int
	}{
		{0, storage.DefaultLimit},
		{7, 7},
		{storage.MaxLimit, storage.MaxLimit},
		{storage.MaxLimit + 1, storage.MaxLimit},
		{1 << 30, storage.MaxLimit},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("limit %d", tc.limit), func(t *testing.T) {
			evs, err := s.ListEvents(ctx, storage.EventFilter{Limit: tc.limit})
			must(t, err)
			if len(evs) != tc.want {
				t.Errorf("ListEvents returned %d events, want %d", len(evs), tc.want)
			}
			incs, err := s.ListIncidents(ctx, storage.IncidentFilter{Limit: tc.limit})
			must(t, err)
			if len(incs) != tc.want {
				t.Errorf("ListIncidents returned %d incidents, want %d", len(incs), tc.want)
			}
			count, err := s.CountIncidents(ctx, storage.IncidentFilter{Limit: tc.limit})
			must(t, err)
			if count != n {
				t.Errorf("CountIncidents = %d, want %d whatever the limit", count, n)
			}
		})
	}
}

func testInvalidFilters(t *testing.T, open func(t *testing.T) Store) {
	s := open(t)
	ctx := t.Context()
	incidentFilters := []storage.IncidentFilter{
		{Limit: -1},
		{Offset: -1},
		{Since: at(time.Hour), Until: at(0)},
		{Since: at(0), Until: at(0)},
		{Status: []event.Status{event.StatusNew, ""}},
	}
	for _, f := range incidentFilters {
		if _, err := s.ListIncidents(ctx, f); !errors.Is(err, storage.ErrInvalidFilter) {
			t.Errorf("ListIncidents(%+v) error = %v, want ErrInvalidFilter", f, err)
		}
		if f.Limit < 0 || f.Offset < 0 {
			continue // CountIncidents ignores the page
		}
		if _, err := s.CountIncidents(ctx, f); !errors.Is(err, storage.ErrInvalidFilter) {
			t.Errorf("CountIncidents(%+v) error = %v, want ErrInvalidFilter", f, err)
		}
	}
	eventFilters := []storage.EventFilter{
		{Limit: -1},
		{Offset: -1},
		{Since: at(time.Hour), Until: at(0)},
	}
	for _, f := range eventFilters {
		if _, err := s.ListEvents(ctx, f); !errors.Is(err, storage.ErrInvalidFilter) {
			t.Errorf("ListEvents(%+v) error = %v, want ErrInvalidFilter", f, err)
		}
	}
}

// testBadRecords: records no store could keep are skipped without an error, because an error
// means "redeliver" and redelivery would fail forever and block the partition.
func testBadRecords(t *testing.T, open func(t *testing.T) Store) {
	s := open(t)
	ctx := t.Context()
	a := area("d1", "s1", "c1", "g1")

	noID := sensorEvent("", a, "dev-1", at(0))
	noType := sensorEvent("x-1", a, "dev-1", at(0))
	noType.Type = ""
	must(t, s.HandleEvent(ctx, noID))
	must(t, s.HandleEvent(ctx, noType))
	good := sensorEvent("ok-1", a, "dev-1", at(0))
	must(t, s.HandleEvents(ctx, []event.Event{noID, good, noType}))
	evs, err := s.ListEvents(ctx, storage.EventFilter{})
	must(t, err)
	mustEqual(t, "stored events", eventIDs(evs), []string{"ok-1"})

	spec := incidentSpec{id: "INC-s1-bad", category: "flood", severity: event.SeverityRed, area: a, created: at(0), steps: 1}
	ch := spec.changelog()[0]
	ch.Incident.ID = ""
	must(t, s.HandleIncidentChange(ctx, ch))
	must(t, s.HandleDispatch(ctx, event.Dispatch{IncidentID: "INC-s1-bad", At: at(0)}))
	must(t, s.HandleDispatch(ctx, event.Dispatch{ID: "INC-s1-bad/1", At: at(0)}))
	n, err := s.CountIncidents(ctx, storage.IncidentFilter{})
	must(t, err)
	if n != 0 {
		t.Errorf("CountIncidents = %d after bad changes, want 0", n)
	}
}

func testReadWhileWriting(t *testing.T, open func(t *testing.T) Store) {
	s := open(t)
	ctx := t.Context()
	a := area("d1", "s1", "c1", "g1")
	const n = 200
	done := make(chan error, 1)
	go func() {
		for i := range n {
			if err := s.HandleEvent(ctx, sensorEvent(fmt.Sprintf("rw-%03d", i), a, "dev-1", at(time.Duration(i)*time.Second))); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	last := 0
	for reading := true; reading; {
		select {
		case err := <-done:
			must(t, err)
			reading = false
		default:
		}
		evs, err := s.ListEvents(ctx, storage.EventFilter{Limit: storage.MaxLimit})
		must(t, err)
		// Each read sees a committed prefix, never fewer rows than the one before.
		if len(evs) < last {
			t.Fatalf("read %d events after reading %d", len(evs), last)
		}
		last = len(evs)
	}
	evs, err := s.ListEvents(ctx, storage.EventFilter{Limit: storage.MaxLimit})
	must(t, err)
	if len(evs) != n {
		t.Fatalf("stored %d events, want %d", len(evs), n)
	}
}
