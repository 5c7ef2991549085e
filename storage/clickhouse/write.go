package clickhouse

import (
	"context"
	"errors"
	"fmt"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"go.uber.org/zap"

	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/storage"
	"github.com/urbanbrain/urbanbrain/storage/internal/canon"
)

const (
	insertEvents = `INSERT INTO events (id, type, source, time_ms, received_ms, has_location, lon, lat,
	district, street, community, grid, device, content, address, payload)`
	insertIncidents = `INSERT INTO incidents (id, version, status, open, category, severity, title,
	correlation_key, district, street, community, grid, has_location, lon, lat, assignee_worker_id,
	assignee_worker_name, agency, report_count, created_ms, updated_ms, summaries, doc, source, rule_id)`
	insertChanges = `INSERT INTO incident_changes (incident_id, version, action, from_status, to_status,
	actor_subject, actor_role, reason, note, command_id, signal_id, at_ms, doc)`
	insertReports    = `INSERT INTO incident_reports (incident_id, event_id, event_type)`
	insertDispatches = `INSERT INTO dispatches (id, incident_id, worker_id, worker_name, grid, agency,
	agency_name, reason, at_ms, level)`
)

// HandleEvent stores one event; see HandleEvents.
func (s *Store) HandleEvent(ctx context.Context, e event.Event) error {
	return s.HandleEvents(ctx, []event.Event{e})
}

// HandleEvents stores a batch of events in one insert. Replayed events collapse into the row
// already stored; events without id or type are logged and skipped; events the server refuses
// are left out and listed in a *storage.RejectedError while the rest are stored. Any other
// error means the batch should be retried as a whole.
func (s *Store) HandleEvents(ctx context.Context, events []event.Event) error {
	rows := make([][]any, 0, len(events))
	index := make([]int, 0, len(events)) // row → position in events
	for i, e := range events {
		e = canon.Event(e)
		if e.ID == "" || e.Type == "" {
			s.log.Warn("skipping event without id or type", zap.String("id", e.ID), zap.String("type", e.Type))
			continue
		}
		payload, err := event.Marshal(e)
		if err != nil {
			s.log.Warn("skipping unencodable event", zap.String("id", e.ID), zap.String("type", e.Type), zap.Error(err))
			continue
		}
		has, lon, lat := point(e.Location)
		var content, address string
		if e.Hotline != nil {
			content, address = e.Hotline.Content, e.Hotline.Address
		}
		rows = append(rows, []any{e.ID, e.Type, e.Source, canon.Millis(e.Time), canon.Millis(e.Received),
			has, lon, lat, e.Area.District, e.Area.Street, e.Area.Community, e.Area.Grid, deviceID(e),
			content, address, string(payload)})
		index = append(index, i)
	}
	rejected, err := s.isolate(ctx, len(rows), func(ctx context.Context, sel []int) error {
		return s.insert(ctx, insertEvents, rows, sel)
	})
	if err != nil {
		return fmt.Errorf("clickhouse: store events: %w", err)
	}
	return storage.Rejects(remap(rejected, index))
}

// HandleIncidentChange applies one changelog record; see HandleIncidentChanges.
func (s *Store) HandleIncidentChange(ctx context.Context, c event.IncidentChange) error {
	return s.HandleIncidentChanges(ctx, []event.IncidentChange{c})
}

