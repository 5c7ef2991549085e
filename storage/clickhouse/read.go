package clickhouse

import (
	"context"
	"fmt"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/storage"
	"github.com/urbanbrain/urbanbrain/storage/internal/canon"
	"github.com/urbanbrain/urbanbrain/storage/internal/query"
)

// ListIncidents returns a page of the incidents that match f, most recently updated first.
func (s *Store) ListIncidents(ctx context.Context, f storage.IncidentFilter) ([]event.Incident, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	w := dialect.Incidents(f)
	// Two steps in one query: the page's ids from the small filter columns, then the documents
	// of just those ids (FINAL reads every selected column of every row it collapses, and the
	// documents are most of the table's bytes). The outer condition is on the key, which every
	// version of an incident shares, so it is safe as an explicit PREWHERE, and it must be one:
	// readCtx turns the automatic move off. (On a cluster it is a WHERE and the subquery a
	// GLOBAL IN: see keyCond and in.)
	stmt := "SELECT doc FROM incidents FINAL " + s.keyCond() + " id " + s.in() + " (SELECT id FROM incidents FINAL" + w.SQL() +
		" ORDER BY updated_ms DESC, id DESC" + limit(f.PageLimit(), f.Offset) + ") ORDER BY updated_ms DESC, id DESC"
	out, err := queryDocs[event.Incident](readCtx(ctx), s.conn, stmt, w.Args)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: list incidents: %w", err)
	}
	return out, nil
}

// CountIncidents counts the incidents that match f, ignoring its Limit and Offset.
func (s *Store) CountIncidents(ctx context.Context, f storage.IncidentFilter) (int, error) {
	f.Limit, f.Offset = 0, 0
	if err := f.Validate(); err != nil {
		return 0, err
	}
	w := dialect.Incidents(f)
	var n uint64
	if err := s.conn.QueryRow(readCtx(ctx), "SELECT count() FROM incidents FINAL"+w.SQL(), w.Args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("clickhouse: count incidents: %w", err)
	}
	return int(n), nil
}

// GetIncident returns an incident with its timeline, linked events and dispatches;
// storage.ErrNotFound if it is not stored.
//
// Every condition here is on a table's key, shared by all copies and versions of a row, so
// each is an explicit PREWHERE: only the granules holding the key are read.
func (s *Store) GetIncident(ctx context.Context, id string) (storage.IncidentDetail, error) {
	ctx = readCtx(ctx)
	var d storage.IncidentDetail
	incs, err := queryDocs[event.Incident](ctx, s.conn, "SELECT doc FROM incidents FINAL "+s.keyCond()+" id = ?", []any{id})
	if err != nil {
		return d, fmt.Errorf("clickhouse: get incident %s: %w", id, err)
	}
	if len(incs) == 0 {
		return d, fmt.Errorf("incident %s: %w", id, storage.ErrNotFound)
	}
	d.Incident = incs[0]

	if d.Timeline, err = s.timeline(ctx, id); err != nil {
		return d, fmt.Errorf("clickhouse: get incident %s timeline: %w", id, err)
	}
	if err := storage.ExplainReports(ctx, &d, s.timeline); err != nil {
		return d, fmt.Errorf("clickhouse: get incident %s: %w", id, err)
	}

	d.Events, err = queryDocs[event.Event](ctx, s.conn, `SELECT payload FROM events
		`+s.keyCond()+` (type, id) `+s.in()+` (SELECT event_type, event_id FROM incident_reports WHERE incident_id = ?)
		ORDER BY time_ms, type, id LIMIT 1 BY type, id`, []any{id})
	if err != nil {
		return d, fmt.Errorf("clickhouse: get incident %s events: %w", id, err)
	}

	rows, err := s.conn.Query(ctx, `SELECT id, incident_id, worker_id, worker_name, grid, agency, agency_name,
		reason, at_ms, level FROM dispatches FINAL `+s.keyCond()+` incident_id = ? ORDER BY at_ms, id`, id)
	if err != nil {
		return d, fmt.Errorf("clickhouse: get incident %s dispatches: %w", id, err)
	}
	defer rows.Close()
	d.Dispatches = []event.Dispatch{}
	for rows.Next() {
		var (
			dp event.Dispatch
			a  = &dp.Assignment
			at int64
		)
		if err := rows.Scan(&dp.ID, &dp.IncidentID, &a.WorkerID, &a.WorkerName, &a.Grid, &a.Agency,
			&a.AgencyName, &dp.Reason, &at, &dp.Level); err != nil {
			return d, fmt.Errorf("clickhouse: get incident %s dispatches: %w", id, err)
		}
		dp.At = canon.FromMillis(at)
		d.Dispatches = append(d.Dispatches, dp)
	}
	if err := rows.Err(); err != nil {
		return d, fmt.Errorf("clickhouse: get incident %s dispatches: %w", id, err)
	}
	return d, nil
}

