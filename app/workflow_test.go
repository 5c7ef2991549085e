package app

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/urbanbrain/urbanbrain/api"
	"github.com/urbanbrain/urbanbrain/auth"
	"github.com/urbanbrain/urbanbrain/event"
)

// The work-order loop over HTTP on the whole system: a 12345 ticket is dispatched; the worker
// finds it in "my tasks", is refused a return without a reason, returns it with one; dispatch
// sends it elsewhere; the timeline shows the return and the refusal (from the audit log).
func TestWorkerReturnsATaskOverHTTP(t *testing.T) {
	r := start(t, t.TempDir(), freeAddr(t))
	grid := r.app.City().Grids()[11]
	producer := r.token(auth.Claims{Subject: "p", Role: auth.RoleIngest})
	operator := r.token(auth.Claims{Subject: "op", Role: auth.RoleOperator})

	ticket := hotlineTicket("T-wf-1", event.RequestComplaint, "0301", "垃圾桶满了好几天没人清运", "13900009999", grid.Centroid)
	if code := r.do("POST", "/api/v1/events", producer, ticket, nil); code != http.StatusOK && code != http.StatusAccepted {
		t.Fatalf("POST event: %d", code)
	}
	var inc event.Incident
	eventually(t, 60*time.Second, "the ticket to be dispatched", func() bool {
		var l incidentList
		r.do("GET", "/api/v1/incidents?status=dispatched&grid="+grid.Code, operator, nil, &l)
		if l.Count == 1 {
			inc = l.Incidents[0]
		}
		return l.Count == 1
	})
	first := inc.Assignment.WorkerID
	worker := r.token(auth.Claims{Subject: first, Role: auth.RoleWorker, Grids: []string{grid.Code}})

	var tasks struct {
		Tasks []event.Incident `json:"tasks"`
		Count int              `json:"count"`
	}
	if code := r.do("GET", "/api/v1/me/tasks", worker, nil, &tasks); code != http.StatusOK || tasks.Count != 1 || tasks.Tasks[0].ID != inc.ID {
		t.Fatalf("my tasks: %d %+v; want the dispatched incident", code, tasks)
	}
	if c := tasks.Tasks[0].Clock; c == nil || c.Stage != event.StageSignFor || c.DueAt.IsZero() {
		t.Errorf("task clock %+v, want the sign-for clock", c)
	}
	if code := r.do("POST", "/api/v1/incidents/"+inc.ID+"/actions", worker, map[string]string{"action": event.ActionReturn}, nil); code != http.StatusUnprocessableEntity {
		t.Errorf("return without a reason: %d, want 422", code)
	}
	var res event.CommandResult
	body := map[string]string{"action": event.ActionReturn, "reason": "属物业管理区域"}
	if code := r.do("POST", "/api/v1/incidents/"+inc.ID+"/actions", worker, body, &res); code != http.StatusOK || res.Incident.Status != event.StatusReturned {
		t.Fatalf("return: %d %+v", code, res)
	}
	eventually(t, 60*time.Second, "the return to be re-dispatched elsewhere", func() bool {
		var d struct {
			Incident event.Incident `json:"incident"`
		}
		r.do("GET", "/api/v1/incidents/"+inc.ID, operator, nil, &d)
		return d.Incident.Status == event.StatusDispatched && d.Incident.Assignment.WorkerID != first && d.Incident.Assignment.WorkerID != ""
	})
	var tl struct {
		Timeline []api.TimelineItem `json:"timeline"`
	}
	eventually(t, 60*time.Second, "the refusal in the timeline", func() bool {
		tl.Timeline = nil
		r.do("GET", "/api/v1/incidents/"+inc.ID+"/timeline", operator, nil, &tl)
		var kinds []string
		for _, it := range tl.Timeline {
			kinds = append(kinds, it.Kind+":"+it.Action)
		}
		return slices.Contains(kinds, "refused:return") && slices.Contains(kinds, "change:return") &&
			slices.Index(kinds, "refused:return") < slices.Index(kinds, "change:return")
	})
	// The worker no longer holds it: not in their tasks, and not theirs to act on.
	if code := r.do("GET", "/api/v1/me/tasks", worker, nil, &tasks); code != http.StatusOK || tasks.Count != 0 {
		t.Errorf("my tasks after the return: %+v; want none", tasks)
	}
	if code := r.do("POST", "/api/v1/incidents/"+inc.ID+"/actions", worker, map[string]string{"action": event.ActionAccept}, nil); code != http.StatusForbidden {
		t.Errorf("accept after returning: %d, want 403", code)
	}

	// 并单 and 拆单 over their endpoints: a second ticket of another category on the same spot
	// is merged into the first incident, then split out again.
	second := hotlineTicket("T-wf-2", event.RequestComplaint, "0302", "门口占道摆摊", "13900008888", grid.Centroid)
	if code := r.do("POST", "/api/v1/events", producer, second, nil); code != http.StatusOK && code != http.StatusAccepted {
		t.Fatalf("POST event: %d", code)
	}
	var other event.Incident
	eventually(t, 60*time.Second, "the second ticket's incident", func() bool {
		var l incidentList
		r.do("GET", "/api/v1/incidents?category=0302&grid="+grid.Code, operator, nil, &l)
		if l.Count == 1 {
			other = l.Incidents[0]
		}
		return l.Count == 1
	})
	if code := r.do("POST", "/api/v1/incidents/"+inc.ID+"/merge", worker, map[string]string{"source": other.ID, "reason": "同一处"}, nil); code != http.StatusForbidden && code != http.StatusNotFound {
		t.Errorf("a worker merging: %d, want refused", code)
	}
	if code := r.do("POST", "/api/v1/incidents/"+inc.ID+"/merge", operator, map[string]string{"source": other.ID, "reason": "同一处", "bogus": "x"}, nil); code != http.StatusBadRequest {
		t.Errorf("merge with an unknown field: %d, want 400", code)
	}
	res = event.CommandResult{}
	if code := r.do("POST", "/api/v1/incidents/"+inc.ID+"/merge", operator, map[string]string{"source": other.ID, "reason": "同一处"}, &res); code != http.StatusOK || res.Incident.ReportCount != 2 {
		t.Fatalf("merge: %d %+v", code, res)
	}
	res = event.CommandResult{}
	if code := r.do("POST", "/api/v1/incidents/"+inc.ID+"/split", operator, map[string]string{"event_id": "T-wf-2", "reason": "不是同一问题"}, &res); code != http.StatusOK || res.Incident.ReportCount != 1 {
		t.Fatalf("split: %d %+v", code, res)
	}
	eventually(t, 60*time.Second, "the merged incident and the split-off one in the store", func() bool {
		var d struct {
			Incident event.Incident `json:"incident"`
		}
		r.do("GET", "/api/v1/incidents/"+other.ID, operator, nil, &d)
		var l incidentList
		r.do("GET", "/api/v1/incidents?category=0302&open=true", operator, nil, &l)
		return d.Incident.Status == event.StatusMerged && d.Incident.MergedInto == inc.ID && l.Count == 1 && l.Incidents[0].ID != other.ID
	})
}
