package people

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/urbanbrain/urbanbrain/auth"
	"github.com/urbanbrain/urbanbrain/city"
	"github.com/urbanbrain/urbanbrain/event"
)

// Config configures the simulated people.
type Config struct {
	// BaseURL is the API, e.g. http://127.0.0.1:8080.
	BaseURL string
	// Pace is how many seconds of the people's time pass in one wall second: 1 is real life,
	// 60 (the default) makes a minute of theirs a second, so a 10-minute demo shows hours of
	// work and the whole loop many times over.
	Pace float64
	// Seed makes the people's choices reproducible (not the city's traffic, nor timing).
	Seed uint64
	// MaxInFlight bounds the requests all people have on the server at once (default 8).
	MaxInFlight int
	// HTTPClient is the client to use (default: one with a connection pool for MaxInFlight).
	HTTPClient *http.Client
	// Now is the clock for deciding who is on duty and when steps are due (default time.Now).
	Now func() time.Time
	// ReportEvery is how often a summary line is logged (default 1 minute; negative: never).
	ReportEvery time.Duration
}

// DefaultPace is Config.Pace's default.
const DefaultPace = 60

func (c *Config) setDefaults() {
	if c.Pace == 0 {
		c.Pace = DefaultPace
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = 8
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{
			Timeout:   time.Minute,
			Transport: &http.Transport{MaxIdleConnsPerHost: c.MaxInFlight, IdleConnTimeout: time.Minute},
		}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.ReportEvery == 0 {
		c.ReportEvery = time.Minute
	}
}

// Validate reports every problem with the configuration.
func (c Config) Validate() error {
	var errs []error
	if u, err := url.Parse(c.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("people: BaseURL %q: want http(s)://host:port", c.BaseURL))
	}
	if c.Pace <= 0 || c.Pace > 3600 {
		errs = append(errs, fmt.Errorf("people: Pace %v: want 0 < pace <= 3600", c.Pace))
	}
	if c.MaxInFlight < 1 {
		errs = append(errs, fmt.Errorf("people: MaxInFlight %d: want at least 1", c.MaxInFlight))
	}
	return errors.Join(errs...)
}

// Simulator is the city's people. Run drives them; it owns every goroutine it starts.
type Simulator struct {
	cfg  Config
	city *city.Map
	log  *zap.Logger
	api  *client
	pace pace

	assignees []*assignee
	office    *office

	stats stats
}

