// Package app is urbanbrain's composition root: it builds every component from the
// configuration, connects them to Kafka topics (routes.go is the one place where topics meet
// handlers) and serves the HTTP API (package api, built on App's parts in api.go), websockets,
// health and metrics. Domain packages never import watermill; only this package and package
// transport do.
package app

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/segmentio/kafka-go"

	"github.com/urbanbrain/urbanbrain/auth"
	"github.com/urbanbrain/urbanbrain/city"
	cockpit "github.com/urbanbrain/urbanbrain/cockpit-ws"
	"github.com/urbanbrain/urbanbrain/dispatch"
	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/incidents"
	"github.com/urbanbrain/urbanbrain/ingest"
	"github.com/urbanbrain/urbanbrain/objstore"
	"github.com/urbanbrain/urbanbrain/rules/authoring"
	"github.com/urbanbrain/urbanbrain/rules/engine"
	"github.com/urbanbrain/urbanbrain/rules/lang"
	"github.com/urbanbrain/urbanbrain/simulate"
	"github.com/urbanbrain/urbanbrain/transport"
	"github.com/urbanbrain/urbanbrain/webhook"
)

// App is one urbanbrain process running some or all components.
type App struct {
	cfg        Config
	log        *zap.Logger
	registry   *prometheus.Registry
	instanceID string

	city      *city.Map
	ruleSet   []lang.Rule        // the rules directory, which seeds city.rules
	catalog   *authoring.Catalog // every rule version read from city.rules (rules.go)
	issuer    *auth.Issuer
	store     Store // storage/sqlite or storage/clickhouse (store.go)
	ingest    *ingest.Service
	rules     *engine.Engine
	incidents *incidents.Service
	dispatch  *dispatch.Dispatcher
	webhook   *webhook.Notifier // agency notifications (workflow.go)
	cockpit   *cockpit.Hub
	results   *resultWaiter
	stored    storeWatch        // incident versions the local storage sink has written (store.go)
	signer    *transport.Signer // signs and checks the records of internal topics (signing.go)
	accounts  accounts          // local accounts and sign-in sessions (accounts.go)
	objects   objstore.Store    // evidence photos (photos.go)
	// stageLimits are the work-order policy's limits by stage and severity, which the KPIs
	// measure on-time rates against (incidents.Policy.StageLimits).
	stageLimits map[string]map[string]time.Duration
	forged      prometheus.Counter       // records of internal topics refused for their signature
	decodes     *sharedDecodes           // records several consumers read, decoded once (decoded.go)
	tracing     *sdktrace.TracerProvider // spans of every record's handling (tracing.go)
	tracer      trace.Tracer

	// Set while running.
	brokers    []string
	embedded   *transport.Embedded
	producer   atomic.Pointer[transport.Producer] // every record this process writes (stage.go)
	stages     atomic.Pointer[map[*transport.Stage]string]
	partitions int           // of the co-partitioned topics, for transport.PartitionOf (ownership.go)
	started    chan struct{} // closed once every stage runs
	sinks      *sinkMetrics  // storage sinks (storagesink.go)
	httpAddr   atomic.Value  // string: the bound address, for tests on port 0
	ready      atomic.Bool
}