// HandleIncidentChanges stores a batch of city.incidents changelog records: every version is
// inserted, and reads keep the highest one, so order and repetition do not matter. The
// timeline entry and report links of each record are inserted alongside.
func (s *Store) HandleIncidentChanges(ctx context.Context, changes []event.IncidentChange) error {
	type rec struct {
		incident, change []any
		reports          [][]any
	}
	recs := make([]rec, 0, len(changes))
	index := make([]int, 0, len(changes))
	for i, c := range changes {
		inc := canon.Incident(c.Incident)
		chg := canon.Change(c.Change)
		if inc.ID == "" {
			s.log.Warn("skipping incident change without incident id", zap.String("action", chg.Action))
			continue
		}
		incDoc, err := event.Marshal(inc)
		if err != nil {
			s.log.Warn("skipping unencodable incident", zap.String("incident", inc.ID), zap.Error(err))
			continue
		}
		changeDoc, err := event.Marshal(chg)
		if err != nil {
			s.log.Warn("skipping unencodable incident change", zap.String("incident", inc.ID), zap.Error(err))
			continue
		}
		has, lon, lat := point(inc.Location)
		summaries := make([]string, 0, len(inc.Reports))
		var reports [][]any
		for _, r := range inc.Reports {
			summaries = append(summaries, r.Summary)
			for _, ev := range r.Events() {
				reports = append(reports, []any{inc.ID, ev, r.EventType})
			}
		}
		var open uint8
		if inc.Status.Open() {
			open = 1
		}
		recs = append(recs, rec{
			incident: []any{inc.ID, inc.Version, string(inc.Status), open, inc.Category, inc.Severity, inc.Title,
				inc.CorrelationKey, inc.Area.District, inc.Area.Street, inc.Area.Community, inc.Area.Grid,
				has, lon, lat, inc.Assignment.WorkerID, inc.Assignment.WorkerName, inc.Assignment.Agency,
				int64(inc.ReportCount), canon.Millis(inc.CreatedAt), canon.Millis(inc.UpdatedAt), summaries, string(incDoc),
				storage.IncidentSource(inc), inc.RuleID},
			change: []any{inc.ID, inc.Version, chg.Action, string(chg.From), string(chg.To), chg.Actor.Subject,
				chg.Actor.Role, chg.Reason, chg.Note, chg.CommandID, chg.SignalID, canon.Millis(chg.At), string(changeDoc)},
			reports: reports,
		})
		index = append(index, i)
	}
	rejected, err := s.isolate(ctx, len(recs), func(ctx context.Context, sel []int) error {
		incidents := make([][]any, 0, len(sel))
		changes := make([][]any, 0, len(sel))
		var reports [][]any
		for _, i := range sel {
			incidents = append(incidents, recs[i].incident)
			changes = append(changes, recs[i].change)
			reports = append(reports, recs[i].reports...)
		}
		// The incident row goes last: a reader that finds the incident finds its timeline.
		if err := s.insert(ctx, insertChanges, changes, nil); err != nil {
			return err
		}
		if err := s.insert(ctx, insertReports, reports, nil); err != nil {
			return err
		}
		return s.insert(ctx, insertIncidents, incidents, nil)
	})
	if err != nil {
		return fmt.Errorf("clickhouse: store incident changes: %w", err)
	}
	return storage.Rejects(remap(rejected, index))
}

// HandleDispatch stores one dispatch record; see HandleDispatches.
func (s *Store) HandleDispatch(ctx context.Context, d event.Dispatch) error {
	return s.HandleDispatches(ctx, []event.Dispatch{d})
}

// HandleDispatches stores a batch of city.dispatch records; replayed ones collapse.
func (s *Store) HandleDispatches(ctx context.Context, ds []event.Dispatch) error {
	rows := make([][]any, 0, len(ds))
	index := make([]int, 0, len(ds))
	for i, d := range ds {
		d = canon.Dispatch(d)
		if d.ID == "" || d.IncidentID == "" {
			s.log.Warn("skipping dispatch without id or incident id",
				zap.String("dispatch", d.ID), zap.String("incident", d.IncidentID))
			continue
		}
		a := d.Assignment
		rows = append(rows, []any{d.ID, d.IncidentID, a.WorkerID, a.WorkerName, a.Grid, a.Agency,
			a.AgencyName, d.Reason, canon.Millis(d.At), d.Level})
		index = append(index, i)
	}
	rejected, err := s.isolate(ctx, len(rows), func(ctx context.Context, sel []int) error {
		return s.insert(ctx, insertDispatches, rows, sel)
	})
	if err != nil {
		return fmt.Errorf("clickhouse: store dispatches: %w", err)
	}
	return storage.Rejects(remap(rejected, index))
}

// insert sends rows[sel] (all rows when sel is nil) as one batch. It appends column by column
// (one typed slice per column) rather than row by row: the driver then copies slices instead
// of converting every value through reflection, which is most of the cost of a row append.
func (s *Store) insert(ctx context.Context, query string, rows [][]any, sel []int) error {
	n := len(rows)
	if sel != nil {
		n = len(sel)
	}
	if n == 0 {
		return nil
	}
	row := func(k int) []any {
		if sel != nil {
			return rows[sel[k]]
		}
		return rows[k]
	}
	b, err := s.conn.PrepareBatch(s.writeCtx(ctx), query)
	if err != nil {
		return err
	}
	for j := range row(0) {
		col, err := column(n, j, row)
		if err == nil {
			err = b.Column(j).Append(col)
		}
		if err != nil {
			_ = b.Abort()
			// The driver refused to encode the data: as final as a refusal by the server, and
			// bisecting finds the row.
			return &rowError{err: fmt.Errorf("column %d: %w", j, err)}
		}
	}
	return b.Send()
}

