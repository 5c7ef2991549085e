package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/storage"
	"github.com/urbanbrain/urbanbrain/storage/internal/canon"
)

// ListIncidents returns a page of the incidents that match f, most recently updated first.
// An invalid filter returns an error wrapping storage.ErrInvalidFilter.
func (s *Store) ListIncidents(ctx context.Context, f storage.IncidentFilter) ([]event.Incident, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	w := incidentWhere(f)

	query := "SELECT doc FROM incidents" + w.sql() +
		" ORDER BY updated_ms DESC, id DESC LIMIT ? OFFSET ?"
	rows, err := s.r.QueryContext(ctx, query, w.queryArgs(f.PageLimit(), f.Offset)...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list incidents: %w", err)
	}
	incidents, err := scanDocs[event.Incident](rows)
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
	w := incidentWhere(f)

	var n int
	if err := s.r.QueryRowContext(ctx, "SELECT count(*) FROM incidents"+w.sql(), w.args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite: count incidents: %w", err)
	}
	return n, nil
}

func incidentWhere(f storage.IncidentFilter) where {
	var w where
	w.in("status", f.Status)
	w.eq("category", f.Category)
	w.eqCoarse("severity", f.Severity)
	w.eq("district", f.District)
	w.eq("street", f.Street)
	w.eq("grid", f.Grid)
	w.eq("assignee_worker_id", f.AssigneeWorker)
	if f.OpenOnly {
		w.add("open", " = 1", coarse)
	}
	w.between("updated_ms", f.Since, f.Until)
	w.anyOf("grid", f.Grids)
	if f.Text != "" {
		// The title, or the summary of any report (which carries the 12345 ticket's text).
		needle := storage.LowerASCII(f.Text)
		w.add("", `(instr(`+lowerText("title", f.TextMasked)+`, ?) > 0 OR EXISTS (SELECT 1 FROM json_each(incidents.doc, '$.reports')
			WHERE instr(`+lowerText(`json_extract(value, '$.summary')`, f.TextMasked)+`, ?) > 0))`, computed, needle, needle)
	}
	return w
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

	rows, err := tx.QueryContext(ctx,
		"SELECT version, doc FROM incident_changes WHERE incident_id = ? ORDER BY version", id)
	if err != nil {
		return err
	}
	d.Timeline = []storage.TimelineEntry{}
	for rows.Next() {
		var e storage.TimelineEntry
		if err := rows.Scan(&e.Version, &doc); err != nil {
			rows.Close()
			return err
		}
		if err := json.Unmarshal([]byte(doc), &e.Change); err != nil {
			rows.Close()
			return fmt.Errorf("decode change v%d: %w", e.Version, err)
		}
		d.Timeline = append(d.Timeline, e)
	}
	if err := rows.Err(); err != nil {
		return err
	}

	rows, err = tx.QueryContext(ctx, `SELECT e.payload FROM incident_reports r
		JOIN events e ON e.type = r.event_type AND e.id = r.event_id
		WHERE r.incident_id = ? ORDER BY e.time_ms, e.type, e.id`, id)
	if err != nil {
		return err
	}
	if d.Events, err = scanDocs[event.Event](rows); err != nil {
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

// GetEvent returns one stored event; storage.ErrNotFound if it is not stored.
func (s *Store) GetEvent(ctx context.Context, typ, id string) (event.Event, error) {
	var payload string
	err := s.r.QueryRowContext(ctx, "SELECT payload FROM events WHERE type = ? AND id = ?", typ, id).Scan(&payload)
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
	var w where
	w.eqCoarse("type", f.Type)
	w.eq("district", f.District)
	w.eq("street", f.Street)
	w.eq("grid", f.Grid)
	w.eq("device", f.DeviceID)
	w.between("time_ms", f.Since, f.Until)
	eventExtras(&w, f)

	query := "SELECT payload FROM " + eventsSource(w, f) + w.sql() +
		" ORDER BY time_ms DESC, type DESC, id DESC LIMIT ? OFFSET ?"
	rows, err := s.r.QueryContext(ctx, query, w.queryArgs(f.PageLimit(), f.Offset)...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list events: %w", err)
	}
	events, err := scanDocs[event.Event](rows)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list events: %w", err)
	}
	return events, nil
}

// scanDocs decodes a one-column result of JSON documents and closes rows. The result is
// never nil, so an empty page encodes as [].
func scanDocs[T any](rows *sql.Rows) ([]T, error) {
	defer rows.Close()
	out := []T{}
	var doc []byte
	for rows.Next() {
		if err := rows.Scan(&doc); err != nil {
			return nil, err
		}
		var v T
		if err := json.Unmarshal(doc, &v); err != nil {
			return nil, fmt.Errorf("decode: %w", err)
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// where builds a conjunction of conditions with positional arguments. Column names come from
// this file only, never from a caller.
//
// Without statistics SQLite picks among equally good-looking indexes at random, and would
// as soon scan half the table through the open or severity index as a few hundred rows through
// the district one. So a coarse column (few distinct values) is kept out of index choice, by
// SQLite's unary-plus idiom, whenever a selective column is also filtered.
type where struct {
	terms []term
	args  []any
}

type term struct {
	col, cond string // cond follows the column: " = ?"
	kind      termKind
}

type termKind int

const (
	selective termKind = iota // few rows per value: a good index to start from
	coarse                    // few distinct values: a poor one
	timeRange                 // a range on the sort column, which every index carries
	computed                  // an expression no index serves (text, distance)
)

func (w *where) add(col, cond string, kind termKind, args ...any) {
	w.terms = append(w.terms, term{col: col, cond: cond, kind: kind})
	w.args = append(w.args, args...)
}

// eq filters a selective column (district, street, grid, worker, device, category).
func (w *where) eq(col, v string) {
	if v != "" {
		w.add(col, " = ?", selective, v)
	}
}

// eqCoarse filters a coarse column (type, severity).
func (w *where) eqCoarse(col, v string) {
	if v != "" {
		w.add(col, " = ?", coarse, v)
	}
}

func (w *where) in(col string, vs []event.Status) {
	if len(vs) == 0 {
		return
	}
	args := make([]any, len(vs))
	for i, v := range vs {
		args[i] = string(v)
	}
	w.add(col, " IN ("+strings.TrimSuffix(strings.Repeat("?, ", len(vs)), ", ")+")", coarse, args...)
}

// between bounds a millisecond column to [since, until). Stored times are whole
// milliseconds, so both bounds round up: t >= 10.5ms and t < 10.5ms mean t >= 11 and t < 11.
func (w *where) between(col string, since, until time.Time) {
	if !since.IsZero() {
		w.add(col, " >= ?", timeRange, ceilMillis(since))
	}
	if !until.IsZero() {
		w.add(col, " < ?", timeRange, ceilMillis(until))
	}
}

func ceilMillis(t time.Time) int64 {
	ms := t.UnixMilli()
	if t.Sub(time.UnixMilli(ms)) > 0 {
		ms++
	}
	return ms
}

func (w *where) sql() string {
	if len(w.terms) == 0 {
		return ""
	}
	hasSelective := false
	for _, t := range w.terms {
		hasSelective = hasSelective || t.kind == selective
	}
	conds := make([]string, len(w.terms))
	for i, t := range w.terms {
		if t.kind == coarse && hasSelective {
			conds[i] = "+" + t.col + t.cond
		} else {
			conds[i] = t.col + t.cond
		}
	}
	return " WHERE " + strings.Join(conds, " AND ")
}

// queryArgs are the where arguments followed by extra ones, in a fresh slice.
func (w *where) queryArgs(extra ...any) []any {
	return append(append(make([]any, 0, len(w.args)+len(extra)), w.args...), extra...)
}
