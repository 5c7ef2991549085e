package cockpit_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/urbanbrain/urbanbrain/auth"
	"github.com/urbanbrain/urbanbrain/auth/authtest"
	cockpit "github.com/urbanbrain/urbanbrain/cockpit-ws"
	"github.com/urbanbrain/urbanbrain/event"
)

// refusedWith dials as c and expects the hub to upgrade and then close with code, giving a
// reason that contains why.
func (f *fixture) refusedWith(t *testing.T, c auth.Claims, code int, why string, q ...string) {
	t.Helper()
	ws, resp, err := websocket.DefaultDialer.Dial(f.url()+"?"+query(authtest.Token(t, f.iss, c), q...), nil)
	if err != nil {
		t.Fatalf("dial as %s: %v (%s)", c.Subject, err, body(resp))
	}
	defer ws.Close()
	_ = ws.SetReadDeadline(time.Now().Add(hangGuard))
	for {
		_, _, err = ws.ReadMessage()
		if err != nil {
			break
		}
	}
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != code || !strings.Contains(ce.Text, why) {
		t.Fatalf("%s: %v, want close %d mentioning %q", c.Subject, err, code, why)
	}
}

// Regression: one viewer token opened 4,096 sockets with distinct filters, filled the
// subscription table and locked the supervisor out with 1013. Now the token is refused past
// its own limits, with a reason it can show, and the supervisor still connects.
func TestViewerTokenCannotLockOutSupervisor(t *testing.T) {
	t.Parallel()
	f := start(t, cockpit.Config{MaxSubscriptions: 64, MaxConnections: 64, SubjectConnections: 4, SubjectSubscriptions: 3})
	// Distinct filters: the fourth subscription is refused, the three before it are in use.
	for i := range 3 {
		f.connect(t, viewer, fmt.Sprintf("district=D%d", i)).snapshot(0)
	}
	f.refusedWith(t, viewer, websocket.ClosePolicyViolation, "subscriptions", "district=D9")
	// A common filter shares a subscription; the fifth connection is refused.
	f.connect(t, viewer, "district=D0").snapshot(0)
	f.refusedWith(t, viewer, websocket.ClosePolicyViolation, "connections", "district=D0")
	waitFor(t, func() bool { return f.hub.Stats().Connections == 4 })
	if s := f.hub.Stats(); s.Subscriptions != 3 || s.Refused != 2 {
		t.Fatalf("stats %+v, want 4 connections, 3 subscriptions, 2 refused", s)
	}
	f.connect(t, supervisor, "district=D9").snapshot(0)
}

// Viewers, rule authors and workers together may hold only part of the hub: when many
// viewer tokens fill their share, the command-centre roles still have theirs.
func TestReservedShareForCommandCentre(t *testing.T) {
	t.Parallel()
	// 8 connections, a quarter reserved: 6 for the other roles.
	f := start(t, cockpit.Config{MaxConnections: 8, MaxSubscriptions: 8, ReservedShare: 0.25})
	for i := range 6 {
		v := auth.Claims{Subject: fmt.Sprintf("wall-%d", i), Role: auth.RoleViewer}
		f.connect(t, v, fmt.Sprintf("district=D%d", i)).snapshot(0)
	}
	late := auth.Claims{Subject: "wall-late", Role: auth.RoleViewer}
	f.refusedWith(t, late, websocket.CloseTryAgainLater, "role viewer")
	f.refusedWith(t, auth.Claims{Subject: "author", Role: auth.RoleRuleAuthor}, websocket.CloseTryAgainLater, "role rule_author")
	f.connect(t, supervisor, "district=D7").snapshot(0)
	f.connect(t, admin).snapshot(0)
	// The table is full now, for everyone.
	f.refusedWith(t, operator, websocket.CloseTryAgainLater, "as many connections")
}

// The subscriptions' share works the same way: with viewers holding theirs, a viewer's new
// filter is refused while an operator's is made.
func TestReservedShareOfSubscriptions(t *testing.T) {
	t.Parallel()
	f := start(t, cockpit.Config{MaxSubscriptions: 4, ReservedShare: 0.5})
	a := f.connect(t, viewer, "district=D1")
	a.snapshot(0)
	f.connect(t, auth.Claims{Subject: "wall-2", Role: auth.RoleViewer}, "district=D2").snapshot(0)
	a.send(`{"type":"subscribe","filter":{"district":["D3"]}}`)
	if e := a.expect(cockpit.FrameError); e.Code != cockpit.ErrCodeUnavailable || !strings.Contains(e.Error, "role viewer") {
		t.Fatalf("a third viewer subscription: %s", e.raw)
	}
	f.connect(t, operator, "district=D3").snapshot(0)
	f.connect(t, supervisor, "district=D4").snapshot(0)
}

// A subject at its subscription limit that changes filter gives up its own idle
// subscription, not someone else's, and is not refused.
func TestSubjectReusesItsOwnIdleSubscriptions(t *testing.T) {
	t.Parallel()
	f := start(t, cockpit.Config{SubjectSubscriptions: 2})
	other := f.connect(t, supervisor, "district=D0")
	other.snapshot(0)
	_ = other.ws.Close() // supervisor's subscription is idle now, kept for resume
	c := f.connect(t, viewer, "district=D1")
	c.snapshot(0)
	for i := 2; i < 6; i++ {
		c.send(fmt.Sprintf(`{"type":"subscribe","filter":{"district":["D%d"]}}`, i))
		c.snapshot(0) // four messages: within the subscribe rate limit's burst
	}
	waitFor(t, func() bool { return f.hub.Stats().Connections == 1 })
	if s := f.hub.Stats(); s.Subscriptions != 3 || s.Refused != 0 {
		t.Fatalf("stats %+v: want the viewer's 2 and the supervisor's idle one, nothing refused", s)
	}
}

// The frames kept for resuming are bounded across all subscriptions by HistoryBudget, not
// only per subscription: 1,000 broad filters took a server to 1.87 GB before.
func TestHistoryBudgetBoundsAllSubscriptions(t *testing.T) {
	t.Parallel()
	const budget = 64 << 10
	f := start(t, cockpit.Config{HistoryBudget: budget, SubjectSubscriptions: 100})
	for i := range 8 {
		f.connect(t, admin, fmt.Sprintf("street=%d", i)).snapshot(0)
	}
	long := strings.Repeat("积水很深，", 200)
	for v := int64(1); v <= 40; v++ {
		for i := range 8 {
			ch := incident(fmt.Sprintf("INC-%d", i), v, event.StatusNew, "D1", "G1")
			ch.Incident.Area.Street = fmt.Sprint(i)
			ch.Incident.Title = long
			f.change(t, ch)
		}
		f.flush()
	}
	if s := f.hub.Stats(); s.HistoryBytes > budget || s.HistoryBytes < budget/4 {
		t.Fatalf("history holds %d bytes, want at most the budget %d (and not far below)", s.HistoryBytes, budget)
	}
}