// column gathers value j of n rows into a typed slice.
func column(n, j int, row func(int) []any) (any, error) {
	switch row(0)[j].(type) {
	case string:
		return gather[string](n, j, row)
	case int64:
		return gather[int64](n, j, row)
	case uint8:
		return gather[uint8](n, j, row)
	case uint32:
		return gather[uint32](n, j, row)
	case float64:
		return gather[float64](n, j, row)
	case []string:
		return gather[[]string](n, j, row)
	default:
		return nil, fmt.Errorf("no column type for %T", row(0)[j])
	}
}

func gather[T any](n, j int, row func(int) []any) ([]T, error) {
	out := make([]T, n)
	for k := range out {
		v, ok := row(k)[j].(T)
		if !ok {
			return nil, fmt.Errorf("row %d: %T in a column of %T", k, row(k)[j], out[0])
		}
		out[k] = v
	}
	return out, nil
}

// isolate writes rows 0..n-1 through send. When the server refuses the batch because of its
// data, it bisects: each half is sent on its own, down to the single rows that fail, which are
// returned with the server's reason while every other row is stored. A batch of n rows with
// one bad row costs about 2·log2(n) extra inserts. Errors that are not about the data
// (connection, timeout, server overload) are returned at once, for the caller to retry.
func (s *Store) isolate(ctx context.Context, n int, send func(ctx context.Context, sel []int) error) ([]storage.Rejected, error) {
	if n == 0 {
		return nil, nil
	}
	sel := make([]int, n)
	for i := range sel {
		sel[i] = i
	}
	return s.bisect(ctx, sel, send)
}

func (s *Store) bisect(ctx context.Context, sel []int, send func(ctx context.Context, sel []int) error) ([]storage.Rejected, error) {
	err := send(ctx, sel)
	if err == nil {
		return nil, nil
	}
	reason, isRow := refusal(err)
	if !isRow {
		return nil, err
	}
	if len(sel) == 1 {
		s.log.Warn("row refused", zap.Int("row", sel[0]), zap.String("reason", reason))
		return []storage.Rejected{{Index: sel[0], Reason: reason}}, nil
	}
	mid := len(sel) / 2
	left, err := s.bisect(ctx, sel[:mid], send)
	if err != nil {
		return nil, err
	}
	right, err := s.bisect(ctx, sel[mid:], send)
	if err != nil {
		return nil, err
	}
	return append(left, right...), nil
}

// rowError is a row the driver could not encode.
type rowError struct{ err error }

func (e *rowError) Error() string { return e.err.Error() }
func (e *rowError) Unwrap() error { return e.err }

// rowCodes are the server's error codes that mean "this data is wrong", as opposed to
// "try again later". Anything else (TOO_MANY_PARTS, MEMORY_LIMIT_EXCEEDED, a dropped
// connection) must never be taken for a bad row, or a struggling server would send good
// records to the dead-letter topic.
var rowCodes = map[int32]string{
	6:   "CANNOT_PARSE_TEXT",
	26:  "CANNOT_PARSE_QUOTED_STRING",
	27:  "CANNOT_PARSE_INPUT_ASSERTION_FAILED",
	38:  "CANNOT_PARSE_DATE",
	41:  "CANNOT_PARSE_DATETIME",
	53:  "TYPE_MISMATCH",
	69:  "ARGUMENT_OUT_OF_BOUND",
	70:  "CANNOT_CONVERT_TYPE",
	72:  "CANNOT_PARSE_NUMBER",
	131: "TOO_LARGE_STRING_SIZE",
	321: "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE",
	395: "FUNCTION_THROW_IF_VALUE_IS_NON_ZERO", // the schema's row checks (events.time_check)
	469: "VIOLATED_CONSTRAINT",                 // CHECK constraints, on releases that have them
}

// refusal tells whether err is the server (or driver) refusing the data, and why.
func refusal(err error) (string, bool) {
	var re *rowError
	if errors.As(err, &re) {
		return "clickhouse driver refused the row: " + re.err.Error(), true
	}
	var exc *ch.Exception
	if errors.As(err, &exc) {
		if name, ok := rowCodes[exc.Code]; ok {
			hint := ""
			if exc.Code == 395 {
				hint = " (the schema's row check: an event time must be within 1970-01-01..2105-12-31)"
			}
			return fmt.Sprintf("clickhouse refused the row: %s (code %d): %s%s", name, exc.Code, exc.Message, hint), true
		}
	}
	return "", false
}

// remap turns row positions into positions of the caller's batch.
func remap(rejected []storage.Rejected, index []int) []storage.Rejected {
	for i := range rejected {
		rejected[i].Index = index[rejected[i].Index]
	}
	return rejected
}

// point is p as column values: has_location, lon, lat.
func point(p *event.Point) (uint8, float64, float64) {
	if p == nil {
		return 0, 0, 0
	}
	return 1, p.Lon, p.Lat
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
