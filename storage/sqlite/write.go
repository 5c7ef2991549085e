package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"go.uber.org/zap"

	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/storage"
	"github.com/urbanbrain/urbanbrain/storage/internal/canon"
)

// Every write is idempotent, so a replayed topic leaves the same rows: events and dispatches
// are written once by their key, an incident row is replaced only by a newer version, and
// timeline rows and report links are written once.
const (
	insertEventSQL = `INSERT OR IGNORE INTO events
	(id, type, source, time_ms, received_ms, lon, lat, district, street, community, grid, device, payload)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

	upsertIncidentSQL = `INSERT INTO incidents
	(id, version, status, open, category, severity, title, correlation_key,
	 district, street, community, grid, lon, lat,
	 assignee_worker_id, assignee_worker_name, agency, report_count, created_ms, updated_ms, doc,
	 source, rule_id)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
	ON CONFLICT (id) DO UPDATE SET
	 version = excluded.version, status = excluded.status, open = excluded.open,
	 category = excluded.category, severity = excluded.severity, title = excluded.title,
	 correlation_key = excluded.correlation_key,
	 district = excluded.district, street = excluded.street, community = excluded.community,
	 grid = excluded.grid, lon = excluded.lon, lat = excluded.lat,
	 assignee_worker_id = excluded.assignee_worker_id,
	 assignee_worker_name = excluded.assignee_worker_name, agency = excluded.agency,
	 report_count = excluded.report_count, created_ms = excluded.created_ms,
	 updated_ms = excluded.updated_ms, doc = excluded.doc,
	 source = excluded.source, rule_id = excluded.rule_id
	WHERE excluded.version > incidents.version`

	insertChangeSQL = `INSERT OR IGNORE INTO incident_changes
	(incident_id, version, action, from_status, to_status, actor_subject, actor_role,
	 reason, note, command_id, signal_id, at_ms, doc)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

	insertReportSQL = `INSERT OR IGNORE INTO incident_reports (incident_id, event_id, event_type, event_time_ms)
	VALUES (?, ?, ?, ?)`

	insertDispatchSQL = `INSERT OR IGNORE INTO dispatches
	(id, incident_id, worker_id, worker_name, grid, agency, agency_name, reason, at_ms, level)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
)

// writeStmts are prepared once on the write connection; transactions reuse them through
// Tx.StmtContext, which finds them already prepared on that connection.
type writeStmts struct {
	event, incident, change, report, dispatch *sql.Stmt
}

func (ws *writeStmts) prepare(ctx context.Context, db *sql.DB) error {
	for _, p := range []struct {
		dst   **sql.Stmt
		query string
	}{
		{&ws.event, insertEventSQL},
		{&ws.incident, upsertIncidentSQL},
		{&ws.change, insertChangeSQL},
		{&ws.report, insertReportSQL},
		{&ws.dispatch, insertDispatchSQL},
	} {
		st, err := db.PrepareContext(ctx, p.query)
		if err != nil {
			return fmt.Errorf("sqlite: prepare: %w", err)
		}
		*p.dst = st
	}
	return nil
}

func (ws *writeStmts) close() error {
	var errs []error
	for _, st := range []*sql.Stmt{ws.event, ws.incident, ws.change, ws.report, ws.dispatch} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	return errors.Join(errs...)
}

// HandleEvent stores a validated event from city.events; a replayed event is ignored.
// A record that cannot be stored (no id or type, unencodable payload) is logged and skipped:
// redelivering it would fail the same way and block the partition.
//
// An event the store refuses (storage.CheckEventTime) returns a *storage.RejectedError.
func (s *Store) HandleEvent(ctx context.Context, e event.Event) error {
	if err := storage.CheckEventTime(e); err != nil {
		return storage.Rejects([]storage.Rejected{{Index: 0, Reason: err.Error()}})
	}
	args, ok := s.eventArgs(e)
	if !ok {
		return nil
	}
	if _, err := s.writes.event.ExecContext(ctx, args...); err != nil {
		return fmt.Errorf("sqlite: store event %s %s: %w", e.Type, e.ID, err)
	}
	return nil
}

// HandleEvents stores a batch of events in one transaction, which is much faster than one
// HandleEvent per event; replayed events are ignored and bad ones skipped as in HandleEvent.
// Refused events are left out and listed in a *storage.RejectedError; the rest are stored.
func (s *Store) HandleEvents(ctx context.Context, events []event.Event) error {
	var rejected []storage.Rejected
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		rejected = rejected[:0]
		rows := rowContext(ctx)
		st := tx.StmtContext(rows, s.writes.event)
		for i, e := range events {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := storage.CheckEventTime(e); err != nil {
				rejected = append(rejected, storage.Rejected{Index: i, Reason: err.Error()})
				continue
			}
			args, ok := s.eventArgs(e)
			if !ok {
				continue
			}
			if _, err := st.ExecContext(rows, args...); err != nil {
				return fmt.Errorf("sqlite: store event %s %s: %w", e.Type, e.ID, err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return storage.Rejects(rejected)
}

// HandleIncidentChange applies one city.incidents changelog record in one transaction: the
// incident row takes the record's state only if its version is newer than the stored one (so
// a late or replayed record never rolls it back), and the timeline entry and report links are
// added if missing.
func (s *Store) HandleIncidentChange(ctx context.Context, ch event.IncidentChange) error {
	return s.HandleIncidentChanges(ctx, []event.IncidentChange{ch})
}

// HandleIncidentChanges applies a batch of changelog records in one transaction, as
// HandleIncidentChange does each; use it to replay the changelog quickly. An incident's row is
// written once per batch, with the newest version the batch holds, before its first timeline
// entry: an incident that changes often (each reading of a device's episode is a change)
// would otherwise rewrite its document and its ten index entries for every version. Every
// version's timeline entry is still written, and every report link it names is ensured, once
// per batch.
func (s *Store) HandleIncidentChanges(ctx context.Context, changes []event.IncidentChange) error {
	newest := make(map[string]int, len(changes)) // incident → index of its newest version here
	for i, ch := range changes {
		if j, ok := newest[ch.Incident.ID]; !ok || ch.Incident.Version > changes[j].Incident.Version {
			newest[ch.Incident.ID] = i
		}
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		rows := rowContext(ctx)
		incident := tx.StmtContext(rows, s.writes.incident)
		change := tx.StmtContext(rows, s.writes.change)
		report := tx.StmtContext(rows, s.writes.report)
		applied := make(map[string]upserted, len(newest))
		linked := make(map[[2]string]bool) // (incident, event) links written by this batch
		for _, ch := range changes {
			if err := ctx.Err(); err != nil {
				return err
			}
			id := ch.Incident.ID
			if id == "" {
				s.log.Warn("skipping incident change without incident id", zap.String("action", ch.Change.Action))
				continue
			}
			u, seen := applied[id]
			if !seen {
				var err error
				if u, err = s.upsertIncident(rows, incident, changes[newest[id]].Incident); err != nil {
					return err
				}
				applied[id] = u
			}
			if u == unencodable {
				continue
			}
			fresh := u == written
			if err := s.insertChange(rows, change, ch); err != nil {
				return err
			}
			// When the store already held a newer version (a replay), these versions' reports
			// were linked when they were first stored; skipping them saves a lookup per report.
			if fresh {
				if err := linkReports(rows, report, ch.Incident, linked); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// upserted is what upsertIncident did with an incident's row.
type upserted int

const (
	written     upserted = iota // the version was newer than the stored one
	stale                       // the store holds this version or a newer one
	unencodable                 // not stored, nor are the batch's other versions of it
)

// upsertIncident writes inc's row if its version is newer than the stored one.
func (s *Store) upsertIncident(ctx context.Context, incident *sql.Stmt, inc event.Incident) (upserted, error) {
	inc = canon.Incident(inc)
	incDoc, err := event.MarshalString(inc)
	if err != nil {
		s.log.Warn("skipping unencodable incident", zap.String("incident", inc.ID),
			zap.Int64("version", inc.Version), zap.Error(err))
		return unencodable, nil
	}
	lon, lat := point(inc.Location)
	res, err := incident.ExecContext(ctx,
		inc.ID, inc.Version, string(inc.Status), inc.Status.Open(), inc.Category, inc.Severity,
		inc.Title, inc.CorrelationKey,
		inc.Area.District, inc.Area.Street, inc.Area.Community, inc.Area.Grid, lon, lat,
		inc.Assignment.WorkerID, inc.Assignment.WorkerName, inc.Assignment.Agency,
		inc.ReportCount, canon.Millis(inc.CreatedAt), canon.Millis(inc.UpdatedAt), incDoc,
		storage.IncidentSource(inc), inc.RuleID)
	if err != nil {
		return stale, fmt.Errorf("sqlite: store incident %s v%d: %w", inc.ID, inc.Version, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return stale, fmt.Errorf("sqlite: store incident %s v%d: %w", inc.ID, inc.Version, err)
	}
	if n == 0 {
		return stale, nil
	}
	return written, nil
}

// insertChange adds the timeline entry of ch's version, if missing.
func (s *Store) insertChange(ctx context.Context, change *sql.Stmt, ch event.IncidentChange) error {
	inc, c := ch.Incident, canon.Change(ch.Change)
	changeDoc, err := event.MarshalString(c)
	if err != nil {
		s.log.Warn("skipping unencodable incident change", zap.String("incident", inc.ID),
			zap.Int64("version", inc.Version), zap.Error(err))
		return nil
	}
	if _, err := change.ExecContext(ctx,
		inc.ID, inc.Version, c.Action, string(c.From), string(c.To), c.Actor.Subject, c.Actor.Role,
		c.Reason, c.Note, c.CommandID, c.SignalID, canon.Millis(c.At), changeDoc); err != nil {
		return fmt.Errorf("sqlite: store change %s v%d: %w", inc.ID, inc.Version, err)
	}
	return nil
}

// linkReports links the events of every report of inc to it. Each version names an episode's
// reading of that change as its latest, so linking every version links every reading.
func linkReports(ctx context.Context, report *sql.Stmt, inc event.Incident, linked map[[2]string]bool) error {
	for _, r := range inc.Reports {
		for _, ev := range r.Events() {
			// Every version of an incident names all its reports, most of them unchanged: a
			// link this batch already wrote is not looked up again.
			if linked[[2]string{inc.ID, ev}] {
				continue
			}
			if _, err := report.ExecContext(ctx, inc.ID, ev, r.EventType, reportedAt(r, ev)); err != nil {
				return fmt.Errorf("sqlite: link event %s to %s: %w", ev, inc.ID, err)
			}
			linked[[2]string{inc.ID, ev}] = true
		}
	}
	return nil
}

// reportedAt is when event ev of r happened, in the milliseconds events are keyed by: an
// episode's latest reading at LastAt, its first (and any other report's event) at At. A report
// of an event without a time has its signal's time instead; GetIncident's join allows for it.
func reportedAt(r event.Report, ev string) int64 {
	if ev == r.LastEventID && ev != r.EventID {
		return canon.Millis(r.LastAt)
	}
	return canon.Millis(r.At)
}

// HandleDispatch stores a dispatch record from city.dispatch; a replayed one is ignored.
func (s *Store) HandleDispatch(ctx context.Context, d event.Dispatch) error {
	return s.storeDispatch(ctx, s.writes.dispatch, d)
}

// HandleDispatches stores a batch of dispatch records in one transaction.
func (s *Store) HandleDispatches(ctx context.Context, ds []event.Dispatch) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		rows := rowContext(ctx)
		st := tx.StmtContext(rows, s.writes.dispatch)
		for _, d := range ds {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := s.storeDispatch(rows, st, d); err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *Store) storeDispatch(ctx context.Context, st *sql.Stmt, d event.Dispatch) error {
	d = canon.Dispatch(d)
	if d.ID == "" || d.IncidentID == "" {
		s.log.Warn("skipping dispatch without id or incident id",
			zap.String("dispatch", d.ID), zap.String("incident", d.IncidentID))
		return nil
	}
	a := d.Assignment
	if _, err := st.ExecContext(ctx, d.ID, d.IncidentID, a.WorkerID, a.WorkerName,
		a.Grid, a.Agency, a.AgencyName, d.Reason, canon.Millis(d.At), d.Level); err != nil {
		return fmt.Errorf("sqlite: store dispatch %s: %w", d.ID, err)
	}
	return nil
}

// eventArgs are the column values of e, or false if e cannot be stored.
func (s *Store) eventArgs(e event.Event) ([]any, bool) {
	e = canon.Event(e)
	if e.ID == "" || e.Type == "" {
		s.log.Warn("skipping event without id or type", zap.String("id", e.ID), zap.String("type", e.Type))
		return nil, false
	}
	payload, err := event.MarshalString(e)
	if err != nil {
		s.log.Warn("skipping unencodable event", zap.String("id", e.ID), zap.String("type", e.Type), zap.Error(err))
		return nil, false
	}
	lon, lat := point(e.Location)
	return []any{e.ID, e.Type, e.Source, canon.Millis(e.Time), canon.Millis(e.Received), lon, lat,
		e.Area.District, e.Area.Street, e.Area.Community, e.Area.Grid, deviceID(e), payload}, true
}

// deviceID is the id of the device that sent e: the sensor or the camera.
func deviceID(e event.Event) string {
	switch {
	case e.Sensor != nil:
		return e.Sensor.DeviceID
	case e.Video != nil:
		return e.Video.CameraID
	}
	return ""
}

// point is p as nullable column values.
func point(p *event.Point) (lon, lat any) {
	if p == nil {
		return nil, nil
	}
	return p.Lon, p.Lat
}

// rowContext is what the statements of a batch's rows run with: ctx without its cancellation
// or deadline. modernc's driver starts a goroutine for every statement whose context can end,
// to interrupt the statement if it does: one per stored row (setting it up was 0.66 % of the
// server's CPU at 5,000 events/s, besides the goroutines' starts). A row's statements take
// tens of microseconds and wait for no lock (BEGIN IMMEDIATE took the write lock, and the WAL
// checkpoint runs at COMMIT), so a batch checks ctx between rows instead; BEGIN and COMMIT
// still run with ctx, and a transaction whose ctx ends is rolled back whole once the row's
// statement in flight returns.
func rowContext(ctx context.Context) context.Context { return context.WithoutCancel(ctx) }

// inTx runs fn in one write transaction, committed if fn returns nil and rolled back if not.
func (s *Store) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: begin: %w", err)
	}
	if err := fn(tx); err != nil {
		// The error that made us roll back is the one worth reporting.
		_ = tx.Rollback()
		return ended(ctx, err)
	}
	if err := tx.Commit(); err != nil {
		return ended(ctx, fmt.Errorf("sqlite: commit: %w", err))
	}
	return nil
}

// ended is err, saying that ctx ended if it did: a row's statement that meets the transaction
// rolled back because ctx ended fails with sql.ErrTxDone, which does not say why.
func ended(ctx context.Context, err error) error {
	if cause := ctx.Err(); cause != nil && !errors.Is(err, cause) {
		return fmt.Errorf("%w (%w)", cause, err)
	}
	return err
}