// New builds the people from the city's roster: every grid worker and community supervisor
// with their own token, each street's duty post (街道监督员, "SS-<street>", as
// docs/workflow.md names it), and the command centre's operator, supervisor and call-back desk.
func New(cfg Config, c *city.Map, issuer Issuer, log *zap.Logger) (*Simulator, error) {
	cfg.setDefaults()
	var errs []error
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c == nil {
		errs = append(errs, errors.New("people: nil city"))
	}
	if issuer == nil {
		errs = append(errs, errors.New("people: nil Issuer"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	s := &Simulator{cfg: cfg, city: c, log: log, pace: pace(cfg.Pace)}
	s.api = &client{
		base:    strings.TrimRight(cfg.BaseURL, "/"),
		hc:      cfg.HTTPClient,
		issuer:  issuer,
		sem:     make(chan struct{}, cfg.MaxInFlight),
		now:     cfg.Now,
		limited: func() { s.stats.rateLimited.Add(1) },
	}
	seed := cfg.Seed
	next := func() *rand.Rand { seed++; return rand.New(rand.NewPCG(cfg.Seed, seed)) }

	districtOf := map[string]string{} // street or community → district
	for _, st := range c.Streets() {
		districtOf[st.Code] = st.Parent
	}
	for _, cm := range c.Communities() {
		districtOf[cm.Code] = districtOf[cm.Parent]
	}
	seen := map[string]bool{}
	for _, g := range c.Grids() {
		for _, w := range c.Workers(g.Code) {
			if seen[w.ID] || w.Role != city.RoleWorker {
				continue
			}
			seen[w.ID] = true
			claims := auth.Claims{Subject: w.ID, Role: auth.RoleWorker, Grids: slices.Clone(w.Grids)}
			s.assignees = append(s.assignees, s.newAssignee(claims, w, next()))
		}
	}
	for _, cm := range c.Communities() {
		w, ok := c.Supervisor(cm.Code)
		if !ok || seen[w.ID] {
			continue
		}
		seen[w.ID] = true
		claims := auth.Claims{Subject: w.ID, Role: auth.RoleSupervisor, District: districtOf[cm.Code]}
		s.assignees = append(s.assignees, s.newAssignee(claims, w, next()))
	}
	for _, st := range c.Streets() {
		post := city.StreetPost(st.Code, st.Name)
		claims := auth.Claims{Subject: post.ID, Role: auth.RoleSupervisor, District: st.Parent}
		a := s.newAssignee(claims, post, next())
		a.neverReturns = true // the end of the line for returns (docs/workflow.md)
		s.assignees = append(s.assignees, a)
	}
	s.office = &office{
		sim:        s,
		operator:   &identity{claims: auth.Claims{Subject: "sim-operator", Role: auth.RoleOperator}},
		supervisor: &identity{claims: auth.Claims{Subject: "sim-supervisor", Role: auth.RoleSupervisor}},
		callbacks:  &identity{claims: auth.Claims{Subject: "sim-12345-callback", Role: auth.RoleOperator}},
		seed:       next,
	}
	return s, nil
}

// Subjects are the token subjects the people act as: every change they make carries one.
func (s *Simulator) Subjects() []string {
	out := make([]string, 0, len(s.assignees)+3)
	for _, a := range s.assignees {
		out = append(out, a.id.claims.Subject)
	}
	for _, id := range s.office.identities() {
		out = append(out, id.claims.Subject)
	}
	return out
}

// Run drives every person until ctx is done. It returns nil then; only a broken setup is an
// error, since a refused step is part of a day's work.
func (s *Simulator) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	for _, a := range s.assignees {
		g.Go(func() error { return a.run(ctx) })
	}
	g.Go(func() error { return s.office.run(ctx) })
	if s.cfg.ReportEvery > 0 {
		g.Go(func() error { return s.report(ctx) })
	}
	s.log.Info("simulated people at work",
		zap.Int("assignees", len(s.assignees)), zap.Float64("pace", s.cfg.Pace), zap.String("api", s.api.base))
	err := g.Wait()
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// stats counts what the people did, by action, for the summary line and tests.
type stats struct {
	mu          sync.Mutex
	done        map[string]int // action → successful commands
	refusedN    atomic.Int64
	failed      atomic.Int64
	rateLimited atomic.Int64
	polls       atomic.Int64
}

func (st *stats) add(action string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.done == nil {
		st.done = map[string]int{}
	}
	st.done[action]++
}

// Done returns how many commands of each action the people have had accepted so far.
func (s *Simulator) Done() map[string]int {
	s.stats.mu.Lock()
	defer s.stats.mu.Unlock()
	out := make(map[string]int, len(s.stats.done))
	for k, v := range s.stats.done {
		out[k] = v
	}
	return out
}

func (s *Simulator) report(ctx context.Context) error {
	t := time.NewTicker(s.cfg.ReportEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		done := s.Done()
		fields := []zap.Field{zap.Int64("refused", s.stats.refusedN.Load()), zap.Int64("failed", s.stats.failed.Load()),
			zap.Int64("rate_limited", s.stats.rateLimited.Load()), zap.Int64("polls", s.stats.polls.Load())}
		for _, a := range []string{event.ActionAccept, event.ActionStart, event.ActionProgress, event.ActionResolve,
			event.ActionReturn, event.ActionRequestExtension, event.ActionApproveExtension, event.ActionRefuseExtension,
			event.ActionDispatch, event.ActionVerify, event.ActionReopen, event.ActionClose, event.ActionCallback} {
			fields = append(fields, zap.Int(a, done[a]))
		}
		s.log.Info("simulated people", fields...)
	}
}

// command is the body of POST /api/v1/incidents/{id}/actions (docs/api.md).
type command struct {
	Action     string            `json:"action"`
	ID         string            `json:"id"`
	Reason     string            `json:"reason,omitempty"`
	Note       string            `json:"note,omitempty"`
	Assignment *event.Assignment `json:"assignment,omitempty"`
	Evidence   *event.Evidence   `json:"evidence,omitempty"`
	ExtendBy   string            `json:"extend_by,omitempty"`
	Result     string            `json:"result,omitempty"`
}

// act sends one command about inc as id. The idempotency key names the incident, the action
// and the version it was decided on, so a retry after a timeout cannot apply it twice. It
// reports whether the command applied; a refusal is counted and is not an error.
func (s *Simulator) act(ctx context.Context, id *identity, inc event.Incident, c command) (bool, error) {
	c.ID = fmt.Sprintf("%s:%s:v%d", inc.ID, c.Action, inc.Version)
	var answer struct {
		OK bool `json:"ok"`
	}
	err := s.api.do(ctx, id, http.MethodPost, "/api/v1/incidents/"+url.PathEscape(inc.ID)+"/actions", c, &answer)
	switch {
	case err == nil:
		if answer.OK {
			s.stats.add(c.Action)
		}
		return answer.OK, nil
	case refused(err):
		s.stats.refusedN.Add(1)
		s.log.Debug("step refused", zap.String("who", id.claims.Subject), zap.String("incident", inc.ID),
			zap.String("action", c.Action), zap.Error(err))
		return false, nil
	case ctx.Err() != nil:
		return false, ctx.Err()
	default:
		s.stats.failed.Add(1)
		s.log.Warn("step failed", zap.String("who", id.claims.Subject), zap.String("incident", inc.ID),
			zap.String("action", c.Action), zap.Error(err))
		return false, nil
	}
}

// list answers GET path as id; the API's own errors are logged and answered with nothing.
func (s *Simulator) list(ctx context.Context, id *identity, path, field string) ([]event.Incident, error) {
	s.stats.polls.Add(1)
	var answer map[string]jsonIncidents
	if err := s.api.do(ctx, id, http.MethodGet, path, nil, &answer); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		s.stats.failed.Add(1)
		s.log.Warn("look-up failed", zap.String("who", id.claims.Subject), zap.String("path", path), zap.Error(err))
		return nil, nil
	}
	return answer[field], nil
}

// jsonIncidents decodes a list field and ignores the others ("count").
type jsonIncidents []event.Incident

func (j *jsonIncidents) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] != '[' {
		return nil
	}
	return json.Unmarshal(b, (*[]event.Incident)(j))
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