// New loads the city, the rules and the signing key and builds the components. It starts
// nothing: Run does.
func New(cfg Config, log *zap.Logger) (*App, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := privateDir(cfg.DataDir); err != nil { // datadir.go: personal data lives here
		return nil, fmt.Errorf("data dir: %w", err)
	}
	a := &App{cfg: cfg, log: log, registry: prometheus.NewRegistry()}
	a.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	a.decodes = newSharedDecodes(a.registry)

	id, err := loadOrCreateInstanceID(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	a.instanceID = id
	a.newTracing()

	cityFS, err := a.cityFS()
	if err != nil {
		return nil, err
	}
	if a.city, err = city.Load(cityFS); err != nil {
		return nil, fmt.Errorf("load city: %w", err)
	}
	rulesFS, err := a.rulesFS(cityFS)
	if err != nil {
		return nil, err
	}
	if a.ruleSet, err = lang.Load(rulesFS); err != nil {
		return nil, fmt.Errorf("load rules: %w", err)
	}

	key, err := auth.LoadOrCreateKey(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	if a.issuer, err = newIssuer(cfg.DataDir, key); err != nil { // tokens.go: with the revocation list
		return nil, err
	}
	a.signer = newRecordSigner(key)
	a.newAccounts(key)
	a.forged = prometheus.NewCounter(prometheus.CounterOpts{Namespace: "urbanbrain", Name: "records_refused_total",
		Help: "Records read from internal topics without a valid instance signature (forged or altered); dead-lettered."})
	a.registry.MustRegister(a.forged)
	a.results = newResultWaiter()

	if a.ingest, err = ingest.New(ingest.Config{Registerer: a.registry}, a.city, outputSink{a}, log.Named("ingest")); err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}
	a.catalog = authoring.NewCatalog()
	if a.rules, err = engine.New(engine.Config{Registerer: a.registry, AllowedLateness: cfg.RulesLateness}, a.ruleSet, log.Named("rules")); err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	policy, err := loadPolicy(cfg)
	if err != nil {
		return nil, err
	}
	// One table of stage limits: the SLA clocks', the cockpit's KPIs' and the store's KPIs'.
	a.stageLimits = policy.StageLimits()
	if a.incidents, err = incidents.New(incidents.Config{Policy: policy}, log.Named("incidents")); err != nil {
		return nil, fmt.Errorf("incidents: %w", err)
	}
	if a.webhook, err = a.newNotifier(); err != nil {
		return nil, fmt.Errorf("webhook: %w", err)
	}
	if a.dispatch, err = dispatch.New(dispatch.Config{}, a.city, log.Named("dispatch")); err != nil {
		return nil, fmt.Errorf("dispatch: %w", err)
	}
	a.registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "urbanbrain_dispatch_retried_total",
		Help: "Dispatches unanswered for two minutes (command refused or lost), decided again under a new command id."},
		func() float64 { return float64(a.dispatch.Stats().Retried) }))
	if a.cockpit, err = a.newCockpit(); err != nil { // cockpit.go
		return nil, err
	}
	return a, nil
}

// TokenIssuer is the `iss` claim of tokens this deployment signs.
const TokenIssuer = "urbanbrain"

// Issuer signs and verifies this instance's tokens (for `urbanbrain token` and the demo).
func (a *App) Issuer() *auth.Issuer { return a.issuer }

// City is the loaded city map.
func (a *App) City() *city.Map { return a.city }

// HTTPAddr is the address the HTTP server is bound to, once Run has started it.
func (a *App) HTTPAddr() string {
	s, _ := a.httpAddr.Load().(string)
	return s
}

// BrokerAddrs are the Kafka brokers in use, once Run has started.
func (a *App) BrokerAddrs() []string { return slices.Clone(a.brokers) }

// Ready reports whether every started part is up (used by /readyz).
func (a *App) Ready() bool { return a.ready.Load() }

