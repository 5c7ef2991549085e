package clickhouse

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/storage"
	"github.com/urbanbrain/urbanbrain/storage/internal/canon"
)

// ListIncidents returns a page of the incidents that match f, most recently updated first.
func (s *Store) ListIncidents(ctx context.Context, f storage.IncidentFilter) ([]event.Incident, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	w := incidentWhere(f)
	// Two steps in one query: the page's ids from the small filter columns, then the documents
	// of just those ids (FINAL reads every selected column of every row it collapses, and the
	// documents are most of the table's bytes). The outer condition is on the key, which every
	// version of an incident shares, so it is safe as an explicit PREWHERE, and it must be one:
	// readCtx turns the automatic move off. (On a cluster it is a WHERE and the subquery a
	// GLOBAL IN: see keyCond and in.)
	query := "SELECT doc FROM incidents FINAL " + s.keyCond() + " id " + s.in() + " (SELECT id FROM incidents FINAL" + w.sql() +
		" ORDER BY updated_ms DESC, id DESC" + limit(f.PageLimit(), f.Offset) + ") ORDER BY updated_ms DESC, id DESC"
	out, err := queryDocs[event.Incident](readCtx(ctx), s.conn, query, w.args)
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
	w := incidentWhere(f)
	var n uint64
	if err := s.conn.QueryRow(readCtx(ctx), "SELECT count() FROM incidents FINAL"+w.sql(), w.args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("clickhouse: count incidents: %w", err)
	}
	return int(n), nil
}

