package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/segmentio/kafka-go/sasl/scram"
	"github.com/twmb/franz-go/pkg/kfake"
	"go.uber.org/zap"
)

// EmbeddedConfig configures the in-process broker.
type EmbeddedConfig struct {
	// DataDir is where topics, records, committed offsets and group state live. Starting
	// again on the same directory brings them back. Empty keeps everything in memory.
	DataDir string

	// Listen is the host:port the broker listens on and advertises to clients (default
	// 127.0.0.1:9092). The host must be a specific address, because clients are told to
	// connect to exactly this; port 0 picks a free port (see Addrs).
	Listen string

	// Partitions is the partition count of Topics and of auto-created topics (default 6).
	Partitions int

	// Topics are created on start if they do not exist.
	Topics []string

	// SyncWrites acknowledges a produce, an offset commit or any other write only once it is
	// on the disk (with DataDir). On Linux, on ext4 or tmpfs, the flushes are shared by every
	// write made while the last one ran (syncedacks.go; docs/performance.md says what differs
	// from kfake's fsync of every batch, which is used elsewhere). Off, like Kafka's
	// default, writes reach the disk through the page cache and at Close; a machine crash can
	// lose the last records, a process crash cannot.
	SyncWrites bool

	// RequireSASL makes every client authenticate with SCRAM-SHA-512 as EmbeddedUser, with a
	// password generated on the first start and kept in PasswordFile. It is forced on when
	// Listen is not a loopback address: anyone who can reach the port could otherwise put
	// commands on city.commands or read every caller from the ingest topics. On loopback it
	// is off by default, for kcat on a developer's machine: only processes on this host can
	// connect there, and they can be stopped by the host's own users and file permissions
	// (turn it on on a shared host).
	RequireSASL bool

	// PasswordFile keeps the generated password, mode 0600 (default <DataDir>/client.secret;
	// with no DataDir the password lives in memory for this run only). An existing file is
	// reused, so clients elsewhere (kcat, another instance) keep working across restarts.
	PasswordFile string

	// TLS, if set, makes the listener speak TLS only, with these server certificates. The
	// process's own clients trust exactly the first certificate (ClientSecurity), so it must
	// name Listen's host.
	TLS *tls.Config
}

// EmbeddedUser is the SASL user of the embedded broker when it requires authentication.
const EmbeddedUser = "urbanbrain"

// sasl reports whether the broker requires SASL: asked for, or listening beyond loopback.
func (c EmbeddedConfig) sasl() bool { return c.RequireSASL || !IsLoopback(c.Listen) }

func (c *EmbeddedConfig) setDefaults() {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:9092"
	}
	if c.Partitions == 0 {
		c.Partitions = 6
	}
}

// Validate reports every problem in the configuration at once.
func (c EmbeddedConfig) Validate() error {
	var errs []error
	host, port, err := net.SplitHostPort(c.Listen)
	if err != nil {
		errs = append(errs, fmt.Errorf("embedded: listen %q: %w", c.Listen, err))
	} else {
		if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
			errs = append(errs, fmt.Errorf("embedded: listen %q: host must be a specific address (it is advertised to clients)", c.Listen))
		}
		if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
			errs = append(errs, fmt.Errorf("embedded: listen %q: bad port", c.Listen))
		}
	}
	if c.Partitions < 1 {
		errs = append(errs, fmt.Errorf("embedded: Partitions %d < 1", c.Partitions))
	}
	if c.TLS != nil && len(c.TLS.Certificates) == 0 {
		errs = append(errs, errors.New("embedded: TLS without a server certificate"))
	}
	for _, t := range c.Topics {
		if t == "" {
			errs = append(errs, errors.New("embedded: empty topic name"))
		}
	}
	return errors.Join(errs...)
}

// Embedded is a Kafka-protocol broker running inside the process (kfake), the default when
// no cluster is configured. Clients talk to it over TCP exactly as they would to Kafka; the
// process's own clients (ClientSecurity) over in-memory connections, with the same protocol,
// SASL and TLS (inprocess.go).
type Embedded struct {
	cluster *kfake.Cluster
	log     *zap.Logger
	addrs   []string
	client  *Security // what this process's clients need to connect
	acks    *syncedAcks
	dirFile func() error // closes the data directory the flushes use

	mu        sync.Mutex
	closing   bool
	closeErrs []error
	closed    bool
}