// Run starts the broker (embedded default), the store, the router and the HTTP server, and
// blocks until ctx is done; then it stops taking work, lets in-flight messages finish, and
// closes everything in reverse order.
func (a *App) Run(ctx context.Context) (err error) {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(a.cfg.GCPercent)
	}
	if err := a.startBroker(ctx); err != nil {
		return err
	}
	defer a.stopBroker()

	if a.store, err = a.openStore(ctx); err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	defer func() { _ = a.store.Close() }()
	if err := a.openObjects(ctx); err != nil { // photos.go
		return fmt.Errorf("open object store: %w", err)
	}

	producer, err := transport.NewProducer(transport.ProducerConfig{
		Brokers:          a.brokers,
		Linger:           a.cfg.ProduceLinger,
		BatchSize:        a.cfg.ProduceBatch,
		MaxInFlightBytes: a.cfg.ProduceInFlightBytes,
	}, a.log.Named("kafka"))
	if err != nil {
		return fmt.Errorf("producer: %w", err)
	}
	a.producer.Store(producer)
	defer func() { _ = producer.Close(a.cfg.ShutdownGrace) }()
	stopExport, err := a.startExport() // tracing.go: with --otlp-endpoint
	if err != nil {
		return err
	}
	defer stopExport() // after the stages, whose last spans it flushes

	if err := a.restore(ctx); err != nil {
		return err
	}
	if err := a.startAccounts(ctx); err != nil { // accounts.go: city.accounts → the directory
		return err
	}
	if err := a.startRules(ctx); err != nil { // rules.go: city.rules → catalog → engine
		return err
	}
	a.started = make(chan struct{})
	// Stages stop only when the shutdown below says so, after the HTTP server: a command
	// accepted until then is still handled.
	stageCtx, stopStages := context.WithCancel(context.WithoutCancel(ctx))
	defer stopStages()

	ln, err := net.Listen("tcp", a.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("http listen %s: %w", a.cfg.HTTPAddr, err)
	}
	a.httpAddr.Store(ln.Addr().String())
	apiServer := a.newAPI() // api.go: the HTTP API on this process's parts
	srv := apiServer.HTTPServer()
	srv.Handler = a.traceHTTP(srv.Handler) // tracing.go

	g, gctx := errgroup.WithContext(ctx)
	if a.cfg.PprofAddr != "" {
		if err := a.servePprof(gctx, g); err != nil {
			return err
		}
	}
	stagesDone := make(chan error, 1)
	g.Go(func() error {
		err := a.runStages(stageCtx, a.started)
		stagesDone <- err
		return err
	})
	// The stateful rules' clock (rules.go).
	g.Go(func() error { return a.runRuleClock(gctx) })
	g.Go(func() error { return apiServer.Run(gctx) }) // the rule authors' async dry runs and backtests
	g.Go(func() error { return a.cockpit.Run(gctx) }) // coalescing ticks and KPI frames
	g.Go(func() error { return a.runStorageSinks(gctx) })
	g.Go(func() error { return a.runRetention(gctx) })
	g.Go(func() error { return a.runWorkflow(gctx) })
	g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		select {
		case <-a.started:
			a.ready.Store(true)
			a.log.Info("urbanbrain ready", zap.String("http", a.HTTPAddr()), zap.Strings("brokers", a.brokers),
				zap.Strings("components", a.cfg.Components))
		case <-gctx.Done():
		}
		return nil
	})
	if a.cfg.Demo && a.cfg.SimulateRate > 0 {
		g.Go(func() error { return a.runSimulator(gctx) })
	}
	g.Go(func() error {
		<-gctx.Done()
		a.ready.Store(false)
		a.log.Info("shutting down: finishing in-flight work")
		shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.ShutdownGrace)
		defer cancel()
		a.cockpit.Close()
		httpErr := srv.Shutdown(shutdownCtx)
		stopStages() // each stage drains its outputs (up to the grace) and commits
		return errors.Join(httpErr, <-stagesDone)
	})
	return g.Wait()
}

// servePprof serves Go's profiler on --pprof-addr (loopback only, checked by Validate), apart
// from the API so that it never shares its listener or its authentication.
func (a *App) servePprof(ctx context.Context, g *errgroup.Group) error {
	ln, err := net.Listen("tcp", a.cfg.PprofAddr)
	if err != nil {
		return fmt.Errorf("pprof listen %s: %w", a.cfg.PprofAddr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	g.Go(func() error {
		<-ctx.Done()
		return srv.Close()
	})
	g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("pprof: %w", err)
		}
		return nil
	})
	return nil
}

