package app

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/urbanbrain/urbanbrain/objstore"
	"github.com/urbanbrain/urbanbrain/rules/engine"
)

// Components that `serve --components` can start. They talk only through Kafka topics, so
// any subset can run in one process and the rest elsewhere.
const (
	CompIngest    = "ingest"
	CompRules     = "rules"
	CompIncidents = "incidents"
	CompDispatch  = "dispatch"
	CompStorage   = "storage"
	CompCockpit   = "cockpit"
	CompAPI       = "api"
)

// AllComponents is the default of --components.
var AllComponents = []string{CompIngest, CompRules, CompIncidents, CompDispatch, CompStorage, CompCockpit, CompAPI}

// Config is the whole configuration of `urbanbrain serve`. Every field has a flag; the same
// names work as URBANBRAIN_* environment variables and as keys of the --config YAML file
// (docs/operations.md lists them). Flags win over env, env over the file.
type Config struct {
	HTTPAddr       string
	DataDir        string
	KafkaBrokers   []string // empty: start the embedded broker
	BrokerListen   string
	BrokerSync     bool // the embedded broker acknowledges a write only once it is on the disk
	Partitions     int  // 0: TopicPartitions picks by broker
	Components     []string
	Demo           bool
	SimulateRate   float64
	CityDir        string // empty: the demo city shipped in the binary
	RulesDir       string // empty: the city's rules/ folder
	AllowedOrigins []string
	LogLevel       string
	LogFormat      string // json or console
	CommandTimeout time.Duration
	ShutdownGrace  time.Duration
	PublicURL      string // how the printed demo links reach this server
	PprofAddr      string // loopback address for net/http/pprof; empty: off
	// GCPercent is the garbage collector's target (Go's GOGC) while the app runs, unless the
	// GOGC environment variable sets it; docs/performance.md has what it buys and costs.
	GCPercent int

	NetSecConfig // TLS and SASL to Kafka and ClickHouse, the embedded broker's credentials (netsec.go)

	// The processing loop (docs/operations.md, "Throughput"): stages and the shared producer.
	ProduceLinger        time.Duration // how long a producer batch waits for more records
	ProduceBatch         int           // records per producer batch and partition, at most
	ProduceInFlightBytes int64         // output bytes handed to the producer and not yet acknowledged
	StageFetchBytes      int           // bytes of one fetch per partition and stage, at most
	StageFetchPace       time.Duration // how long a caught-up partition waits before it fetches again
	StageMaxPending      int           // records per partition whose outputs await acknowledgement
	CommitInterval       time.Duration // how often stages commit acknowledged offsets
	RulesLateness        time.Duration // how far behind a street's clock an event still counts in stateful rules

	// Storage (docs/storage.md).
	Store              string   // StoreSQLite (embedded default) or StoreClickHouse
	ClickHouseAddrs    []string // native protocol, host:9000
	ClickHouseDatabase string
	ClickHouseUser     string
	ClickHousePassword string
	ClickHouseCluster  string        // cluster name in remote_servers; empty: one server
	StoreBatchSize     int           // rows per store write
	StoreFlushInterval time.Duration // longest a row waits for its batch
	EventRetention     time.Duration // 0 keeps raw events forever
	IncidentRetention  time.Duration // 0 keeps closed incidents forever; else at least 180 days

	HTTPLimits // timeouts, body size, rate limits, cockpit limits (limits.go)

	// Work-order loop (docs/workflow.md).
	WorkflowPolicy      string        // YAML policy file; empty: the built-in one
	SLATick             time.Duration // how often SLA clocks are checked
	WebhookAllowPrivate bool          // agencies' webhooks may be on private/loopback addresses
	CommandMaxAge       time.Duration // commands older than this are dead-lettered as replays (signing.go)
	SessionTTL          time.Duration // a signed-in session's life (accounts.go)
	SecureCookies       bool          // session cookies are Secure

	// Evidence photos (photos.go): files under the data dir, or an S3-compatible store.
	ObjectStore     objstore.Config
	S3SecretKeyFile string

	// Tracing (tracing.go): where spans are exported; empty exports none.
	OTLPEndpoint string
	OTLPInsecure bool

	// CAP alerts (api/alerts.go): who issues them.
	CAPSender     string
	CAPSenderName string
	// CAPSubscribers are the receivers each published alert message is pushed to (name → URL),
	// through the agencies' signed webhook path (alerts.go).
	CAPSubscribers map[string]string
}

// Store backends of --store.
const (
	StoreSQLite     = "sqlite"
	StoreClickHouse = "clickhouse"
)

