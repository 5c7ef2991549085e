// Package sqlite is the embedded store: a projection of city.events, city.incidents and
// city.dispatch into one SQLite file (modernc.org/sqlite, pure Go, so the binary stays
// CGO-free), answering the queries of package storage.
//
// SQLite allows one writer at a time, so the store holds one write connection, through which
// every handler goes, and a small pool of read-only connections; in WAL mode readers never wait
// for the writer. The schema is created and upgraded by ordered migrations embedded in the
// binary, run by Open. The store never masks or drops personal data and never decides
// anything: it keeps what the topics say.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// MemoryPath opens a private in-memory database instead of a file. It lives as long as the
// Store, so it suits throwaway tools; tests should prefer a temporary file, which exercises
// WAL and the separate read pool as production does.
const MemoryPath = ":memory:"

// newPageSize is the page size of a database this store creates; walCheckpointBytes how much
// WAL it lets grow before a checkpoint (see Store.open).
const (
	newPageSize        = 16 << 10
	walCheckpointBytes = 40 << 20
)

// filePageSize is the page size of the SQLite database at path, from its header (bytes 16–17,
// big-endian, 1 meaning 65,536), or newPageSize for a database not made yet.
func filePageSize(path string) int {
	f, err := os.Open(path)
	if err != nil {
		return newPageSize
	}
	defer f.Close()
	var h [18]byte
	if _, err := io.ReadFull(f, h[:]); err != nil || string(h[:16]) != "SQLite format 3\x00" {
		return newPageSize
	}
	switch n := int(h[16])<<8 | int(h[17]); {
	case n == 1:
		return 65536
	case n >= 512 && n&(n-1) == 0:
		return n
	}
	return newPageSize
}

// Durability levels (SQLite's PRAGMA synchronous in WAL mode).
const (
	// SyncNormal (the default) syncs only at checkpoints: a committed write survives a crash
	// of the process, and the file is never corrupted, but the last writes may be lost on a
	// power cut. The store is a projection of retained topics, so a replay repairs that; and
	// a one-row write costs a fraction of a millisecond instead of a disk flush.
	SyncNormal = "normal"
	// SyncFull syncs the WAL on every commit: a committed write survives a power cut, at the
	// price of one flush per HandleEvent (batch with HandleEvents).
	SyncFull = "full"
)

// Config configures the store.
type Config struct {
	// Path is the database file, created with its directory if missing; MemoryPath for an
	// in-memory database.
	Path string
	// BusyTimeout is how long a statement waits for a lock held by another process (a backup,
	// the sqlite3 shell) before failing. Default 5s.
	BusyTimeout time.Duration
	// ReadConns is the number of read-only connections. Default 4.
	ReadConns int
	// Synchronous is SyncNormal (default) or SyncFull.
	Synchronous string
}

func (c *Config) setDefaults() {
	if c.BusyTimeout == 0 {
		c.BusyTimeout = 5 * time.Second
	}
	if c.ReadConns == 0 {
		c.ReadConns = 4
	}
	if c.Synchronous == "" {
		c.Synchronous = SyncNormal
	}
}

// Validate reports every problem with the configuration.
func (c Config) Validate() error {
	var errs []error
	if c.Path == "" {
		errs = append(errs, errors.New("sqlite: path is required"))
	}
	// The driver splits the file name at '?' to find its parameters.
	if strings.ContainsAny(c.Path, "?#") {
		errs = append(errs, fmt.Errorf("sqlite: path %q must not contain '?' or '#'", c.Path))
	}
	if c.BusyTimeout < 0 {
		errs = append(errs, fmt.Errorf("sqlite: busy timeout %s must not be negative", c.BusyTimeout))
	}
	if c.ReadConns < 0 {
		errs = append(errs, fmt.Errorf("sqlite: read conns %d must not be negative", c.ReadConns))
	}
	if c.Synchronous != SyncFull && c.Synchronous != SyncNormal {
		errs = append(errs, fmt.Errorf("sqlite: synchronous %q: want %q or %q", c.Synchronous, SyncNormal, SyncFull))
	}
	return errors.Join(errs...)
}