func (a *App) startBroker(ctx context.Context) error {
	if !a.cfg.Embedded() {
		if err := a.useKafkaSecurity(); err != nil { // netsec.go: TLS and SASL to the cluster
			return err
		}
		a.brokers = a.cfg.KafkaBrokers
		return transport.EnsureTopics(ctx, a.brokers, a.cfg.TopicPartitions(), event.AllTopics()...)
	}
	brokerTLS, err := a.cfg.embeddedTLS()
	if err != nil {
		return err
	}
	emb, err := transport.StartEmbedded(transport.EmbeddedConfig{
		DataDir:     filepath.Join(a.cfg.DataDir, "kafka"),
		Listen:      a.cfg.BrokerListen,
		SyncWrites:  a.cfg.BrokerSync,
		Partitions:  a.cfg.TopicPartitions(),
		Topics:      event.AllTopics(),
		RequireSASL: a.cfg.BrokerSASL, // forced on beyond loopback
		TLS:         brokerTLS,
	}, a.log.Named("broker"))
	if err != nil {
		return fmt.Errorf("embedded broker: %w", err)
	}
	transport.UseSecurity(emb.ClientSecurity()) // our own clients authenticate like any other
	a.embedded = emb
	if _, ok := emb.FlushStats(); ok {
		a.registerFlushMetrics(emb)
	}
	a.brokers = emb.Addrs()
	a.log.Info("embedded Kafka-protocol broker started", zap.Strings("addrs", a.brokers))
	return nil
}

// registerFlushMetrics exports what --broker-sync's shared flushes cost.
func (a *App) registerFlushMetrics(emb *transport.Embedded) {
	stat := func(f func(transport.FlushStats) float64) func() float64 {
		return func() float64 { s, _ := emb.FlushStats(); return f(s) }
	}
	a.registry.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "urbanbrain_broker_flushes_total",
			Help: "Flushes of the embedded broker's data directory (--broker-sync), each shared by the writes made while the one before ran."},
			stat(func(s transport.FlushStats) float64 { return float64(s.Flushes) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "urbanbrain_broker_flush_failures_total",
			Help: "Flushes that failed. From the first one on the embedded broker refuses every write until restarted."},
			stat(func(s transport.FlushStats) float64 { return float64(s.Failures) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "urbanbrain_broker_flushed_writes_total",
			Help: "Answers to writes (produces, offset commits, group and topic changes) released by a flush that succeeded."},
			stat(func(s transport.FlushStats) float64 { return float64(s.Acks) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "urbanbrain_broker_flush_seconds_total",
			Help: "Time spent flushing the embedded broker's data directory."},
			stat(func(s transport.FlushStats) float64 { return s.Time.Seconds() })),
	)
}

func (a *App) stopBroker() {
	if a.embedded != nil {
		if err := a.embedded.Close(); err != nil {
			a.log.Warn("embedded broker close", zap.Error(err))
		}
	}
}

// restore rebuilds the cockpit's view, which every instance holds whole, from the
// city.incidents changelog before any stage starts. Incidents and dispatch load only the
// partitions they are assigned, when they are assigned (ownership.go).
func (a *App) restore(ctx context.Context) error {
	n, err := transport.PartitionCount(ctx, a.brokers, event.TopicIncidents)
	if err != nil {
		return fmt.Errorf("partitions of %s: %w", event.TopicIncidents, err)
	}
	// A street's signals and commands are handled, and its incidents loaded, from the same
	// partition of each topic, and the rules stage finds the streets of a partition of
	// city.events by this count (ownership.go): with counts that differ — topics created by
	// different --partitions, say — a street would be split between owners. Every instance
	// checks, whatever it runs: such a deployment is broken for the instances that own streets.
	for _, t := range []string{event.TopicEvents, event.TopicSignals, event.TopicCommands} {
		m, err := transport.PartitionCount(ctx, a.brokers, t)
		if err != nil {
			return fmt.Errorf("partitions of %s: %w", t, err)
		}
		if m != n {
			return fmt.Errorf("%s has %d partitions and %s %d: the topics partitioned by street must have as many (create them again with one --partitions)",
				t, m, event.TopicIncidents, n)
		}
	}
	a.partitions = n
	if !a.cfg.Runs(CompCockpit) {
		return nil
	}
	start := time.Now()
	changes := 0
	err = transport.ReadRecords(ctx, a.brokers, event.TopicIncidents, a.signedOnly("restore", func(rec kafka.Message) error {
		var ch event.IncidentChange
		if _, err := event.Decode(rec.Value, event.TypeIncidentChanged, &ch); err != nil {
			a.log.Warn("restore: skipping undecodable changelog record", zap.Error(err))
			return nil
		}
		changes++
		a.cockpit.Restore(ch)
		return nil
	}))
	if err != nil {
		return fmt.Errorf("restore from %s: %w", event.TopicIncidents, err)
	}
	a.log.Info("cockpit restored from changelog", zap.Int("changes", changes), zap.Duration("took", time.Since(start)))
	return nil
}

