// Package clickhouse is the production store: a projection of city.events, city.incidents and
// city.dispatch into ClickHouse (clickhouse-go/v2 over the native protocol), answering the same
// queries as the embedded SQLite store and passing the same conformance suite.
//
// ClickHouse has no transactions and no upsert, so idempotency comes from the table engine:
// every table is a ReplacingMergeTree keyed by the record's identity (events by type and id,
// incidents by id with the version as the replacing column), every write is an insert, and
// reads collapse duplicates with FINAL or with aggregates that duplicates cannot change. A
// retried or replayed batch therefore never counts twice.
//
// Writes are batches: one INSERT per table per call, with an explicit column list (the only
// form ClickHouse 18.16 accepts over clickhouse-go's batch API). A row the server refuses is
// isolated by bisecting the batch and reported in a *storage.RejectedError, so it does not hold
// back its batch; any other failure is returned as it is, for the caller to retry the batch.
// Past one server (Config.Cluster) the tables are local on every shard and read and written
// through Distributed tables sharded by street; see cluster.go.
//
// The package never decides anything and never masks personal data: it keeps what the topics
// say.
package clickhouse

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"regexp"
	"sync"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"go.uber.org/zap"
)

// Config configures the store.
type Config struct {
	// Addrs are the servers' native-protocol addresses (host:9000). With Cluster set, they
	// must be every server of the cluster: the store creates its tables on each one.
	Addrs []string
	// Cluster is the name of a cluster in the servers' remote_servers configuration. When set,
	// each table is a local MergeTree table (<table>_local) on every server of Addrs plus a
	// Distributed table <table> over them, sharded by street, and the store writes and reads
	// through the Distributed tables (see cluster.go). Empty: one server (or interchangeable
	// addresses of one), plain tables.
	Cluster string
	// Database is created if missing. Default "urbanbrain".
	Database string
	// Username and Password authenticate; default user "default" with no password.
	Username string
	Password string
	// TLS, if set, encrypts every connection and checks the servers' certificates with it
	// (the secure native port, 9440 by default; plaintext 9000 refuses it). Nil: plaintext,
	// for a server reachable only on loopback or a private network.
	TLS *tls.Config
	// DialTimeout bounds connecting (default 5s); QueryTimeout bounds one query or insert on
	// the wire (default 60s), so a hung server turns into an error the writer can retry.
	DialTimeout  time.Duration
	QueryTimeout time.Duration
	// MaxConns is the connection pool size (default 8).
	MaxConns int
}

func (c *Config) setDefaults() {
	if c.Database == "" {
		c.Database = "urbanbrain"
	}
	if c.Username == "" {
		c.Username = "default"
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = 5 * time.Second
	}
	if c.QueryTimeout == 0 {
		c.QueryTimeout = 60 * time.Second
	}
	if c.MaxConns == 0 {
		c.MaxConns = 8
	}
}

var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Validate reports every problem with the configuration.
func (c Config) Validate() error {
	var errs []error
	if len(c.Addrs) == 0 {
		errs = append(errs, errors.New("clickhouse: at least one address is required"))
	}
	for _, a := range c.Addrs {
		if a == "" {
			errs = append(errs, errors.New("clickhouse: empty address"))
		}
	}
	// The name is spliced into DDL, so it must be a plain identifier.
	if !identifier.MatchString(c.Database) {
		errs = append(errs, fmt.Errorf("clickhouse: database %q: want letters, digits and _", c.Database))
	}
	if c.Cluster != "" && !identifier.MatchString(c.Cluster) {
		errs = append(errs, fmt.Errorf("clickhouse: cluster %q: want letters, digits and _", c.Cluster))
	}
	if c.DialTimeout < 0 || c.QueryTimeout < 0 {
		errs = append(errs, errors.New("clickhouse: timeouts must not be negative"))
	}
	if c.MaxConns < 0 {
		errs = append(errs, fmt.Errorf("clickhouse: max conns %d must not be negative", c.MaxConns))
	}
	return errors.Join(errs...)
}

// Store is the ClickHouse store. Its methods are safe for concurrent use.
type Store struct {
	cfg  Config
	log  *zap.Logger
	conn driver.Conn // every address: queries and inserts

	// servers are the connections that address one server each, for what must be done on
	// every server of a cluster (DDL, retention); on one server, just conn.
	servers []driver.Conn

	closeOnce sync.Once
	closeErr  error
}

