// Package api is urbanbrain's HTTP API: the routing table with what each route requires, the
// handlers, their request and answer types, the catalogue of error codes, the read audit, the
// scope checks of every query, and the server's limits (timeouts, body sizes, per-token
// rates). It takes everything else as dependencies (Deps) and never reaches into the
// composition root (package app), which builds it; it never names a Kafka topic: commands
// and audit records leave as typed outputs through an Emitter, and app binds them to topics.
package api

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/urbanbrain/urbanbrain/auth"
	"github.com/urbanbrain/urbanbrain/city"
	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/objstore"
	"github.com/urbanbrain/urbanbrain/rules/authoring"
	"github.com/urbanbrain/urbanbrain/rules/engine"
	"github.com/urbanbrain/urbanbrain/storage"
)

// Config is what the handlers and the server read of the process's configuration.
type Config struct {
	API bool // serve the API and the people's pages (the api component)

	// CommandTimeout is how long a command's answer waits for its outcome, and a saved rule
	// version for this instance to read it back.
	CommandTimeout time.Duration

	ReadHeaderTimeout time.Duration // request line and headers
	ReadTimeout       time.Duration // the whole request, body included
	WriteTimeout      time.Duration // from the end of the request headers to the end of the answer; not websockets
	IdleTimeout       time.Duration // a keep-alive connection waiting for its next request
	MaxBody           int64         // bytes of any request body; routes have their own smaller limits

	RateLimit       float64 // requests per second per token subject (all roles but ingest); 0: no limit
	RateBurst       int
	RateLimitIngest float64 // requests per second per ingest token (producers post in bulk); 0: no limit
	RateBurstIngest int

	MetricsTokenRequired bool // /metrics needs a token that may read incidents

	// CAPSender and CAPSenderName identify the issuer of CAP alerts (<sender>, <senderName>).
	CAPSender     string
	CAPSenderName string
}

// Store is what the handlers read of the storage backend: incidents, events and KPIs, each
// query already narrowed to the caller's scope.
type Store interface {
	incidentReader
	eventReader
	kpiReader
}

type incidentReader interface {
	ListIncidents(ctx context.Context, f storage.IncidentFilter) ([]event.Incident, error)
	CountIncidents(ctx context.Context, f storage.IncidentFilter) (int, error)
	GetIncident(ctx context.Context, id string) (storage.IncidentDetail, error)
}

type eventReader interface {
	ListEvents(ctx context.Context, f storage.EventFilter) ([]event.Event, error)
}

type kpiReader interface {
	EventRates(ctx context.Context, f storage.KPIFilter) ([]storage.EventRate, error)
	OpenIncidents(ctx context.Context, f storage.KPIFilter) (storage.OpenIncidents, error)
	StageTimes(ctx context.Context, f storage.KPIFilter, limits storage.StageLimits) ([]storage.StageStat, error)
	ReportCounts(ctx context.Context, f storage.KPIFilter) ([]storage.ReportCount, error)
	IncidentBreakdown(ctx context.Context, f storage.KPIFilter, o storage.BreakdownOptions) (storage.Breakdown, error)
}

// auditLog is a Store that also keeps the audit log (storage/sqlite does): timelines then show
// refused commands and agency notifications besides the changelog.
type auditLog interface {
	ListAudit(ctx context.Context, incidentID string) ([]event.AuditRecord, error)
}

// Emitter writes what a request produces — a command, an audit record, an account version —
// and returns once the broker has it. Which topic each kind goes to is not the API's business.
type Emitter interface {
	Emit(ctx context.Context, outs event.Outputs) error
}

// Outcomes tells a request what became of the command it sent.
type Outcomes interface {
	// Expect registers for command id's outcome, before the command is sent, so a fast
	// outcome is never missed; done forgets it.
	Expect(commandID string) (outcome <-chan event.CommandResult, done func())
	// AwaitStored waits until the store holds incident id at version or later, and reports
	// whether it got there before ctx ended (read-your-writes for the caller's next GET).
	AwaitStored(ctx context.Context, id string, version int64) bool
}

