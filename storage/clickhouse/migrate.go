package clickhouse

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"go.uber.org/zap"
)

//go:embed migrations/*.sql
var migrations embed.FS

// migration is one embedded file, NNNNN_name.sql.
type migration struct {
	version    uint32
	name       string
	statements []string
}

// The store runs its own migrations instead of goose's ClickHouse dialect: goose records each
// version with `INSERT ... VALUES` through database/sql, which ClickHouse 18.16 never answers
// over the native protocol (the insert hangs until its timeout), and wraps migrations in
// transactions ClickHouse does not have. The runner here is what the schema needs: files applied
// in version order, each once, recorded in schema_migrations with a batch insert. ClickHouse
// DDL is not transactional, so every statement must be safe to run again (IF NOT EXISTS): a
// migration interrupted half way is simply run again on the next start, and two instances
// starting together both run it harmlessly.
const createMigrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
    version    UInt32,
    name       String,
    applied_ms Int64
) ENGINE = ReplacingMergeTree
ORDER BY version`

func loadMigrations() ([]migration, error) {
	files, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var out []migration
	seen := map[uint32]string{}
	for _, f := range files {
		base := path.Base(f)
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.ParseUint(num, 10, 32)
		if !ok || err != nil || v == 0 {
			return nil, fmt.Errorf("migration %s: name must be NNNNN_description.sql", base)
		}
		if prev, dup := seen[uint32(v)]; dup {
			return nil, fmt.Errorf("migrations %s and %s have the same version", prev, base)
		}
		seen[uint32(v)] = base
		b, err := migrations.ReadFile(f)
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: uint32(v), name: base, statements: splitStatements(string(b))})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	return out, nil
}

// splitStatements cuts a migration file into statements: each ends with ';' at the end of a
// line. Lines that are only a -- comment are dropped (ClickHouse 18.16 accepts comments, but a
// statement that is nothing but comments is an error).
func splitStatements(src string) []string {
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(src, "\n") {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "--") {
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
		if strings.HasSuffix(trimmed, ";") {
			stmt := strings.TrimSuffix(strings.TrimSpace(cur.String()), ";")
			out = append(out, stmt)
			cur.Reset()
		}
	}
	if rest := strings.TrimSpace(cur.String()); rest != "" {
		out = append(out, rest)
	}
	return out
}

// migrate brings every server's schema up to date: the one server, or each server of the
// cluster in turn (each records its migrations in its own schema_migrations table).
func (s *Store) migrate(ctx context.Context) error {
	all, err := loadMigrations()
	if err != nil {
		return fmt.Errorf("clickhouse: migrations: %w", err)
	}
	for i, conn := range s.servers {
		if err := s.migrateServer(ctx, conn, all); err != nil {
			if s.cfg.Cluster != "" {
				return fmt.Errorf("%w (server %s)", err, s.cfg.Addrs[i])
			}
			return err
		}
	}
	return nil
}

func (s *Store) migrateServer(ctx context.Context, conn driver.Conn, all []migration) error {
	if err := conn.Exec(ctx, createMigrationsTable); err != nil {
		return fmt.Errorf("clickhouse: create schema_migrations: %w", err)
	}
	applied, err := appliedMigrations(ctx, conn)
	if err != nil {
		return err
	}
	for _, m := range all {
		if applied[m.version] {
			continue
		}
		start := time.Now()
		for i, stmt := range m.statements {
			if err := s.runStatement(ctx, conn, stmt); err != nil {
				return fmt.Errorf("clickhouse: migration %s statement %d: %w", m.name, i+1, err)
			}
		}
		b, err := conn.PrepareBatch(ctx, "INSERT INTO schema_migrations (version, name, applied_ms)")
		if err != nil {
			return fmt.Errorf("clickhouse: record migration %s: %w", m.name, err)
		}
		if err := b.Append(m.version, m.name, time.Now().UnixMilli()); err != nil {
			_ = b.Abort()
			return fmt.Errorf("clickhouse: record migration %s: %w", m.name, err)
		}
		if err := b.Send(); err != nil {
			return fmt.Errorf("clickhouse: record migration %s: %w", m.name, err)
		}
		s.log.Info("migration applied", zap.String("file", m.name), zap.Duration("took", time.Since(start)))
	}
	return nil
}

func appliedMigrations(ctx context.Context, conn driver.Conn) (map[uint32]bool, error) {
	rows, err := conn.Query(ctx, "SELECT DISTINCT version FROM schema_migrations")
	if err != nil {
		return nil, fmt.Errorf("clickhouse: read schema_migrations: %w", err)
	}
	defer rows.Close()
	out := map[uint32]bool{}
	for rows.Next() {
		var v uint32
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("clickhouse: read schema_migrations: %w", err)
		}
		out[v] = true
	}
	return out, rows.Err()
}

// AppliedMigrations lists the versions recorded in schema_migrations, ascending, one entry
// per recorded application (so a migration run twice would show twice until merged; reading
// FINAL shows each once). On a cluster it reads the first server's table.
func (s *Store) AppliedMigrations(ctx context.Context) ([]uint32, error) {
	rows, err := s.servers[0].Query(ctx, "SELECT version FROM schema_migrations FINAL ORDER BY version")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []uint32
	for rows.Next() {
		var v uint32
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