// StartEmbedded starts the broker, reloading DataDir if it holds an earlier run, and makes
// sure cfg.Topics exist.
func StartEmbedded(cfg EmbeddedConfig, log *zap.Logger) (*Embedded, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	e := &Embedded{log: log.Named("embedded-kafka")}
	authOpts, err := e.secure(cfg)
	if err != nil {
		return nil, err
	}

	if cfg.SyncWrites && cfg.DataDir != "" {
		// The flushes need the directory open before kfake creates it; its owner's only, as
		// with SASL (prepareDataDir): the records hold callers' personal data.
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("embedded: data directory: %w", err)
		}
		flush, closeDir, err := dataDirFlush(cfg.DataDir)
		switch {
		case err == nil:
			e.acks, e.dirFile = newSyncedAcks(flush, e.log), closeDir
		case errors.Is(err, errors.ErrUnsupported):
			e.log.Info("the broker fsyncs every produced batch itself (slower than shared flushes)", zap.Error(err))
		default:
			return nil, fmt.Errorf("embedded: data directory: %w", err)
		}
	}

	var both *bothListener
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		// kfake listens on 127.0.0.1:<port>; listening ourselves lets Listen pick the host.
		// kfake advertises whatever address the listener reports. This process's own
		// clients connect in memory (inprocess.go).
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			tcp, err := net.Listen(network, cfg.Listen)
			if err != nil {
				return nil, err
			}
			both = listenInProcess(tcp)
			var ln net.Listener = both
			if cfg.TLS != nil {
				ln = tls.NewListener(ln, cfg.TLS)
			}
			if e.acks != nil { // above TLS: it reads the requests' headers
				ln = e.acks.listener(ln)
			}
			return ln, nil
		}),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(cfg.Partitions),
		kfake.WithLogger(kfakeLogger{log: e.log, onError: e.recordError}),
	}
	opts = append(opts, authOpts...)
	if cfg.DataDir != "" {
		opts = append(opts, kfake.DataDir(cfg.DataDir))
	}
	if cfg.SyncWrites && e.acks == nil {
		opts = append(opts, kfake.SyncWrites())
	}
	if len(cfg.Topics) > 0 {
		// Seeds apply only to a fresh data directory; EnsureTopics below covers topics
		// added to the list since.
		opts = append(opts, kfake.SeedTopics(int32(cfg.Partitions), cfg.Topics...))
	}
	// The broker's goroutines carry a profiler label, so a CPU profile tells its work from the
	// stages' (which app labels by stage).
	var c *kfake.Cluster
	pprof.Do(context.Background(), pprof.Labels("broker", "embedded"), func(context.Context) { c, err = kfake.NewCluster(opts...) })
	if err != nil {
		e.stopAcks()
		return nil, fmt.Errorf("start embedded kafka on %s: %w", cfg.Listen, err)
	}
	e.cluster = c
	e.addrs = c.ListenAddrs()
	e.client.Dial = dialInProcess(both, e.addrs)

	if len(cfg.Topics) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := ensureTopics(ctx, e.client, e.addrs, cfg.Partitions, cfg.Topics...)
		cancel()
		if err != nil {
			return nil, errors.Join(err, e.Close())
		}
	}
	e.log.Info("embedded kafka started", zap.Strings("addrs", e.addrs), zap.String("data_dir", cfg.DataDir),
		zap.Stringer("security", e.client))
	return e, nil
}

// Addrs returns the addresses clients bootstrap from (the real port when Listen had port 0).
func (e *Embedded) Addrs() []string { return slices.Clone(e.addrs) }

// ClientSecurity is what a client of this process needs to connect: the SASL credentials if
// the broker requires them, and trust in its own certificate if it speaks TLS. The composition
// root hands it to UseSecurity.
func (e *Embedded) ClientSecurity() *Security {
	c := *e.client
	return &c
}

// secure prepares the broker's TLS and SASL options and the matching client security.
func (e *Embedded) secure(cfg EmbeddedConfig) ([]kfake.Opt, error) {
	e.client = &Security{}
	var opts []kfake.Opt
	if cfg.TLS != nil { // the listener speaks TLS (StartEmbedded), below the acknowledgements
		ct, err := trustOwnCertificate(cfg.TLS, cfg.Listen)
		if err != nil {
			return nil, err
		}
		e.client.TLS = ct
	}
	if !cfg.sasl() {
		return opts, nil
	}
	if cfg.DataDir != "" {
		// The records hold callers' personal data and the directory their credentials: its
		// owner only. kfake creates it 0755 and never changes an existing one.
		if err := prepareDataDir(cfg.DataDir); err != nil {
			return nil, err
		}
	}
	pass, err := loadOrCreatePassword(cfg.PasswordFile, cfg.DataDir, e.log)
	if err != nil {
		return nil, err
	}
	mech, err := scram.Mechanism(scram.SHA512, EmbeddedUser, pass)
	if err != nil {
		return nil, fmt.Errorf("embedded: sasl: %w", err)
	}
	e.client.SASL = mech
	return append(opts, kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-512", EmbeddedUser, pass)), nil
}

// Close stops the broker and writes its state to DataDir. It reports a failure to persist.
// It is safe to call more than once.
func (e *Embedded) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	e.closing = true
	e.mu.Unlock()

	e.cluster.Close()
	if e.acks != nil { // what kfake wrote while closing reaches the disk too
		if err := e.acks.flush(); err != nil {
			e.recordError(err.Error())
		}
	}
	e.stopAcks()

	e.mu.Lock()
	defer e.mu.Unlock()
	e.closing = false
	if len(e.closeErrs) > 0 {
		return fmt.Errorf("close embedded kafka: %w", errors.Join(e.closeErrs...))
	}
	e.log.Info("embedded kafka stopped", zap.Strings("addrs", e.addrs))
	return nil
}

// recordError keeps the errors kfake logs while it shuts down (persisting happens then).
func (e *Embedded) recordError(msg string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closing {
		e.closeErrs = append(e.closeErrs, errors.New(msg))
	}
}

// FlushStats counts the shared flushes of SyncWrites; ok is false when writes are not
// acknowledged that way (SyncWrites off, no data directory, or kfake's fsync per batch).
func (e *Embedded) FlushStats() (s FlushStats, ok bool) {
	if e.acks == nil {
		return FlushStats{}, false
	}
	return e.acks.stats(), true
}

// Err reports a failed flush of SyncWrites: from then on the broker refuses every write, and
// the instance must be restarted once the disk is fixed.
func (e *Embedded) Err() error {
	if e.acks == nil {
		return nil
	}
	return e.acks.err()
}

// stopAcks stops the flushes of SyncWrites, if they run.
func (e *Embedded) stopAcks() {
	if e.acks == nil {
		return
	}
	e.acks.Close()
	if err := e.dirFile(); err != nil {
		e.log.Warn("close data directory", zap.Error(err))
	}
}