// Open connects, creates the database if needed and brings its schema up to date.
func Open(ctx context.Context, cfg Config, log *zap.Logger) (*Store, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	s := &Store{cfg: cfg, log: log.Named("clickhouse")}

	// The database must exist before a connection can name it as its default: on a cluster
	// it is created on every server, which must also know the cluster.
	boots := [][]string{cfg.Addrs}
	if cfg.Cluster != "" {
		boots = boots[:0]
		for _, a := range cfg.Addrs {
			boots = append(boots, []string{a})
		}
	}
	for _, addrs := range boots {
		if err := s.prepareServer(ctx, addrs); err != nil {
			return nil, err
		}
	}

	var err error
	if s.conn, err = s.dial(cfg.Addrs, cfg.Database, cfg.MaxConns); err != nil {
		return nil, err
	}
	s.servers = []driver.Conn{s.conn}
	if cfg.Cluster != "" {
		s.servers = s.servers[:0]
		for _, a := range cfg.Addrs {
			c, err := s.dial([]string{a}, cfg.Database, 2)
			if err != nil {
				_ = s.closeConns()
				return nil, err
			}
			s.servers = append(s.servers, c)
		}
	}
	if err := s.migrate(ctx); err != nil {
		_ = s.closeConns()
		return nil, err
	}
	v, err := s.conn.ServerVersion()
	if err != nil {
		_ = s.closeConns()
		return nil, fmt.Errorf("clickhouse: server version: %w", err)
	}
	s.log.Info("store open", zap.Strings("addrs", cfg.Addrs), zap.String("database", cfg.Database),
		zap.String("cluster", cfg.Cluster), zap.String("server", v.String()))
	return s, nil
}

// prepareServer creates the database on the server(s) at addrs and, on a cluster, checks
// that the server knows the cluster.
func (s *Store) prepareServer(ctx context.Context, addrs []string) error {
	boot, err := s.dial(addrs, "default", 1)
	if err != nil {
		return err
	}
	defer boot.Close()
	if err := boot.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+s.cfg.Database); err != nil {
		return fmt.Errorf("clickhouse: create database %s on %v: %w", s.cfg.Database, addrs, err)
	}
	if s.cfg.Cluster == "" {
		return nil
	}
	var n uint64
	if err := boot.QueryRow(ctx, "SELECT count() FROM system.clusters WHERE cluster = ?", s.cfg.Cluster).Scan(&n); err != nil {
		return fmt.Errorf("clickhouse: read system.clusters on %v: %w", addrs, err)
	}
	if n == 0 {
		return fmt.Errorf("clickhouse: server %v has no cluster %q in its remote_servers configuration", addrs, s.cfg.Cluster)
	}
	return nil
}

func (s *Store) dial(addrs []string, database string, maxConns int) (driver.Conn, error) {
	conn, err := ch.Open(&ch.Options{
		Addr:            addrs,
		Auth:            ch.Auth{Database: database, Username: s.cfg.Username, Password: s.cfg.Password},
		TLS:             s.cfg.TLS,
		DialTimeout:     s.cfg.DialTimeout,
		ReadTimeout:     s.cfg.QueryTimeout,
		MaxOpenConns:    maxConns,
		MaxIdleConns:    maxConns,
		ConnMaxLifetime: time.Hour,
	})
	if err != nil {
		return nil, fmt.Errorf("clickhouse: connect %v: %w", addrs, err)
	}
	return conn, nil
}

func (s *Store) closeConns() error {
	var errs []error
	if s.conn != nil {
		errs = append(errs, s.conn.Close())
	}
	for _, c := range s.servers {
		if c != s.conn {
			errs = append(errs, c.Close())
		}
	}
	return errors.Join(errs...)
}

// Ping checks that the server answers, for /readyz.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.conn.Ping(ctx); err != nil {
		return fmt.Errorf("clickhouse: ping: %w", err)
	}
	return nil
}

// Close closes the connections. Calling it again is harmless.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		if err := s.closeConns(); err != nil {
			s.closeErr = fmt.Errorf("clickhouse: close: %w", err)
		}
	})
	return s.closeErr
}

// readCtx is the context of the reads that filter incidents. PREWHERE is applied before FINAL
// collapses versions (on 18.16 an explicit PREWHERE status = 'new' finds an incident whose
// newest version is dispatched), so these reads switch off the automatic move of WHERE
// conditions to PREWHERE rather than trust each server version's heuristics to skip it.
func readCtx(ctx context.Context) context.Context {
	return ch.Context(ctx, ch.WithSettings(ch.Settings{"optimize_move_to_prewhere": 0}))
}
