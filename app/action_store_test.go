package app

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/urbanbrain/urbanbrain/auth"
	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/storage"
)

// actionAnswerJSON is a command's 200 answer as a client reads it.
type actionAnswerJSON struct {
	event.CommandResult
	Stored *bool `json:"stored"`
}

// Regression (issue 12, read-your-writes): right after a 200 close, GET showed evidence and
// verified_by as null for a moment — the answer came from the owner, GET from the store, which
// lags by up to a storage batch (--store-flush-interval, 500 ms by default). Over several
// incidents, every step of the loop (accept, start, resolve, verify, close) is followed at once
// by a GET that must show at least the answer's version, its status, and after the close the
// evidence and the verifier.
func TestActionAnswerIsReadableByTheNextGet(t *testing.T) {
	r := start(t, t.TempDir(), freeAddr(t))
	producer := r.token(auth.Claims{Subject: "p", Role: auth.RoleIngest})
	operator := r.token(auth.Claims{Subject: "op-ryw", Role: auth.RoleOperator})
	closer := r.token(auth.Claims{Subject: "op-ryw-2", Role: auth.RoleOperator})

	const n = 6
	grids := r.app.City().Grids()
	var incs []event.Incident
	for i := range n {
		g := grids[i*23%len(grids)]
		tk := hotlineTicket(fmt.Sprintf("T-ryw-%d", i), event.RequestComplaint, "0301", "垃圾桶满了没人清运", "13900007777", g.Centroid)
		if code := r.do("POST", "/api/v1/events", producer, tk, nil); code != http.StatusOK && code != http.StatusAccepted {
			t.Fatalf("POST event: %d", code)
		}
	}
	eventually(t, 60*time.Second, "the tickets to be dispatched", func() bool {
		var l incidentList
		r.do("GET", "/api/v1/incidents?status=dispatched&category=0301", operator, nil, &l)
		incs = l.Incidents
		return l.Count == n
	})

	for _, inc := range incs {
		worker := r.token(auth.Claims{Subject: inc.Assignment.WorkerID, Role: auth.RoleWorker, Grids: []string{inc.Area.Grid}})
		steps := []struct {
			token string
			body  map[string]any
			want  event.Status
		}{
			{worker, map[string]any{"action": event.ActionAccept}, event.StatusAccepted},
			{worker, map[string]any{"action": event.ActionStart}, event.StatusInProgress},
			{worker, map[string]any{"action": event.ActionResolve, "evidence": map[string]any{
				"note": "已清运", "photos": []string{"https://example.org/after.jpg"}}}, event.StatusResolved},
			{operator, map[string]any{"action": event.ActionVerify}, event.StatusVerified},
			{closer, map[string]any{"action": event.ActionClose}, event.StatusClosed},
		}
		for _, st := range steps {
			var ans actionAnswerJSON
			code := r.do("POST", "/api/v1/incidents/"+inc.ID+"/actions", st.token, st.body, &ans)
			if code != http.StatusOK || ans.Incident == nil || ans.Incident.Status != st.want {
				t.Fatalf("%s %s: %d %+v", inc.ID, st.body["action"], code, ans)
			}
			if ans.Stored == nil || !*ans.Stored {
				t.Errorf("%s %s: answer without \"stored\": true (%v)", inc.ID, st.body["action"], ans.Stored)
			}
			var d struct {
				Incident event.Incident `json:"incident"`
			}
			if code := r.do("GET", "/api/v1/incidents/"+inc.ID, closer, nil, &d); code != http.StatusOK {
				t.Fatalf("GET %s: %d", inc.ID, code)
			}
			if got := d.Incident; got.Version < ans.Incident.Version || got.Status != st.want {
				t.Fatalf("GET right after a 200 %s: version %d status %s, want at least version %d status %s",
					st.body["action"], got.Version, got.Status, ans.Incident.Version, st.want)
			}
			if st.want == event.StatusClosed && (d.Incident.Evidence == nil || d.Incident.Evidence.Note != "已清运" || d.Incident.VerifiedBy != "op-ryw") {
				t.Errorf("GET right after close: evidence %+v verified_by %q, want the resolver's evidence and op-ryw", d.Incident.Evidence, d.Incident.VerifiedBy)
			}
		}
	}
}

// laggingStore is a store whose copy of one incident is at a version the test sets.
type laggingStore struct {
	Store
	version atomic.Int64
	asked   atomic.Int64
}

func (s *laggingStore) GetIncident(_ context.Context, id string) (storage.IncidentDetail, error) {
	s.asked.Add(1)
	return storage.IncidentDetail{Incident: event.Incident{ID: id, Version: s.version.Load()}}, nil
}

// A command's answer waits for the store only as long as it may: a store that never catches up
// ends the wait with the context (the answer then says "stored": false); one that catches up
// and is announced by the sink ends it at once.
func TestActionAwaitStored(t *testing.T) {
	t.Parallel()
	st := &laggingStore{}
	st.version.Store(3)
	a := &App{store: st}

	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if a.awaitStored(ctx, "INC-x-1", 5) {
		t.Fatal("awaitStored reported version 5 stored while the store holds 3")
	}
	if n := st.asked.Load(); n < 2 || n > 20 {
		t.Errorf("asked the store %d times in 100 ms, want a few (a backoff, no busy loop)", n)
	}
	if a.stored.waiting() {
		t.Error("a waiter is left registered after the wait ended")
	}

	// The sink writes version 6 and announces it while the request waits.
	go func() {
		for !a.stored.waiting() {
			time.Sleep(time.Millisecond)
		}
		st.version.Store(6)
		a.stored.written("INC-x-1", 6)
	}()
	if !a.awaitStored(t.Context(), "INC-x-1", 5) {
		t.Fatal("awaitStored did not see version 6 stored")
	}
}

// The watch wakes only the waiters of the written incident at or below the written version,
// and forgets every waiter when its request is done.
func TestActionStoreWatch(t *testing.T) {
	t.Parallel()
	var w storeWatch
	five, cancel5 := w.wait("INC-a", 5)
	other, cancelOther := w.wait("INC-b", 1)
	w.written("INC-a", 4)
	select {
	case <-five:
		t.Fatal("woken by version 4 while waiting for 5")
	default:
	}
	w.written("INC-a", 7)
	w.written("INC-a", 8) // a second write does not close twice
	select {
	case <-five:
	default:
		t.Fatal("not woken by version 7 while waiting for 5")
	}
	select {
	case <-other:
		t.Fatal("a write of INC-a woke a waiter of INC-b")
	default:
	}
	cancel5()
	cancelOther()
	if w.waiting() || len(w.waiters) != 0 {
		t.Errorf("waiters left after every request ended: %+v", w.waiters)
	}
}