// RegisterFlags binds c to fs; the defaults are the embedded single-binary setup.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.HTTPAddr, "http-addr", "127.0.0.1:8080", "HTTP listen address for the API, websockets, /metrics and health (loopback by default: say :8080 to listen on every interface)")
	fs.StringVar(&c.DataDir, "data-dir", "./data", "directory for the embedded broker, SQLite database and signing key")
	fs.Func("kafka-brokers", "comma-separated Kafka brokers; empty starts the embedded broker", func(s string) error {
		c.KafkaBrokers = splitList(s)
		return nil
	})
	fs.StringVar(&c.BrokerListen, "broker-listen", "127.0.0.1:9092", "listen address of the embedded Kafka-protocol broker")
	fs.IntVar(&c.Partitions, "partitions", 0, fmt.Sprintf("partitions per topic when topics are created (default %d on the embedded broker, %d on a Kafka cluster)", EmbeddedPartitions, ClusterPartitions))
	fs.BoolVar(&c.BrokerSync, "broker-sync", true, "the embedded broker acknowledges a write only once it is on the disk (a power cut then loses no acknowledged record)")
	c.Components = slices.Clone(AllComponents)
	fs.Func("components", "comma-separated components to run (default all: "+strings.Join(AllComponents, ",")+")", func(s string) error {
		c.Components = splitList(s)
		return nil
	})
	fs.BoolVar(&c.Demo, "demo", false, "print ready-made tokens and run the traffic simulator in-process")
	fs.Float64Var(&c.SimulateRate, "simulate-rate", 20, "events per second of simulated traffic with --demo")
	fs.StringVar(&c.CityDir, "city-dir", "", "directory with the city's grids.geojson, categories, agencies, roster (default: demo city)")
	fs.StringVar(&c.RulesDir, "rules-dir", "", "directory of rule files (default: the city's rules)")
	fs.Func("allowed-origins", "comma-separated Origins allowed on websockets (default: same host)", func(s string) error {
		c.AllowedOrigins = splitList(s)
		return nil
	})
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", "console", "console or json")
	fs.DurationVar(&c.CommandTimeout, "command-timeout", 10*time.Second, "how long an HTTP command waits for its outcome")
	fs.DurationVar(&c.ShutdownGrace, "shutdown-grace", 15*time.Second, "how long shutdown waits for in-flight work")
	fs.StringVar(&c.PublicURL, "public-url", "", "base URL printed in demo links (default http://127.0.0.1:<port>)")
	fs.StringVar(&c.PprofAddr, "pprof-addr", "", "serve Go's profiler (net/http/pprof) on this loopback address; empty: off")
	fs.IntVar(&c.GCPercent, "gc-percent", 200, "garbage collector target, as Go's GOGC (which wins when set): 200 spends about a tenth less CPU than Go's 100 for about a quarter more memory")
	fs.DurationVar(&c.ProduceLinger, "produce-linger", 5*time.Millisecond, "how long a producer batch waits for more records (latency only: nothing waits for it but the batch)")
	fs.IntVar(&c.ProduceBatch, "produce-batch", 64, "records per producer batch and partition, at most")
	fs.Int64Var(&c.ProduceInFlightBytes, "produce-inflight-bytes", 64<<20, "output bytes handed to the producer and not yet acknowledged before stages wait (backpressure)")
	fs.IntVar(&c.StageFetchBytes, "stage-fetch-bytes", 1<<20, "bytes a stage fetches per partition at once, at most (what a partition holds in memory besides its pending outputs)")
	fs.DurationVar(&c.StageFetchPace, "stage-fetch-pace", 10*time.Millisecond, "how long a stage's partition that has caught up waits before it fetches again, so that its next fetch brings what came meanwhile (the most a record waits for its fetch; 0: fetch at once)")
	fs.IntVar(&c.StageMaxPending, "stage-max-pending", 20000, "records per partition whose outputs await the broker before the partition waits")
	fs.DurationVar(&c.RulesLateness, "rules-lateness", engine.DefaultAllowedLateness, "how far behind its street's event-time clock an event still counts in windows, for and absent rules; silence and held conditions fire this much later")
	fs.DurationVar(&c.CommitInterval, "commit-interval", 100*time.Millisecond, "how often stages commit acknowledged offsets (bounds what is handled again after a crash)")
	c.registerStoreFlags(fs)
	c.registerWorkflowFlags(fs)
	c.registerLimitFlags(fs)
	c.registerNetSecFlags(fs)
	c.registerAccountFlags(fs)
	c.registerObjectStoreFlags(fs)
	fs.StringVar(&c.CAPSender, "cap-sender", "urbanbrain.local", "CAP <sender> of published alerts: the issuing system's unique name, a domain (no spaces, commas, < or &)")
	fs.StringVar(&c.CAPSenderName, "cap-sender-name", "城市运行管理中心", "CAP <senderName> of published alerts: the issuing body as people read it")
	fs.Func("cap-subscribers", "comma-separated name=URL receivers every published CAP alert message is pushed to (signed like agency webhooks; secrets in --data-dir/webhook-secrets.yaml under cap:<name>)", func(v string) error {
		c.CAPSubscribers = map[string]string{}
		for _, entry := range splitList(v) {
			name, url, ok := strings.Cut(entry, "=")
			if !ok || name == "" || !strings.HasPrefix(url, "http") {
				return fmt.Errorf("%q: want name=http(s)://…", entry)
			}
			c.CAPSubscribers[name] = url
		}
		return nil
	})
	c.registerTracingFlags(fs)
}