// decodeAny decodes a CloudEvent of one of types into out.
func decodeAny(b []byte, types []string, out any) error {
	_, err := event.DecodeAny(b, types, out)
	return err
}

// ingestRecord hands a raw producer record, with its headers (CloudEvents binary mode), to
// ingest.
func (a *App) ingestRecord(ctx context.Context, rec kafka.Message) (event.Outputs, error) {
	var headers map[string]string
	if len(rec.Headers) > 0 {
		headers = make(map[string]string, len(rec.Headers))
		for _, h := range rec.Headers {
			headers[h.Key] = string(h.Value)
		}
	}
	return a.ingest.HandleRecord(ctx, ingest.Record{Topic: rec.Topic, Key: string(rec.Key), Headers: headers, Value: rec.Value})
}

// outputSink writes outputs made outside a stage — what ingest accepts over HTTP, webhook
// delivery audits — and waits for the broker (App.emit).
type outputSink struct{ a *App }

func (s outputSink) Write(ctx context.Context, outs event.Outputs) error { return s.a.emit(ctx, outs) }
func (s outputSink) Emit(ctx context.Context, outs event.Outputs) error  { return s.a.emit(ctx, outs) }

func (a *App) runSimulator(ctx context.Context) error {
	sim, err := simulate.New(simulate.Config{Rate: a.cfg.SimulateRate}, a.city, kafkaSink{a}, a.log.Named("simulate"))
	if err != nil {
		return fmt.Errorf("simulator: %w", err)
	}
	select { // traffic starts once consumers are in place
	case <-a.started:
	case <-ctx.Done():
		return nil
	}
	if err := sim.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("simulator: %w", err)
	}
	return nil
}

// kafkaSink sends simulated producer records to the ingest topics.
// Records share the stages' producer and are not waited for one by one: the demo's rate is
// not bounded by a produce round trip per record.
type kafkaSink struct{ a *App }

func (k kafkaSink) Send(ctx context.Context, topic, key string, value []byte) error {
	p := k.a.producer.Load()
	if p == nil {
		return errors.New("producer not started")
	}
	return p.Send(ctx, topic, key, value, func(err error) {
		if err != nil {
			k.a.log.Warn("simulator: record not produced", zap.String("topic", topic), zap.Error(err))
		}
	})
}

func (a *App) cityFS() (fs.FS, error) {
	if a.cfg.CityDir == "" {
		return fs.Sub(city.DemoFS, "demo")
	}
	if _, err := os.Stat(a.cfg.CityDir); err != nil {
		return nil, fmt.Errorf("--city-dir: %w", err)
	}
	return os.DirFS(a.cfg.CityDir), nil
}

func (a *App) rulesFS(cityFS fs.FS) (fs.FS, error) {
	if a.cfg.RulesDir != "" {
		if _, err := os.Stat(a.cfg.RulesDir); err != nil {
			return nil, fmt.Errorf("--rules-dir: %w", err)
		}
		return os.DirFS(a.cfg.RulesDir), nil
	}
	return fs.Sub(cityFS, "rules")
}

func loadOrCreateInstanceID(dataDir string) (string, error) {
	path := filepath.Join(dataDir, "instance.id")
	if b, err := os.ReadFile(path); err == nil && len(b) > 0 {
		return string(b), nil
	}
	id := "i" + strconv.FormatInt(time.Now().UnixNano(), 36)
	if err := os.WriteFile(path, []byte(id), 0o640); err != nil {
		return "", fmt.Errorf("instance id: %w", err)
	}
	return id, nil
}
