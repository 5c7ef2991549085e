package clickhouse

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/urbanbrain/urbanbrain/storage"
	"github.com/urbanbrain/urbanbrain/storage/internal/canon"
)

// retainChunk bounds the ids in one ALTER ... DELETE, well under max_query_size.
const retainChunk = 1000

// Retain deletes what is older than the cutoffs: events before c.Events, and closed incidents
// last updated before c.Incidents with their timeline, report links and dispatches. Open
// incidents stay whatever their age.
//
// Table TTLs would do this on current releases, but ClickHouse 18.16 has none (they came in
// 19.6), so the store does it itself, the same way on every version: whole months of events
// whose newest row is past the cutoff are dropped as partitions (instant), and the rest is
// removed with ALTER TABLE ... DELETE mutations, which Retain waits for so that it returns
// only when the rows are gone.
func (s *Store) Retain(ctx context.Context, c storage.Cutoffs) (storage.Removed, error) {
	var out storage.Removed
	if !c.Events.IsZero() {
		n, err := s.retainEvents(ctx, canon.Millis(c.Events))
		out.Events = n
		if err != nil {
			return out, fmt.Errorf("clickhouse: retain events: %w", err)
		}
	}
	if !c.Incidents.IsZero() {
		n, err := s.retainIncidents(ctx, canon.Millis(c.Incidents))
		out.Incidents = n
		if err != nil {
			return out, fmt.Errorf("clickhouse: retain incidents: %w", err)
		}
	}
	return out, nil
}

func (s *Store) retainEvents(ctx context.Context, cutoff int64) (int, error) {
	var n uint64
	if err := s.conn.QueryRow(ctx, "SELECT count() FROM events FINAL WHERE time_ms < ?", cutoff).Scan(&n); err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, nil
	}
	// Partitions and mutations belong to the MergeTree tables: on a cluster, each server's.
	for _, conn := range s.servers {
		if err := s.retainEventsOn(ctx, conn, cutoff); err != nil {
			return 0, err
		}
	}
	return int(n), nil
}

func (s *Store) retainEventsOn(ctx context.Context, conn driver.Conn, cutoff int64) error {
	table := s.local("events")
	rows, err := conn.Query(ctx, "SELECT toYYYYMM(day) AS p, max(time_ms) FROM "+table+" GROUP BY p")
	if err != nil {
		return err
	}
	var whole []uint32
	for rows.Next() {
		var (
			p   uint32
			max int64
		)
		if err := rows.Scan(&p, &max); err != nil {
			rows.Close()
			return err
		}
		if max < cutoff {
			whole = append(whole, p)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, p := range whole {
		if err := conn.Exec(ctx, fmt.Sprintf("ALTER TABLE %s DROP PARTITION %d", table, p)); err != nil {
			return fmt.Errorf("drop partition %d: %w", p, err)
		}
	}
	var left uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM "+table+" WHERE time_ms < ?", cutoff).Scan(&left); err != nil {
		return err
	}
	if left > 0 {
		if err := conn.Exec(ctx, fmt.Sprintf("ALTER TABLE %s DELETE WHERE time_ms < %d", table, cutoff)); err != nil {
			return err
		}
		if err := s.waitMutations(ctx, conn, table); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) retainIncidents(ctx context.Context, cutoff int64) (int, error) {
	rows, err := s.conn.Query(readCtx(ctx), "SELECT id FROM incidents FINAL WHERE open = 0 AND updated_ms < ? ORDER BY id", cutoff)
	if err != nil {
		return 0, err
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return 0, err
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	tables := []struct{ table, col string }{
		{"dispatches", "incident_id"}, {"incident_reports", "incident_id"},
		{"incident_changes", "incident_id"}, {"incidents", "id"},
	}
	// The ids were read through the Distributed tables; the rows are deleted from the MergeTree
	// tables of every server (on a cluster an incident's rows are all on one shard, but asking
	// each server costs little and does not depend on it).
	for _, conn := range s.servers {
		for start := 0; start < len(ids); start += retainChunk {
			chunk := ids[start:min(start+retainChunk, len(ids))]
			list := quoteList(chunk)
			for _, t := range tables {
				// One statement per chunk of ids, spliced in as quoted literals.
				if err := conn.Exec(ctx, fmt.Sprintf("ALTER TABLE %s DELETE WHERE %s IN (%s)", s.local(t.table), t.col, list)); err != nil {
					return 0, fmt.Errorf("delete from %s: %w", s.local(t.table), err)
				}
			}
		}
		if len(ids) > 0 {
			for _, t := range tables {
				if err := s.waitMutations(ctx, conn, s.local(t.table)); err != nil {
					return 0, err
				}
			}
		}
	}
	return len(ids), nil
}

// waitMutations waits until the table has no unfinished mutation: ALTER ... DELETE returns
// at once and rewrites parts in the background.
func (s *Store) waitMutations(ctx context.Context, conn driver.Conn, table string) error {
	wait := 10 * time.Millisecond
	for {
		var pending uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM system.mutations WHERE database = ? AND table = ? AND is_done = 0",
			s.cfg.Database, table).Scan(&pending); err != nil {
			return err
		}
		if pending == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Second)
	}
}

// quoteList renders strings as ClickHouse string literals: quotes and backslashes escaped.
func quoteList(vs []string) string {
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`)
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = "'" + r.Replace(v) + "'"
	}
	return strings.Join(parts, ", ")
}
