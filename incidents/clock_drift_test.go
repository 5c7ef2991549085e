package incidents_test

import (
	"testing"
	"time"

	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/incidents"
	"github.com/urbanbrain/urbanbrain/incidents/incidentstest"
)

// TestRefusedExtensionKeepsTheWarningLead is the regression test for the warning lead that
// drifted from 24 to 36 minutes after a refused extension: an approved extension of 1 h had
// lengthened the clock's limit from 2 h to 3 h, and the next resume took its lead (the last
// fifth) from that. Whatever the clock went through — pauses, approvals, refusals — warn_at is
// due_at minus the stage's configured lead, the warning fires then, and limit_seconds stays the
// configured limit. A red 0202 (emergency: wall clock) has a 2 h handle limit, so a 24 min lead.
func TestRefusedExtensionKeepsTheWarningLead(t *testing.T) {
	t.Parallel()
	const (
		limit = 2 * time.Hour
		lead  = 24 * time.Minute // 20 % of 2 h
	)
	type decision struct {
		approve bool
		extend  string
	}
	cases := []struct {
		name  string
		steps []decision
	}{
		{"refused", []decision{{false, "1h"}}},
		{"approved then refused", []decision{{true, "1h"}, {false, "1h"}}},
		{"refused twice", []decision{{false, "2h"}, {false, "30m"}}},
		{"approved twice then refused", []decision{{true, "1h"}, {true, "30m"}, {false, "3h"}}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := busyGrid(t)
			s := newScenario(t, c)
			s.At(0).Push(incidentstest.Call("T-drift-"+string(rune('a'+i)), "0202", red, "地下通道积水", "13900000070", c.g.Centroid, c.area))
			id := s.Open().ID
			w := byID(s.Get(id).Assignment.WorkerID, c)
			s.At(time.Minute)
			inc := s.WantOK(cmd(id, event.ActionAccept, w))
			checkLead(t, "accept", inc.Clock, limit, lead)

			at := time.Minute
			for n, step := range tc.steps {
				at += 10 * time.Minute
				s.At(at)
				req := withReason(cmd(id, event.ActionRequestExtension, w), "等待抽水车")
				req.ExtendBy = step.extend
				s.WantOK(req)
				at += 5 * time.Minute
				s.At(at)
				decide := withReason(cmd(id, event.ActionRefuseExtension, chief), "今日完成")
				if step.approve {
					decide = cmd(id, event.ActionApproveExtension, chief)
				}
				inc = s.WantOK(decide)
				checkLead(t, decide.Action+" #"+string(rune('1'+n)), inc.Clock, limit, lead)
			}

			// The warning fires lead before the due time, not earlier.
			warn, due := inc.Clock.WarnAt.Sub(s.Start), inc.Clock.DueAt.Sub(s.Start)
			s.At(due - time.Second)
			s.WantNoChange(id, incidents.ActionSLAWarning, 0, warn-time.Second)
			s.WantChange(id, incidents.ActionSLAWarning, warn, warn+s.Step)
		})
	}
}

// checkLead wants a running clock that warns lead before it is due, on its configured limit.
func checkLead(t *testing.T, after string, c *event.Clock, limit, lead time.Duration) {
	t.Helper()
	switch {
	case c == nil:
		t.Fatalf("after %s: no clock", after)
	case !c.PausedAt.IsZero():
		t.Fatalf("after %s: clock still paused %+v", after, c)
	case c.DueAt.Sub(c.WarnAt) != lead:
		t.Errorf("after %s: warn_at %s is %s before due_at %s, want %s", after, c.WarnAt, c.DueAt.Sub(c.WarnAt), c.DueAt, lead)
	}
	if got := time.Duration(c.LimitSeconds) * time.Second; got != limit {
		t.Errorf("after %s: limit_seconds %s, want the configured %s", after, got, limit)
	}
}