// RuleStats are this instance's rule counters (the rules engine).
type RuleStats interface {
	Stats() []engine.RuleStats
	EngineStats() engine.EngineStats
}

// Cockpit is the hub behind the websockets: /ws/cockpit, and /ws/worker for a worker's tasks.
type Cockpit interface {
	http.Handler
	WorkerHandler() http.Handler
}

// Readiness is the answer of GET /readyz: whether this instance may answer for the city, each
// check's outcome, and the partitions and lag of each stage.
type Readiness struct {
	Checks map[string]string `json:"checks"`
	Ready  bool              `json:"ready"`
	Stages map[string]any    `json:"stages"`
}

// Deps are the API's dependencies, which the composition root builds.
type Deps struct {
	Config   Config
	Log      *zap.Logger
	Registry *prometheus.Registry // served on /metrics; HTTPServer adds the rate limiter's counter

	Issuer   *auth.Issuer    // verifies bearer tokens
	Accounts *auth.Directory // local accounts, which sign-in checks and the users routes change
	Sessions *auth.Sessions  // sign-in sessions (cookies)

	City        *city.Map
	StageLimits storage.StageLimits // the work-order policy's, which the KPIs measure against
	Store       Store               // nil while it is not open
	Objects     objstore.Store      // evidence photos
	Outputs     Emitter
	Outcomes    Outcomes

	Catalog     *authoring.Catalog // every rule version this instance has read
	RuleStats   RuleStats
	PublishRule func(ctx context.Context, v authoring.RuleVersion) error // to every instance's catalog

	Ingest  http.Handler                        // POST /api/v1/events; nil when ingest is not served here
	Cockpit Cockpit                             // nil when the cockpit is not served here
	Ready   func(ctx context.Context) Readiness // GET /readyz
}

// Server is the HTTP API of one instance.
type Server struct {
	cfg         Config
	log         *zap.Logger
	registry    *prometheus.Registry
	issuer      *auth.Issuer
	accounts    *auth.Directory
	sessions    *auth.Sessions
	signIns     *ipLimiter // sign-in attempts per client address (accounts.go)
	publicReads *ipLimiter // public Open311 reads per client address; nil: no limit (open311.go)
	city        *city.Map
	stageLimits storage.StageLimits
	store       Store
	objects     objstore.Store
	outputs     Emitter
	outcomes    Outcomes
	catalog     *authoring.Catalog
	ruleStats   RuleStats
	publishRule func(ctx context.Context, v authoring.RuleVersion) error
	jobs        ruleJobs // dry runs and backtests (rules_jobs.go)
	ingest      http.Handler
	cockpit     Cockpit
	ready       func(ctx context.Context) Readiness
}

// New builds the API on its dependencies. It serves nothing: Handler is the routing table,
// HTTPServer the server with its limits, and Run owns the background rule jobs.
func New(d Deps) *Server {
	return &Server{
		cfg: d.Config, log: d.Log, registry: d.Registry,
		issuer: d.Issuer, accounts: d.Accounts, sessions: d.Sessions, signIns: newIPLimiter(rate.Every(2*time.Second), 10),
		publicReads: newPublicReadLimiter(d.Config), city: d.City, stageLimits: d.StageLimits,
		store: d.Store, objects: d.Objects, outputs: d.Outputs, outcomes: d.Outcomes,
		catalog: d.Catalog, ruleStats: d.RuleStats, publishRule: d.PublishRule,
		ingest: d.Ingest, cockpit: d.Cockpit, ready: d.Ready,
	}
}

// Run owns the async rule jobs (rules_jobs.go): they run under ctx, so they stop when the
// process does, and Run waits for them before it returns.
func (s *Server) Run(ctx context.Context) error {
	s.jobs.bind(ctx)
	<-ctx.Done()
	s.jobs.wait()
	return nil
}

// emit writes outputs and waits for the broker.
func (s *Server) emit(ctx context.Context, outs event.Outputs) error {
	return s.outputs.Emit(ctx, outs)
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	rd := s.ready(ctx)
	status := http.StatusOK
	if !rd.Ready {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, rd)
}
