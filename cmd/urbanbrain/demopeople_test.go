package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/urbanbrain/urbanbrain/app"
	"github.com/urbanbrain/urbanbrain/auth"
	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/simulate/people"
)

// `serve --demo` with its simulated people: within a short run at a fast pace, incidents go
// round the whole loop (dispatched → accepted → in_progress → resolved → verified → closed),
// 12345 callers are called back (回访), every stage KPI has values, and every change was made by the system or by one of the
// people's own tokens — they act through the API and nothing else.
func TestDemoPeopleWorkTheWholeLoop(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the demo for about a minute")
	}
	cfg := app.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.BrokerListen = freeAddr(t)
	cfg.Partitions = 3
	cfg.Demo = true
	cfg.SimulateRate = 10
	log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	a, err := app.New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 2)
	go func() { done <- a.Run(ctx) }()
	pcfg := people.Config{Pace: 120, Seed: 7, ReportEvery: -1}
	go func() { done <- demoPeople(ctx, a, pcfg, log.Named("people")) }()
	t.Cleanup(func() {
		cancel()
		for range 2 {
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("stop: %v", err)
				}
			case <-time.After(60 * time.Second):
				t.Error("the demo did not stop within 60s")
				return
			}
		}
	})
	for !a.Ready() {
		if ctx.Err() != nil {
			t.Fatal("cancelled")
		}
		time.Sleep(100 * time.Millisecond)
	}
	base := "http://" + a.HTTPAddr()
	admin, err := a.Issuer().Issue(auth.Claims{Subject: "test-reader", Role: auth.RoleAdmin}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	var get func(path string, out any)
	get = func(path string, out any) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		req.Header.Set("Authorization", "Bearer "+admin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode == http.StatusTooManyRequests { // the reader has a rate limit too
			time.Sleep(time.Second)
			get(path, out)
			return
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
		}
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
	}

	// The same roster makes the same people: their subjects are who may appear as actors.
	sim, err := people.New(people.Config{BaseURL: base}, a.City(), a.Issuer(), nil)
	if err != nil {
		t.Fatal(err)
	}
	actors := append(sim.Subjects(), event.SystemActor.Subject)

	type stage struct {
		Stage     string `json:"stage"`
		Completed int    `json:"completed"`
		MeanMS    int64  `json:"mean_ms"`
	}
	var kpis struct {
		Stages []stage `json:"stages"`
	}
	// Every stage the API reports (the loop's: dispatch, sign-for, handle, verify, resolve;
	// their names are the API's business) must have values.
	empty := func() []string {
		var out []string
		for _, st := range kpis.Stages {
			if st.Completed == 0 || st.MeanMS <= 0 {
				out = append(out, st.Stage)
			}
		}
		if len(kpis.Stages) < 5 {
			out = append(out, fmt.Sprintf("(only %d stages)", len(kpis.Stages)))
		}
		return out
	}
	var closed struct {
		Incidents []event.Incident `json:"incidents"`
	}
	// Waits for the pipeline and the people to get there; it asserts no timing.
	deadline := time.Now().Add(4 * time.Minute)
	for {
		get("/api/v1/kpis", &kpis)
		get("/api/v1/incidents?status=closed&limit=1000", &closed)
		calledBack := slices.ContainsFunc(closed.Incidents, func(inc event.Incident) bool { return inc.Callback != "" })
		if len(empty()) == 0 && len(closed.Incidents) >= 3 && calledBack {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 4 minutes: stage KPIs without values %v, %d incidents closed, 12345 called back: %v; kpis %+v",
				empty(), len(closed.Incidents), calledBack, kpis.Stages)
		}
		time.Sleep(2 * time.Second)
	}
	t.Logf("stages %+v; %d closed", kpis.Stages, len(closed.Incidents))

	type item struct {
		Kind   string       `json:"kind"`
		Action string       `json:"action"`
		Actor  event.Actor  `json:"actor"`
		From   event.Status `json:"from"`
		To     event.Status `json:"to"`
	}
	var timelines int
	var wholeLoop []string
	checkActors := func(id string) []item {
		var tl struct {
			Timeline []item `json:"timeline"`
		}
		get("/api/v1/incidents/"+url.PathEscape(id)+"/timeline", &tl)
		timelines++
		for _, it := range tl.Timeline {
			if !slices.Contains(actors, it.Actor.Subject) {
				t.Errorf("%s: %s %s by %q, who is neither the system nor a simulated person", id, it.Kind, it.Action, it.Actor.Subject)
			}
		}
		return tl.Timeline
	}
	path := []event.Status{event.StatusDispatched, event.StatusAccepted, event.StatusInProgress,
		event.StatusResolved, event.StatusVerified, event.StatusClosed}
	for _, inc := range closed.Incidents {
		var went []event.Status
		for _, it := range checkActors(inc.ID) {
			if it.Kind == "change" && it.To != it.From && (len(went) == 0 || went[len(went)-1] != it.To) {
				went = append(went, it.To)
			}
		}
		if i := slices.Index(went, event.StatusDispatched); i >= 0 && len(went) >= i+len(path) &&
			slices.Equal(went[i:i+len(path)], path) {
			wholeLoop = append(wholeLoop, inc.ID)
		}
	}
	if len(wholeLoop) == 0 {
		t.Fatalf("none of %d closed incidents went dispatched → accepted → in_progress → resolved → verified → closed", len(closed.Incidents))
	}
	// Open incidents too, wherever they are in the loop.
	var open struct {
		Incidents []event.Incident `json:"incidents"`
	}
	get("/api/v1/incidents?open=true&limit=60", &open)
	for _, inc := range open.Incidents {
		checkActors(inc.ID)
	}
	t.Logf("%d incidents went round the whole loop; actors checked on %d timelines", len(wholeLoop), timelines)

	// The wall screen's stage tiles (派遣/签收/处置/核查) come from the cockpit's KPI frames.
	viewer, err := a.Issuer().Issue(auth.Claims{Subject: "test-wall", Role: auth.RoleViewer}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+a.HTTPAddr()+"/ws/cockpit?kpi=1&access_token="+viewer, nil)
	if err != nil {
		t.Fatalf("cockpit websocket: %v", err)
	}
	defer ws.Close()
	_ = ws.SetReadDeadline(time.Now().Add(30 * time.Second))
	for {
		var frame struct {
			Type string `json:"type"`
			KPI  struct {
				Stages map[string]struct {
					Count int `json:"count"`
				} `json:"stages"`
			} `json:"kpi"`
		}
		if err := ws.ReadJSON(&frame); err != nil {
			t.Fatalf("no KPI frame: %v", err)
		}
		if frame.Type != "kpi" {
			continue
		}
		// 派遣, 签收, 处置, 核查: whatever the stages are called, each has a count.
		if len(frame.KPI.Stages) < 4 {
			t.Errorf("the wall screen has %d stage KPIs; want the loop's four: %+v", len(frame.KPI.Stages), frame.KPI.Stages)
		}
		for name, st := range frame.KPI.Stages {
			if st.Count == 0 {
				t.Errorf("the wall screen's %s KPI is empty: %+v", name, frame.KPI.Stages)
			}
		}
		break
	}
}

// freeAddr reserves a loopback port for the embedded broker.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// docs/operations.md documents every flag of `serve`, the demo's own included (app's test
// covers app.Config's; this one the flags serve adds).
func TestOperationsDocsListServeFlags(t *testing.T) {
	doc, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	var fs *flag.FlagSet = serveCommand(io.Discard, io.Discard).FlagSet
	n := 0
	fs.VisitAll(func(f *flag.Flag) {
		n++
		if f.Name == "config" {
			return // described in the prose on configuration sources, not a setting of its own
		}
		if !strings.Contains(string(doc), fmt.Sprintf("| `--%s` |", f.Name)) {
			t.Errorf("docs/operations.md does not document --%s", f.Name)
		}
	})
	if n < 20 {
		t.Fatalf("serve has only %d flags; the flag set was not found", n)
	}
}