//go:embed migrations/*.sql
var migrations embed.FS

// Store is the SQLite store. Its methods are safe for concurrent use.
type Store struct {
	log *zap.Logger
	w   *sql.DB // the one write connection
	r   *sql.DB // read-only connections; the same pool as w for an in-memory database

	writes    writeStmts
	closeOnce sync.Once
	closeErr  error
}

// Open opens (creating if needed) the database at cfg.Path and brings its schema up to date.
func Open(cfg Config, log *zap.Logger) (*Store, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	s := &Store{log: log.Named("sqlite")}
	if err := s.open(cfg); err != nil {
		s.closePools()
		return nil, err
	}
	return s, nil
}

func (s *Store) open(cfg Config) error {
	memory := cfg.Path == MemoryPath
	if !memory {
		if err := privateFiles(cfg.Path); err != nil {
			return err
		}
	}

	params := url.Values{}
	// 16 KiB pages for a new database (one that exists keeps its own size: SQLite fixes it
	// when the first table is made, and WAL mode keeps it). When events were keyed by (type,
	// id) (before migration 00014) they landed at random places of that index, so every batch
	// dirtied most of its pages, each written to the WAL at commit: with four times fewer,
	// larger pages a batch wrote fewer frames and walked shallower trees (BenchmarkHandleEvent
	// batch=5000, UUIDs: 50–56 → 38–41 µs a row over 300,000 rows, 72 → 58 µs over 1,500,000;
	// 1 and 2 KiB pages were slower, 32 and 64 KiB no faster). Indexes over thousands of
	// devices and grids still take rows at many places.
	params.Add("_pragma", fmt.Sprintf("page_size(%d)", newPageSize))
	params.Set("_busy_timeout", strconv.FormatInt(cfg.BusyTimeout.Milliseconds(), 10))
	params.Set("_foreign_keys", "1")
	params.Set("_journal_mode", "WAL")
	params.Set("_synchronous", strings.ToUpper(cfg.Synchronous))
	// BEGIN IMMEDIATE takes the write lock up front, so a transaction never fails half way
	// when it tries to upgrade a read lock another process holds.
	params.Set("_txlock", "immediate")
	// A 64 MiB page cache for the one writer: the inserts touch the tails of a few indexes,
	// and with SQLite's 2 MiB default each batch read those pages back from the file
	// (a pread per page was a tenth of the process's CPU at 4,000 events/s).
	params.Add("_pragma", "cache_size(-65536)")
	// A checkpoint every 40 MiB of WAL rather than SQLite's 1,000 pages: an index page the
	// batches keep touching is copied back to the database once per checkpoint, not several
	// times (4 KiB pages, 1,000 → 10,000 of them: BenchmarkHandleEvent batch=5000 30–34 → 27 µs
	// a row; incident change batches 17–19k → 21–22k records/s; with 16 KiB pages, 40 and
	// 160 MiB were within the noise). WAL mode counts it in pages, so the count follows the
	// database's page size. With SyncNormal the writes a power cut can take back grow with it,
	// to the last checkpoint; a replay of the topics repairs them (see SyncNormal).
	pageSize := newPageSize
	if !memory {
		pageSize = filePageSize(cfg.Path)
	}
	params.Add("_pragma", fmt.Sprintf("wal_autocheckpoint(%d)", walCheckpointBytes/pageSize))
	w, err := sql.Open("sqlite", cfg.Path+"?"+params.Encode())
	if err != nil {
		return fmt.Errorf("sqlite: open %s: %w", cfg.Path, err)
	}
	// One connection, kept forever: SQLite serialises writers anyway, and queueing them in
	// database/sql is cheaper than SQLITE_BUSY retries. It also keeps an in-memory database
	// alive and the prepared statements warm.
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	s.w = w

	ctx := context.Background()
	if err := w.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlite: open %s: %w", cfg.Path, err)
	}
	if err := s.migrate(ctx); err != nil {
		return err
	}

	if memory {
		s.r = w
	} else {
		ro := url.Values{}
		ro.Set("_busy_timeout", params.Get("_busy_timeout"))
		ro.Set("_query_only", "1")
		r, err := sql.Open("sqlite", cfg.Path+"?"+ro.Encode())
		if err != nil {
			return fmt.Errorf("sqlite: open %s for reading: %w", cfg.Path, err)
		}
		r.SetMaxOpenConns(cfg.ReadConns)
		r.SetMaxIdleConns(cfg.ReadConns)
		s.r = r
		if err := r.PingContext(ctx); err != nil {
			return fmt.Errorf("sqlite: open %s for reading: %w", cfg.Path, err)
		}
	}

	if !memory {
		// The journal files now exist; an older store may have made them readable by all.
		if err := chmodPrivate(cfg.Path); err != nil {
			return err
		}
	}
	if err := s.writes.prepare(ctx, w); err != nil {
		return err
	}
	s.log.Info("store open", zap.String("path", cfg.Path), zap.String("synchronous", cfg.Synchronous))
	return nil
}

