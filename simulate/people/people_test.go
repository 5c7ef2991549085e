package people

import (
	"context"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/urbanbrain/urbanbrain/auth"
	"github.com/urbanbrain/urbanbrain/city"
)

// The people are clients of the API: nothing of the processing path may be linked into them,
// or they could reach around the API (and its roles, scopes and rate limits).
func TestPeopleImportNothingOfTheProcessingPath(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool on PATH to list the package's imports")
	}
	out, err := exec.Command(goTool, "list", "-deps", "-f", "{{.ImportPath}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	const module = "github.com/urbanbrain/urbanbrain/"
	allowed := []string{"auth", "city", "event", "simulate/people"}
	var deps int
	for _, p := range strings.Fields(string(out)) {
		rel, ok := strings.CutPrefix(p, module)
		if !ok {
			continue
		}
		deps++
		if !slices.Contains(allowed, rel) {
			t.Errorf("simulate/people depends on %s; it may use only %v (the API's contract, the roster and tokens)", p, allowed)
		}
		for _, banned := range []string{"incidents", "storage", "transport"} {
			if rel == banned || strings.HasPrefix(rel, banned+"/") {
				t.Errorf("simulate/people imports %s: the people must act through the HTTP API only", p)
			}
		}
	}
	if deps < 2 {
		t.Fatalf("go list found %d packages of the module; the check saw nothing", deps)
	}
}

type fakeIssuer struct {
	mu     sync.Mutex
	issued []auth.Claims
}

func (f *fakeIssuer) Issue(c auth.Claims, ttl time.Duration) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.issued = append(f.issued, c)
	return "tok-" + c.Subject, nil
}

// A 429 is waited out as long as its Retry-After says, then the request goes again.
func TestClientWaitsOutRetryAfter(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var at []time.Time
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		at = append(at, time.Now())
		n := len(at)
		mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer tok-W-1" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if n == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = w.Write([]byte(`{"code":"rate_limited","error":"slow down"}`))
			return
		}
		_, _ = w.Write([]byte(`{"count":0,"tasks":[]}`))
	}))
	defer srv.Close()
	var limited int
	c := &client{base: srv.URL, hc: srv.Client(), issuer: &fakeIssuer{}, sem: make(chan struct{}, 1), now: time.Now,
		limited: func() { limited++ }}
	id := &identity{claims: auth.Claims{Subject: "W-1", Role: auth.RoleWorker}}
	var out map[string]any
	if err := c.do(context.Background(), id, http.MethodGet, "/api/v1/me/tasks", nil, &out); err != nil {
		t.Fatalf("do: %v", err)
	}
	if len(at) != 2 || limited != 1 {
		t.Fatalf("%d requests, %d rate-limited; want 2 and 1", len(at), limited)
	}
	if gap := at[1].Sub(at[0]); gap < time.Second {
		t.Errorf("retried %v after the 429; Retry-After said 1s", gap)
	}
}

// A refusal of the API is a person's step refused, not a failure of the simulator.
func TestClientRefusalIsTyped(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusConflict)
		_, _ = w.Write([]byte(`{"code":"illegal_transition","error":"accept from resolved"}`))
	}))
	defer srv.Close()
	c := &client{base: srv.URL, hc: srv.Client(), issuer: &fakeIssuer{}, sem: make(chan struct{}, 1), now: time.Now}
	err := c.do(context.Background(), &identity{claims: auth.Claims{Subject: "W-1", Role: auth.RoleWorker}},
		http.MethodPost, "/api/v1/incidents/INC-1/actions", command{Action: "accept"}, nil)
	if !refused(err) || !strings.Contains(err.Error(), "illegal_transition") {
		t.Fatalf("err = %v; want a refusal with its code", err)
	}
}

// Tokens are one per person, with the person's role and scope, and renewed before they expire.
func TestTokensArePerPersonAndRenewed(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	iss := &fakeIssuer{}
	c := &client{issuer: iss, now: func() time.Time { return now }}
	id := &identity{claims: auth.Claims{Subject: "W-1", Role: auth.RoleWorker, Grids: []string{"g1"}}}
	for range 3 {
		if _, err := c.token(id); err != nil {
			t.Fatal(err)
		}
	}
	if len(iss.issued) != 1 {
		t.Fatalf("issued %d tokens for three requests in a row; want 1", len(iss.issued))
	}
	now = now.Add(tokenTTL * 3 / 4)
	if _, err := c.token(id); err != nil {
		t.Fatal(err)
	}
	if len(iss.issued) != 2 {
		t.Fatalf("issued %d tokens after three quarters of the life; want a renewal", len(iss.issued))
	}
}

// The roster becomes people: every grid worker a worker token scoped to their grids, every
// community supervisor and street duty post a supervisor token of their district, and the
// office's three desks; nobody shares a subject.
func TestPeopleFromTheRoster(t *testing.T) {
	t.Parallel()
	m, err := city.LoadDemo()
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{BaseURL: "http://127.0.0.1:1"}, m, &fakeIssuer{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	subjects := s.Subjects()
	seen := map[string]bool{}
	for _, sub := range subjects {
		if seen[sub] {
			t.Errorf("subject %s twice", sub)
		}
		seen[sub] = true
	}
	var workers, supervisors, posts int
	for _, a := range s.assignees {
		c := a.id.claims
		switch {
		case c.Role == auth.RoleWorker:
			workers++
			w, ok := m.Worker(c.Subject)
			if !ok || !slices.Equal(w.Grids, c.Grids) || len(c.Grids) == 0 {
				t.Errorf("worker token %+v does not match the roster", c)
			}
		case strings.HasPrefix(c.Subject, "SS-"):
			posts++
		case c.Role == auth.RoleSupervisor:
			supervisors++
		}
		if c.Role == auth.RoleSupervisor && c.District == "" {
			t.Errorf("%s: a field supervisor's token must be scoped to a district", c.Subject)
		}
	}
	if workers == 0 || supervisors != len(m.Communities()) || posts != len(m.Streets()) {
		t.Errorf("%d workers, %d community supervisors, %d street posts; want some, %d, %d",
			workers, supervisors, posts, len(m.Communities()), len(m.Streets()))
	}
	for _, want := range []string{"sim-operator", "sim-supervisor", "sim-12345-callback"} {
		if !seen[want] {
			t.Errorf("no %s among %d subjects", want, len(subjects))
		}
	}
}

// Pace compresses human time: at 60, a 4-minute median sign-for takes about 4 s.
func TestPaceCompressesHumanTime(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	p := pace(60)
	var d []time.Duration
	for range 2001 {
		d = append(d, p.draw(rng, signFor))
	}
	slices.Sort(d)
	if median := d[len(d)/2]; median < 3500*time.Millisecond || median > 4500*time.Millisecond {
		t.Errorf("median sign-for at pace 60 = %v; want about 4s", median)
	}
	if longest := d[len(d)-1]; longest > 6*4*time.Second {
		t.Errorf("longest sign-for %v; want it cut at 6× the median", longest)
	}
	if got := pace(3600).wall(onDutyCheck, minWallBetween); got != minWallBetween {
		t.Errorf("polling at pace 3600 every %v; want the floor %v", got, minWallBetween)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no url", Config{Pace: 60, MaxInFlight: 1}, "BaseURL"},
		{"negative pace", Config{BaseURL: "http://x:1", Pace: -1, MaxInFlight: 1}, "Pace"},
		{"too fast", Config{BaseURL: "http://x:1", Pace: 10000, MaxInFlight: 1}, "Pace"},
	} {
		err := tc.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Validate() = %v; want an error about %s", tc.name, err, tc.want)
		}
	}
}
