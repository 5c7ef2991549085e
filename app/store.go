package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/urbanbrain/urbanbrain/api"
	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/storage"
	"github.com/urbanbrain/urbanbrain/storage/clickhouse"
	"github.com/urbanbrain/urbanbrain/storage/sqlite"
)

// Store is what the app needs of a storage backend: the batch projections the storage sinks
// write through, the queries of the API (api.Store), retention, and the lifecycle.
// storage/sqlite and storage/clickhouse both implement it and pass the same conformance suite.
type Store interface {
	projection
	api.Store
	EachEvent(ctx context.Context, f storage.EventFilter, fn func(event.Event) error) error
	Retain(ctx context.Context, c storage.Cutoffs) (storage.Removed, error)
	Ping(ctx context.Context) error
	Close() error
}

// projection is the write side: batches from the storage sinks. A *storage.RejectedError lists
// records refused for good (they are dead-lettered); any other error means "retry the batch".
type projection interface {
	HandleEvents(ctx context.Context, events []event.Event) error
	HandleIncidentChanges(ctx context.Context, changes []event.IncidentChange) error
	HandleDispatches(ctx context.Context, ds []event.Dispatch) error
}

var (
	_ Store = (*sqlite.Store)(nil)
	_ Store = (*clickhouse.Store)(nil)
)

func (c *Config) registerStoreFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Store, "store", StoreSQLite, "storage backend: sqlite (embedded, in --data-dir) or clickhouse")
	fs.Func("clickhouse-addr", "comma-separated ClickHouse native-protocol addresses (host:9000), with --store clickhouse", func(s string) error {
		c.ClickHouseAddrs = splitList(s)
		return nil
	})
	fs.StringVar(&c.ClickHouseDatabase, "clickhouse-database", "urbanbrain", "ClickHouse database (created if missing)")
	fs.StringVar(&c.ClickHouseUser, "clickhouse-user", "default", "ClickHouse user")
	fs.StringVar(&c.ClickHousePassword, "clickhouse-password", "", "ClickHouse password (prefer the URBANBRAIN_CLICKHOUSE_PASSWORD environment variable)")
	fs.StringVar(&c.ClickHouseCluster, "clickhouse-cluster", "", "ClickHouse cluster (a name in the servers' remote_servers): tables on every server of --clickhouse-addr, which must list them all, and Distributed tables sharded by street")
	fs.IntVar(&c.StoreBatchSize, "store-batch-size", 5000, "rows per store write: a batch is written when it is this full ...")
	fs.DurationVar(&c.StoreFlushInterval, "store-flush-interval", 500*time.Millisecond, "... or when its first row has waited this long")
	fs.DurationVar(&c.EventRetention, "retention-events", storage.DefaultRetention.Events, "how long raw events are kept (0: forever)")
	fs.DurationVar(&c.IncidentRetention, "retention-incidents", storage.DefaultRetention.Incidents,
		"how long closed incidents and their timeline are kept after their last change (0: forever; else at least 4320h, six months)")
}

func (c *Config) validateStore() []error {
	var errs []error
	switch c.Store {
	case StoreSQLite:
	case StoreClickHouse:
		if len(c.ClickHouseAddrs) == 0 {
			errs = append(errs, errors.New("--store clickhouse needs --clickhouse-addr"))
		}
		if c.ClickHouseCluster != "" {
			cfg := clickhouse.Config{Addrs: c.ClickHouseAddrs, Database: c.ClickHouseDatabase, Cluster: c.ClickHouseCluster}
			if err := cfg.Validate(); err != nil {
				errs = append(errs, fmt.Errorf("--clickhouse-cluster: %w", err))
			}
		}
	default:
		errs = append(errs, fmt.Errorf("--store %q: want %s or %s", c.Store, StoreSQLite, StoreClickHouse))
	}
	if c.StoreBatchSize < 1 || c.StoreBatchSize > 1_000_000 {
		errs = append(errs, fmt.Errorf("--store-batch-size %d: want 1..1000000", c.StoreBatchSize))
	}
	if c.StoreFlushInterval <= 0 {
		errs = append(errs, errors.New("--store-flush-interval must be positive"))
	}
	if err := c.retention().Validate(); err != nil {
		errs = append(errs, fmt.Errorf("--retention-*: %w", err))
	}
	return errs
}

func (c *Config) retention() storage.Retention {
	return storage.Retention{Events: c.EventRetention, Incidents: c.IncidentRetention}
}

// openStore opens the configured backend.
func (a *App) openStore(ctx context.Context) (Store, error) {
	log := a.log.Named("storage")
	switch a.cfg.Store {
	case StoreClickHouse:
		conn, err := a.cfg.clickHouseConn() // netsec.go: the password (file or flag) and TLS
		if err != nil {
			return nil, err
		}
		return clickhouse.Open(ctx, clickhouse.Config{
			Addrs: a.cfg.ClickHouseAddrs, Database: a.cfg.ClickHouseDatabase,
			Username: a.cfg.ClickHouseUser, Password: conn.password,
			Cluster: a.cfg.ClickHouseCluster, TLS: conn.tls,
		}, log)
	default:
		return sqlite.Open(sqlite.Config{Path: filepath.Join(a.cfg.DataDir, "urbanbrain.db")}, log)
	}
}