// GetEvent returns one stored event; storage.ErrNotFound if it is not stored.
func (s *Store) GetEvent(ctx context.Context, typ, id string) (event.Event, error) {
	// Copies of an event are identical, so any one will do and FINAL is not needed.
	evs, err := queryDocs[event.Event](ctx, s.conn, "SELECT payload FROM events WHERE type = ? AND id = ? LIMIT 1", []any{typ, id})
	if err != nil {
		return event.Event{}, fmt.Errorf("clickhouse: get event %s %s: %w", typ, id, err)
	}
	if len(evs) == 0 {
		return event.Event{}, fmt.Errorf("event %s %s: %w", typ, id, storage.ErrNotFound)
	}
	return evs[0], nil
}

// ListEvents returns a page of the events that match f, newest first.
func (s *Store) ListEvents(ctx context.Context, f storage.EventFilter) ([]event.Event, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	w := dialect.Events(f)
	// Copies of an event are identical, so instead of FINAL (which would read and collapse
	// every column of every row, payloads included) duplicates are dropped with LIMIT 1 BY; and
	// the page's keys are found first from the small columns, then only their payloads read.
	stmt := "SELECT payload FROM events PREWHERE (type, id) IN (SELECT type, id FROM events" + w.SQL() +
		" ORDER BY time_ms DESC, type DESC, id DESC LIMIT 1 BY type, id" + limit(f.PageLimit(), f.Offset) +
		") ORDER BY time_ms DESC, type DESC, id DESC LIMIT 1 BY type, id"
	if s.cfg.Cluster != "" {
		// Through a Distributed table 18.16 cuts each shard's rows to the LIMIT before LIMIT BY
		// drops the copies (a page of 1000 keys stored twice comes back with 500), but applies
		// DISTINCT before it; copies of an event are identical, so (type, id, time_ms) is as
		// distinct as (type, id).
		stmt = "SELECT payload FROM events WHERE (type, id, time_ms) GLOBAL IN (SELECT DISTINCT type, id, time_ms FROM events" + w.SQL() +
			" ORDER BY time_ms DESC, type DESC, id DESC" + limit(f.PageLimit(), f.Offset) +
			") ORDER BY time_ms DESC, type DESC, id DESC LIMIT 1 BY type, id"
	}
	out, err := queryDocs[event.Event](ctx, s.conn, stmt, w.Args)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: list events: %w", err)
	}
	return out, nil
}

// EachEvent calls fn with every stored event that matches f, oldest first (then by type and
// id), ignoring f's Limit and Offset: the replay a rule backtest reads. It stops at fn's first
// error and returns it.
func (s *Store) EachEvent(ctx context.Context, f storage.EventFilter, fn func(event.Event) error) error {
	f.Limit, f.Offset = 0, 0
	if err := f.Validate(); err != nil {
		return err
	}
	w := dialect.Events(f)
	rows, err := s.conn.Query(ctx, "SELECT payload FROM events"+w.SQL()+" ORDER BY time_ms, type, id LIMIT 1 BY type, id", w.Args...)
	if err != nil {
		return fmt.Errorf("clickhouse: replay events: %w", err)
	}
	return query.EachDoc(rows, "clickhouse: replay events: ", fn)
}

// queryDocs runs a query whose one column is a JSON document and decodes every row. The
// result is never nil, so an empty page encodes as [].
func queryDocs[T any](ctx context.Context, conn driver.Conn, q string, args []any) ([]T, error) {
	rows, err := conn.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	return query.Docs[T](rows)
}

// limit is a LIMIT clause in the offset, count form both old and new servers read.
func limit(n, offset int) string {
	return fmt.Sprintf(" LIMIT %d, %d", offset, n)
}

// timeline is every stored change of incident id, oldest first.
func (s *Store) timeline(ctx context.Context, id string) ([]storage.TimelineEntry, error) {
	rows, err := s.conn.Query(ctx, "SELECT version, doc FROM incident_changes FINAL "+s.keyCond()+" incident_id = ? ORDER BY version", id)
	if err != nil {
		return nil, err
	}
	return query.Timeline(rows)
}
