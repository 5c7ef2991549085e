package web_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/urbanbrain/urbanbrain/app"
	"github.com/urbanbrain/urbanbrain/auth"
	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/simulate/people"
	"github.com/urbanbrain/urbanbrain/web/webtest"
)

// Every screen on a living demo city — simulated traffic, and simulated people working the
// incidents through the API — as each user sees it: the pages render it with no script error,
// no CSP refusal and no accessibility problem. The screenshots (test-artifacts/screens/) are
// the ones docs/screens.md shows.
func TestEveryScreenOnTheLivingDemoCity(t *testing.T) {
	city := webtest.Start(t, func(c *app.Config) { c.Demo, c.SimulateRate = true, 30 })
	sim, err := people.New(people.Config{BaseURL: city.Base, Pace: 120}, city.App.City(), city.App.Issuer(), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = sim.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	// Wait for a city at work: incidents in several states, some of them a worker's.
	operatorToken := city.Token(auth.Claims{Subject: "screens", Role: auth.RoleOperator})
	var list struct {
		Incidents []event.Incident `json:"incidents"`
	}
	webtest.Eventually(t, 120*time.Second, "a city at work", func() bool {
		city.Do(http.MethodGet, "/api/v1/incidents?limit=500", operatorToken, nil, &list)
		states := map[event.Status]int{}
		for _, inc := range list.Incidents {
			states[inc.Status]++
		}
		return len(list.Incidents) >= 40 && states[event.StatusInProgress]+states[event.StatusAccepted] > 0 && states[event.StatusResolved]+states[event.StatusClosed] > 0
	})
	busiest := map[string]int{}
	for _, inc := range list.Incidents {
		if w := inc.Assignment.WorkerID; w != "" && inc.Status.Open() {
			busiest[w]++
		}
	}
	worker, most := "", 0
	for w, n := range busiest {
		if n > most && w[0] == 'W' {
			worker, most = w, n
		}
	}

	check := func(b *webtest.Browser, page string) {
		t.Helper()
		if p := b.Accessibility(); len(p) > 0 {
			t.Errorf("%s: accessibility: %v", page, p)
		}
		if p := b.Problems(); len(p) > 0 {
			t.Errorf("%s: page problems: %v", page, p)
		}
	}

	leader := city.User("demo-leader", auth.RoleViewer, nil)
	b := webtest.NewBrowser(t, webtest.Wall)
	b.SignIn(city.Base, leader, "/")
	b.WaitFor("the wall screen live", "window.urbanbrainCockpit && urbanbrainCockpit().live && urbanbrainCockpit().incidents >= 20", 60*time.Second)
	time.Sleep(2 * time.Second) // the map's heat and the tiles settle
	b.Screenshot("../test-artifacts/screens/wall.png")
	if p := b.Problems(); len(p) > 0 {
		t.Errorf("wall: page problems: %v", p)
	}

	operator := city.User("demo-operator", auth.RoleOperator, nil)
	b = webtest.NewBrowser(t, webtest.Wall)
	b.SignIn(city.Base, operator, "/desk/")
	b.WaitFor("the queue", "document.querySelectorAll('#queue li').length >= 10", 60*time.Second)
	b.Screenshot("../test-artifacts/screens/desk-queue.png")
	check(b, "desk queue")
	// The queue redraws as the city changes, so the click is the page's own, in one step.
	webtest.Eval[bool](b, `(document.querySelector('#queue li button').click(), true)`)
	b.WaitFor("the incident page", "document.getElementById('inc-title') !== null", 20*time.Second)
	time.Sleep(time.Second)
	b.Screenshot("../test-artifacts/screens/desk-incident.png")
	check(b, "desk incident")

	if worker != "" {
		acct := city.User(worker, auth.RoleWorker, nil)
		b = webtest.NewBrowser(t, webtest.Phone)
		b.SignIn(city.Base, acct, "/m/")
		b.WaitFor("the worker's tasks", "document.querySelectorAll('#tasks li').length >= 1", 60*time.Second)
		b.Screenshot("../test-artifacts/screens/m-tasks.png")
		check(b, "worker app")
	} else {
		t.Errorf("no roster worker has an open task after the city ran: %v", busiest)
	}

	author := city.User("demo-author", auth.RoleRuleAuthor, nil)
	b = webtest.NewBrowser(t, webtest.Wall)
	b.SignIn(city.Base, author, "/rules/")
	b.WaitFor("the rule list with counters", "document.querySelectorAll('#rules li').length >= 3", 60*time.Second)
	b.Screenshot("../test-artifacts/screens/rules-list.png")
	check(b, "rule studio")
}