// privateFiles makes the database file and its directory before SQLite does, readable by the
// owner only: the store holds callers' names, phones and ID numbers (issue 11 item 6). SQLite
// gives the -wal and -shm files the mode of the database file, so they follow.
func privateFiles(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("sqlite: create directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("sqlite: create %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("sqlite: create %s: %w", path, err)
	}
	return chmodPrivate(path)
}

// chmodPrivate takes the group's and others' permissions off the database file and its
// journal files (a store made before they were created private), where they exist.
func chmodPrivate(path string) error {
	for _, p := range []string{path, path + "-wal", path + "-shm", path + "-journal"} {
		fi, err := os.Stat(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err == nil && fi.Mode().Perm()&0o077 != 0 {
			err = os.Chmod(p, fi.Mode().Perm()&^0o077)
		}
		if err != nil {
			return fmt.Errorf("sqlite: make %s private: %w", p, err)
		}
	}
	return nil
}

// migrate applies the embedded migrations the database has not seen yet, in order.
func (s *Store) migrate(ctx context.Context) error {
	p, err := provider(s.w, s.log)
	if err != nil {
		return fmt.Errorf("sqlite: migrations: %w", err)
	}
	results, err := p.Up(ctx)
	if err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	for _, r := range results {
		s.log.Info("migration applied", zap.String("file", r.Source.Path),
			zap.Int64("version", r.Source.Version), zap.Duration("took", r.Duration))
	}
	version, err := p.GetDBVersion(ctx)
	if err != nil {
		return fmt.Errorf("sqlite: schema version: %w", err)
	}
	s.log.Debug("schema up to date", zap.Int64("version", version))
	return nil
}

// Ping checks that the database answers a query, for /readyz. It uses a read connection, so
// a long write does not make the store look down.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.r.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("sqlite: ping: %w", err)
	}
	return nil
}

// Close waits for running statements and closes the database. Calling it again is harmless.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		// Keeps the planner's statistics fresh at a moment when nobody waits for it.
		if _, err := s.w.Exec("PRAGMA optimize"); err != nil {
			s.log.Warn("optimize before close", zap.Error(err))
		}
		s.closeErr = s.closePools()
	})
	return s.closeErr
}

func (s *Store) closePools() error {
	var errs []error
	errs = append(errs, s.writes.close())
	if s.r != nil && s.r != s.w {
		errs = append(errs, s.r.Close())
	}
	if s.w != nil {
		errs = append(errs, s.w.Close())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sqlite: close: %w", err)
	}
	return nil
}
