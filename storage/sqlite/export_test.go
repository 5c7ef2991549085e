package sqlite

import (
	"context"
	"strings"
)

// AppliedMigrations lists the migration versions goose recorded, one entry per application.
func AppliedMigrations(ctx context.Context, s *Store) ([]int64, error) {
	return column[int64](ctx, s, "SELECT version_id FROM goose_db_version WHERE version_id > 0 AND is_applied ORDER BY id")
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
	p, err := provider(s.w, s.log)
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

// Strings runs a query of one text column on a read connection.
func Strings(ctx context.Context, s *Store, query string, args ...any) ([]string, error) {
	return column[string](ctx, s, query, args...)
}

// column runs a query of one column on a read connection.
func column[T any](ctx context.Context, s *Store, query string, args ...any) ([]T, error) {
	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		var v T
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// QueryPlan is SQLite's plan for query on a read connection, one step per line.
func QueryPlan(ctx context.Context, s *Store, query string, args ...any) (string, error) {
	rows, err := s.r.QueryContext(ctx, "EXPLAIN QUERY PLAN "+query, args...)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	var plan strings.Builder
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			return "", err
		}
		plan.WriteString(detail + "\n")
	}
	return plan.String(), rows.Err()
}

// GetTicketSQL is how GetEvent finds a hotline ticket.
const GetTicketSQL = getTicketSQL

// IncidentEventsSQL is how GetIncident reads an incident's events.
const IncidentEventsSQL = incidentEventsSQL

// ReadConnsInUse is how many read connections are in use.
func ReadConnsInUse(s *Store) int { return s.r.Stats().InUse }