// retentionInterval is how often old rows are removed.
const retentionInterval = time.Hour

// runRetention removes what the retention settings say is too old, at start and every hour,
// until ctx ends. A failed run is logged and tried again at the next tick: retention is never
// urgent enough to stop the process.
func (a *App) runRetention(ctx context.Context) error {
	r := a.cfg.retention()
	if r.Events == 0 && r.Incidents == 0 {
		return nil
	}
	t := time.NewTicker(retentionInterval)
	defer t.Stop()
	for {
		start := time.Now()
		removed, err := a.store.Retain(ctx, r.Cutoffs(start))
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			a.log.Warn("retention failed; trying again later", zap.Error(err))
		case removed != storage.Removed{}:
			a.log.Info("retention removed old rows", zap.Int("events", removed.Events),
				zap.Int("incidents", removed.Incidents), zap.Duration("took", time.Since(start)))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Read-your-writes. A command's answer comes from the partition's owner (city.command-results),
// while GET reads the store, a projection that lags behind the changelog by up to a storage
// batch. So a command's answer (api's postAction), before it is 200, waits until the store
// holds the incident at the answer's version or later: awaitStored asks the store, and between
// two asks waits for the local storage sink to say it wrote that incident (storeWatch) or for a
// backoff to pass, the backoff being what catches a store written by another instance (a
// shared ClickHouse).

// storeWatch wakes requests waiting for an incident version to be stored. The zero value is
// ready to use. It holds only the waiting requests, never a record of what was written.
type storeWatch struct {
	mu      sync.Mutex
	waiters map[string][]storeWaiter // incident id → requests waiting for it
	n       int                      // waiters, so the sink does nothing when nobody waits
}

type storeWaiter struct {
	version int64
	ch      chan struct{} // closed once a version at or above version is stored
	fired   bool
}

// wait registers interest in incident id reaching version; the channel is closed when the
// local sink has written it. Call cancel when done, whatever happened.
func (w *storeWatch) wait(id string, version int64) (done <-chan struct{}, cancel func()) {
	ch := make(chan struct{})
	w.mu.Lock()
	if w.waiters == nil {
		w.waiters = make(map[string][]storeWaiter)
	}
	w.waiters[id] = append(w.waiters[id], storeWaiter{version: version, ch: ch})
	w.n++
	w.mu.Unlock()
	return ch, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		ws := w.waiters[id]
		for i, x := range ws {
			if x.ch == ch {
				ws = append(ws[:i], ws[i+1:]...)
				w.n--
				break
			}
		}
		if len(ws) == 0 {
			delete(w.waiters, id)
		} else {
			w.waiters[id] = ws
		}
	}
}

// waiting reports whether any request waits, so a sink can skip looking at its batch.
func (w *storeWatch) waiting() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n > 0
}

// written wakes the requests waiting for incident id at version or below. A woken waiter
// stays registered until its request cancels it.
func (w *storeWatch) written(id string, version int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	ws := w.waiters[id]
	for i := range ws {
		if !ws[i].fired && ws[i].version <= version {
			ws[i].fired = true
			close(ws[i].ch)
		}
	}
}

// notifyStored wraps the incidents storage sink's writer: once the store has a batch, the
// requests waiting for one of its incident versions are woken. Records the store refused are
// not announced. When nobody waits, the batch is not looked at.
func (a *App) notifyStored(write sinkWriter) sinkWriter {
	return func(ctx context.Context, recs []kafka.Message) ([]sinkReject, error) {
		rejects, err := write(ctx, recs)
		if err != nil || !a.stored.waiting() {
			return rejects, err
		}
		refused := make(map[int]bool, len(rejects))
		for _, rj := range rejects {
			refused[rj.index] = true
		}
		for i, r := range recs {
			if refused[i] {
				continue
			}
			var ch struct {
				Incident struct {
					ID      string `json:"id"`
					Version int64  `json:"version"`
				} `json:"incident"`
			}
			if decodeAny(r.Value, []string{event.TypeIncidentChanged}, &ch) == nil && ch.Incident.ID != "" {
				a.stored.written(ch.Incident.ID, ch.Incident.Version)
			}
		}
		return rejects, nil
	}
}

// Backoff between two asks of the store while a command's answer waits for it.
const (
	storedFirstBackoff = 10 * time.Millisecond
	storedMaxBackoff   = 500 * time.Millisecond
)

// awaitStored waits until the store holds incident id at version or later, or ctx ends; it
// reports whether the store got there. The local sink's notification ends a wait at once;
// otherwise the store is asked again after a backoff that doubles up to storedMaxBackoff.
func (a *App) awaitStored(ctx context.Context, id string, version int64) bool {
	done, cancel := a.stored.wait(id, version)
	defer cancel()
	backoff := storedFirstBackoff
	t := time.NewTimer(backoff)
	t.Stop()
	defer t.Stop()
	for {
		d, err := a.store.GetIncident(ctx, id)
		if err == nil && d.Incident.Version >= version {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		t.Reset(backoff)
		select {
		case <-ctx.Done():
			return false
		case <-done:
			done = nil // announced: ask the store once more, then back to the backoff
		case <-t.C:
			backoff = min(2*backoff, storedMaxBackoff)
		}
	}
}