// Validate reports every problem at once.
func (c *Config) Validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("--data-dir is required"))
	}
	if c.Partitions < 0 || c.Partitions > 1024 {
		errs = append(errs, fmt.Errorf("--partitions %d: want 1..1024, or 0 for the default", c.Partitions))
	}
	if len(c.Components) == 0 {
		errs = append(errs, errors.New("--components: at least one component"))
	}
	for _, comp := range c.Components {
		if !slices.Contains(AllComponents, comp) {
			errs = append(errs, fmt.Errorf("--components: unknown component %q (known: %s)", comp, strings.Join(AllComponents, ",")))
		}
	}
	if c.Demo && c.SimulateRate < 0 {
		errs = append(errs, fmt.Errorf("--simulate-rate %v: must not be negative", c.SimulateRate))
	}
	if c.CommandTimeout <= 0 {
		errs = append(errs, errors.New("--command-timeout must be positive"))
	}
	if c.GCPercent < 25 || c.GCPercent > 1000 {
		errs = append(errs, fmt.Errorf("--gc-percent %d: want 25..1000", c.GCPercent))
	}
	if c.PprofAddr != "" && !loopbackAddr(c.PprofAddr) {
		errs = append(errs, fmt.Errorf("--pprof-addr %s: the profiler is served on loopback only (127.0.0.1:PORT or [::1]:PORT)", c.PprofAddr))
	}
	if c.RulesLateness <= 0 {
		errs = append(errs, errors.New("--rules-lateness must be positive"))
	}
	if c.StageFetchPace < 0 {
		errs = append(errs, errors.New("--stage-fetch-pace must not be negative"))
	}
	if c.ProduceLinger < 0 {
		errs = append(errs, errors.New("--produce-linger must not be negative"))
	}
	if c.ProduceBatch < 1 || c.ProduceInFlightBytes < 1 || c.StageFetchBytes < 1 || c.StageMaxPending < 1 || c.CommitInterval <= 0 {
		errs = append(errs, errors.New("--produce-batch, --produce-inflight-bytes, --stage-fetch-bytes, --stage-max-pending and --commit-interval must be positive"))
	}
	errs = append(errs, c.validateStore()...)
	errs = append(errs, c.validateWorkflow()...)
	errs = append(errs, c.validateTracing()...)
	errs = append(errs, c.validateLimits()...)
	errs = append(errs, c.validateNetSec()...)
	return errors.Join(errs...)
}

// Runs reports whether the component is enabled.
func (c *Config) Runs(component string) bool { return slices.Contains(c.Components, component) }

// Embedded reports whether serve starts its own broker.
func (c *Config) Embedded() bool { return len(c.KafkaBrokers) == 0 }

// The partitions of each topic urbanbrain creates, unless --partitions says. A topic's
// partitions are the most instances that can share its work, so a Kafka cluster, which
// several instances share, gets 6. The embedded broker lives inside one instance: the nodes
// of a deployment that fails over share a cluster (docs/operations.md), so its topics are
// sized for the one node, where every partition costs fetches, producer batches and the
// broker's writes of each. With 3 instead of 6 the embedded default spent 7–12 % less CPU per
// event at 4,000 events/s, and with --broker-sync at 3,000/s it fell behind half as far
// (docs/performance.md, "Partitions of the embedded broker").
const (
	EmbeddedPartitions = 3
	ClusterPartitions  = 6
)

// TopicPartitions is the partition count of the topics this instance creates. Topics that
// exist keep theirs.
func (c *Config) TopicPartitions() int {
	switch {
	case c.Partitions > 0:
		return c.Partitions
	case c.Embedded():
		return EmbeddedPartitions
	}
	return ClusterPartitions
}

// loopbackAddr reports whether host:port names a loopback host.
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func splitList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

// DefaultConfig is the configuration with every flag at its default.
func DefaultConfig() Config {
	var c Config
	c.RegisterFlags(flag.NewFlagSet("defaults", flag.ContinueOnError))
	return c
}
