package sqlite

import (
	"context"
	"io/fs"

	"github.com/pressly/goose/v3"
)

// AppliedMigrations lists the migration versions goose recorded, one entry per application.
func AppliedMigrations(ctx context.Context, s *Store) ([]int64, error) {
	rows, err := s.r.QueryContext(ctx,
		"SELECT version_id FROM goose_db_version WHERE version_id > 0 AND is_applied ORDER BY id")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var v int64
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// WritePragma and ReadPragma read a PRAGMA on the write connection and on a read connection.
func WritePragma(ctx context.Context, s *Store, name string) (string, error) {
	var v string
	err := s.w.QueryRowContext(ctx, "PRAGMA "+name).Scan(&v)
	return v, err
}

func ReadPragma(ctx context.Context, s *Store, name string) (string, error) {
	var v string
	err := s.r.QueryRowContext(ctx, "PRAGMA "+name).Scan(&v)
	return v, err
}

// ReadExec runs a statement on a read connection, to prove it cannot write.
func ReadExec(ctx context.Context, s *Store, query string) error {
	_, err := s.r.ExecContext(ctx, query)
	return err
}

// MigrateDownTo undoes the migrations after version, as `goose down-to` would.
func MigrateDownTo(ctx context.Context, s *Store, version int64) error {
	dir, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, s.w, dir, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return err
	}
	_, err = p.DownTo(ctx, version)
	return err
}

// WriteExec runs a statement on the write connection, for what no method does (deleting an
// open incident).
func WriteExec(ctx context.Context, s *Store, query string, args ...any) error {
	_, err := s.w.ExecContext(ctx, query, args...)
	return err
}

// Count runs a SELECT count(*) … on a read connection.
func Count(ctx context.Context, s *Store, query string, args ...any) (int, error) {
	var n int
	err := s.r.QueryRowContext(ctx, query, args...).Scan(&n)
	return n, err
}