func incidentWhere(f storage.IncidentFilter) where {
	var w where
	if len(f.Status) > 0 {
		vs := make([]string, len(f.Status))
		for i, st := range f.Status {
			vs[i] = string(st)
		}
		w.anyOf("status", vs)
	}
	w.eq("category", f.Category)
	w.eq("severity", f.Severity)
	w.eq("district", f.District)
	w.eq("street", f.Street)
	w.eq("grid", f.Grid)
	w.eq("assignee_worker_id", f.AssigneeWorker)
	if f.OpenOnly {
		w.add("open = 1")
	}
	w.between("updated_ms", f.Since, f.Until)
	w.anyOf("grid", f.Grids)
	if f.Text != "" {
		needle := storage.LowerASCII(f.Text)
		if f.TextMasked {
			w.add("(position(lower(replaceRegexpAll(title, ?, '*')), ?) > 0 OR arrayExists(x -> position(lower(replaceRegexpAll(x, ?, '*')), ?) > 0, summaries))",
				storage.SearchMaskPattern, needle, storage.SearchMaskPattern, needle)
		} else {
			w.add("(position(lower(title), ?) > 0 OR arrayExists(x -> position(lower(x), ?) > 0, summaries))", needle, needle)
		}
	}
	return w
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

	rows, err := s.conn.Query(ctx, "SELECT version, doc FROM incident_changes FINAL "+s.keyCond()+" incident_id = ? ORDER BY version", id)
	if err != nil {
		return d, fmt.Errorf("clickhouse: get incident %s timeline: %w", id, err)
	}
	d.Timeline = []storage.TimelineEntry{}
	for rows.Next() {
		var (
			e   storage.TimelineEntry
			doc string
		)
		if err := rows.Scan(&e.Version, &doc); err != nil {
			rows.Close()
			return d, fmt.Errorf("clickhouse: get incident %s timeline: %w", id, err)
		}
		if err := json.Unmarshal([]byte(doc), &e.Change); err != nil {
			rows.Close()
			return d, fmt.Errorf("clickhouse: decode change %s v%d: %w", id, e.Version, err)
		}
		d.Timeline = append(d.Timeline, e)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return d, fmt.Errorf("clickhouse: get incident %s timeline: %w", id, err)
	}

	d.Events, err = queryDocs[event.Event](ctx, s.conn, `SELECT payload FROM events
		`+s.keyCond()+` (type, id) `+s.in()+` (SELECT event_type, event_id FROM incident_reports WHERE incident_id = ?)
		ORDER BY time_ms, type, id LIMIT 1 BY type, id`, []any{id})
	if err != nil {
		return d, fmt.Errorf("clickhouse: get incident %s events: %w", id, err)
	}

	rows, err = s.conn.Query(ctx, `SELECT id, incident_id, worker_id, worker_name, grid, agency, agency_name,
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
	w := eventWhere(f)
	// Copies of an event are identical, so instead of FINAL (which would read and collapse
	// every column of every row, payloads included) duplicates are dropped with LIMIT 1 BY; and
	// the page's keys are found first from the small columns, then only their payloads read.
	query := "SELECT payload FROM events PREWHERE (type, id) IN (SELECT type, id FROM events" + w.sql() +
		" ORDER BY time_ms DESC, type DESC, id DESC LIMIT 1 BY type, id" + limit(f.PageLimit(), f.Offset) +
		") ORDER BY time_ms DESC, type DESC, id DESC LIMIT 1 BY type, id"
	if s.cfg.Cluster != "" {
		// Through a Distributed table 18.16 cuts each shard's rows to the LIMIT before LIMIT BY
		// drops the copies (a page of 1000 keys stored twice comes back with 500), but applies
		// DISTINCT before it; copies of an event are identical, so (type, id, time_ms) is as
		// distinct as (type, id).
		query = "SELECT payload FROM events WHERE (type, id, time_ms) GLOBAL IN (SELECT DISTINCT type, id, time_ms FROM events" + w.sql() +
			" ORDER BY time_ms DESC, type DESC, id DESC" + limit(f.PageLimit(), f.Offset) +
			") ORDER BY time_ms DESC, type DESC, id DESC LIMIT 1 BY type, id"
	}
	out, err := queryDocs[event.Event](ctx, s.conn, query, w.args)
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
	w := eventWhere(f)
	rows, err := s.conn.Query(ctx, "SELECT payload FROM events"+w.sql()+" ORDER BY time_ms, type, id LIMIT 1 BY type, id", w.args...)
	if err != nil {
		return fmt.Errorf("clickhouse: replay events: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var doc string
		if err := rows.Scan(&doc); err != nil {
			return fmt.Errorf("clickhouse: replay events: %w", err)
		}
		var e event.Event
		if err := json.Unmarshal([]byte(doc), &e); err != nil {
			return fmt.Errorf("clickhouse: replay events: decode: %w", err)
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	return rows.Err()
}

// Events are immutable, so the copies of one are identical and a condition may be checked
// before or after dropping duplicates alike.
func eventWhere(f storage.EventFilter) where {
	var w where
	w.eq("type", f.Type)
	w.eq("district", f.District)
	w.eq("street", f.Street)
	w.eq("grid", f.Grid)
	w.eq("device", f.DeviceID)
	w.eventTime(f.Since, f.Until)
	w.anyOf("grid", f.Grids)
	if c := f.Near; c != nil {
		// The same arithmetic as storage.Circle.Contains, so both backends draw one boundary.
		kx, ky := c.Scales()
		w.add("(has_location = 1 AND ((lon - ?) * ?) * ((lon - ?) * ?) + ((lat - ?) * ?) * ((lat - ?) * ?) <= ?)",
			c.Lon, kx, c.Lon, kx, c.Lat, ky, c.Lat, ky, c.RadiusM*c.RadiusM)
	}
	if f.Text != "" {
		needle := storage.LowerASCII(f.Text)
		if f.TextMasked {
			w.add("(position(lower(replaceRegexpAll(content, ?, '*')), ?) > 0 OR position(lower(replaceRegexpAll(address, ?, '*')), ?) > 0)",
				storage.SearchMaskPattern, needle, storage.SearchMaskPattern, needle)
		} else {
			w.add("(position(lower(content), ?) > 0 OR position(lower(address), ?) > 0)", needle, needle)
		}
	}
	return w
}

// queryDocs runs a query whose one column is a JSON document and decodes every row. The
// result is never nil, so an empty page encodes as [].
func queryDocs[T any](ctx context.Context, conn driver.Conn, query string, args []any) ([]T, error) {
	rows, err := conn.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		var doc string
		if err := rows.Scan(&doc); err != nil {
			return nil, err
		}
		var v T
		if err := json.Unmarshal([]byte(doc), &v); err != nil {
			return nil, fmt.Errorf("decode: %w", err)
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// limit is a LIMIT clause in the offset, count form both old and new servers read.
func limit(n, offset int) string {
	return fmt.Sprintf(" LIMIT %d, %d", offset, n)
}

// where builds a conjunction of conditions with positional arguments, bound by the driver on
// the client (with quoting). Column names come from this package only, never from a caller.
type where struct {
	conds []string
	args  []any
}

func (w *where) add(cond string, args ...any) {
	w.conds = append(w.conds, cond)
	w.args = append(w.args, args...)
}

func (w *where) eq(col, v string) {
	if v != "" {
		w.add(col+" = ?", v)
	}
}

// anyOf filters col to the values; a non-nil empty list matches nothing.
func (w *where) anyOf(col string, vs []string) {
	switch {
	case vs == nil:
	case len(vs) == 0:
		w.add("0 = 1")
	default:
		args := make([]any, len(vs))
		for i, v := range vs {
			args[i] = v
		}
		w.add(col+" IN ("+strings.TrimSuffix(strings.Repeat("?, ", len(vs)), ", ")+")", args...)
	}
}

// between bounds a millisecond column to [since, until); both bounds round up to whole
// milliseconds, as stored times are whole milliseconds.
func (w *where) between(col string, since, until time.Time) {
	if !since.IsZero() {
		w.add(col+" >= ?", ceilMillis(since))
	}
	if !until.IsZero() {
		w.add(col+" < ?", ceilMillis(until))
	}
}

// eventTime bounds events' time_ms to [since, until) and, loosely, their day column too: the
// partition key and every part's min/max index are on day, so that condition lets the server
// skip the months and the parts outside the range.
func (w *where) eventTime(since, until time.Time) {
	w.between("time_ms", since, until)
	if !since.IsZero() {
		w.add("day >= toDateTime(?)", max(ceilMillis(since), 0)/1000)
	}
	if !until.IsZero() {
		w.add("day <= toDateTime(?)", max(ceilMillis(until), 0)/1000)
	}
}

func ceilMillis(t time.Time) int64 {
	ms := t.UnixMilli()
	if t.Sub(time.UnixMilli(ms)) > 0 {
		ms++
	}
	return ms
}

// sql is the WHERE clause. With no condition it is WHERE 1: on 18.16 a Distributed table read
// FINAL with an ORDER BY and no WHERE fails ("Cannot find column version in source stream").
func (w *where) sql() string {
	if len(w.conds) == 0 {
		return " WHERE 1"
	}
	return " WHERE " + strings.Join(w.conds, " AND ")
}
