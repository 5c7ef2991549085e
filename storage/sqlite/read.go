package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/storage"
	"github.com/urbanbrain/urbanbrain/storage/internal/canon"
	"github.com/urbanbrain/urbanbrain/storage/internal/query"
)

// ListIncidents returns a page of the incidents that match f, most recently updated first.
// An invalid filter returns an error wrapping storage.ErrInvalidFilter.
func (s *Store) ListIncidents(ctx context.Context, f storage.IncidentFilter) ([]event.Incident, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	w := dialect.Incidents(f)

	stmt := "SELECT doc FROM incidents" + w.SQL() +
		" ORDER BY updated_ms DESC, id DESC LIMIT ? OFFSET ?"
	rows, err := s.r.QueryContext(ctx, stmt, w.ArgsWith(f.PageLimit(), f.Offset)...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list incidents: %w", err)
	}
	incidents, err := query.Docs[event.Incident](rows)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list incidents: %w", err)
	}
	return incidents, nil
}

// CountIncidents counts the incidents that match f, ignoring its Limit and Offset.
func (s *Store) CountIncidents(ctx context.Context, f storage.IncidentFilter) (int, error) {
	f.Limit, f.Offset = 0, 0
	if err := f.Validate(); err != nil {
		return 0, err
	}
	w := dialect.Incidents(f)

	var n int
	if err := s.r.QueryRowContext(ctx, "SELECT count(*) FROM incidents"+w.SQL(), w.Args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite: count incidents: %w", err)
	}
	return n, nil
}

// GetIncident returns an incident with its timeline, linked events and dispatches, read from
// one snapshot; storage.ErrNotFound if it is not stored.
func (s *Store) GetIncident(ctx context.Context, id string) (storage.IncidentDetail, error) {
	var d storage.IncidentDetail
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return d, fmt.Errorf("sqlite: get incident %s: %w", id, err)
	}
	// A read-only transaction has nothing to commit; rolling back just ends the snapshot.
	defer func() { _ = tx.Rollback() }()

	if err := loadDetail(ctx, tx, id, &d); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return storage.IncidentDetail{}, fmt.Errorf("incident %s: %w", id, storage.ErrNotFound)
		}
		return storage.IncidentDetail{}, fmt.Errorf("sqlite: get incident %s: %w", id, err)
	}
	return d, nil
}

func loadDetail(ctx context.Context, tx *sql.Tx, id string, d *storage.IncidentDetail) error {
	var doc string
	err := tx.QueryRowContext(ctx, "SELECT doc FROM incidents WHERE id = ?", id).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
		return storage.ErrNotFound
	}
	if err != nil {
		return err
	}
	if err := json.Unmarshal([]byte(doc), &d.Incident); err != nil {
		return fmt.Errorf("decode incident: %w", err)
	}

	if d.Timeline, err = timeline(ctx, tx, id); err != nil {
		return err
	}
	if err := storage.ExplainReports(ctx, d, func(ctx context.Context, id string) ([]storage.TimelineEntry, error) {
		return timeline(ctx, tx, id)
	}); err != nil {
		return err
	}

	rows, err := tx.QueryContext(ctx, incidentEventsSQL, id)
	if err != nil {
		return err
	}
	if d.Events, err = query.Docs[event.Event](rows); err != nil {
		return err
	}

	rows, err = tx.QueryContext(ctx, `SELECT id, incident_id, worker_id, worker_name, grid, agency,
		agency_name, reason, at_ms, level FROM dispatches WHERE incident_id = ? ORDER BY at_ms, id`, id)
	if err != nil {
		return err
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
			return err
		}
		dp.At = canon.FromMillis(at)
		d.Dispatches = append(d.Dispatches, dp)
	}
	return rows.Err()
}

// incidentEventsSQL reads the events an incident's reports name, through the events' key
// (migration 00014): a link carries its event's time, or its signal's when the event had
// none (reportedAt), so an event without a time is looked for at 0 as well.
const incidentEventsSQL = `SELECT e.payload FROM incident_reports r
	JOIN events e ON e.time_ms IN (r.event_time_ms, 0) AND e.type = r.event_type AND e.id = r.event_id
	WHERE r.incident_id = ? ORDER BY e.time_ms, e.type, e.id`

// getTicketSQL finds a hotline ticket through the partial index on tickets' ids (migration
// 00014). The type is written out because SQLite uses a partial index only where the query's
// own terms imply the index's condition, which a bound parameter does not; and the index is
// named because without statistics the planner prefers events_type, which orders by time.
const getTicketSQL = "SELECT payload FROM events INDEXED BY events_ticket WHERE type = '" +
	event.TypeHotlineTicket + "' AND id = ? ORDER BY time_ms LIMIT 1"

// GetEvent returns one stored event, the earliest if its id was sent again with another time;
// storage.ErrNotFound if it is not stored. Events are keyed by time first (migration 00014):
// hotline tickets, which Open311 looks up by number, have an index on their id; an event of
// another type is looked for among all the events of its type, which is slow on a large store
// (nothing but tests asks for one).
func (s *Store) GetEvent(ctx context.Context, typ, id string) (event.Event, error) {
	q, args := "SELECT payload FROM events WHERE type = ? AND id = ? ORDER BY time_ms LIMIT 1", []any{typ, id}
	if typ == event.TypeHotlineTicket {
		q, args = getTicketSQL, []any{id}
	}
	var payload string
	err := s.r.QueryRowContext(ctx, q, args...).Scan(&payload)
	if errors.Is(err, sql.ErrNoRows) {
		return event.Event{}, fmt.Errorf("event %s %s: %w", typ, id, storage.ErrNotFound)
	}
	if err != nil {
		return event.Event{}, fmt.Errorf("sqlite: get event %s %s: %w", typ, id, err)
	}
	var e event.Event
	if err := json.Unmarshal([]byte(payload), &e); err != nil {
		return event.Event{}, fmt.Errorf("sqlite: decode event %s %s: %w", typ, id, err)
	}
	return e, nil
}

// ListEvents returns a page of the events that match f, newest first. An invalid filter
// returns an error wrapping storage.ErrInvalidFilter.
func (s *Store) ListEvents(ctx context.Context, f storage.EventFilter) ([]event.Event, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	w := dialect.Events(f)

	stmt := "SELECT payload FROM " + eventsSource(w, f) + w.SQL() +
		" ORDER BY time_ms DESC, type DESC, id DESC LIMIT ? OFFSET ?"
	rows, err := s.r.QueryContext(ctx, stmt, w.ArgsWith(f.PageLimit(), f.Offset)...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list events: %w", err)
	}
	events, err := query.Docs[event.Event](rows)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list events: %w", err)
	}
	return events, nil
}

// timeline is every stored change of incident id, oldest first.
func timeline(ctx context.Context, tx *sql.Tx, id string) ([]storage.TimelineEntry, error) {
	rows, err := tx.QueryContext(ctx,
		"SELECT version, doc FROM incident_changes WHERE incident_id = ? ORDER BY version", id)
	if err != nil {
		return nil, err
	}
	return query.Timeline(rows)
}
