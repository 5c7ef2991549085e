package sqlite

import (
	"context"
	"database/sql/driver"
	"encoding/json"
	"fmt"
	"strings"

	"modernc.org/sqlite"

	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/storage"
)

// searchMaskFunc is storage.SearchMask as an SQL function, for masked text searches
// (storage.IncidentFilter.TextMasked). SQLite has no regular expressions of its own; this
// runs the very pattern ClickHouse runs, so both backends mask alike.
const searchMaskFunc = "urbanbrain_search_mask"

func init() {
	sqlite.MustRegisterDeterministicScalarFunction(searchMaskFunc, 1, func(_ *sqlite.FunctionContext, args []driver.Value) (driver.Value, error) {
		switch v := args[0].(type) {
		case string:
			return storage.SearchMask(v), nil
		case []byte:
			return storage.SearchMask(string(v)), nil
		}
		return args[0], nil // NULL and numbers hold no text to mask
	})
}

// lowerText is the SQL of expr as a text search compares it: ASCII-lowered, and for a
// masked search without the personal data SearchMask hides.
func lowerText(expr string, masked bool) string {
	if masked {
		return "lower(" + searchMaskFunc + "(" + expr + "))"
	}
	return "lower(" + expr + ")"
}

// anyOf filters col to the values; a non-nil empty list matches nothing.
func (w *where) anyOf(col string, vs []string) {
	switch {
	case vs == nil:
	case len(vs) == 0:
		w.add("", "0 = 1", computed)
	default:
		args := make([]any, len(vs))
		for i, v := range vs {
			args[i] = v
		}
		w.add(col, " IN ("+strings.TrimSuffix(strings.Repeat("?, ", len(vs)), ", ")+")", selective, args...)
	}
}

// eventsSource is the FROM clause of an event list. With no indexed column to start from (a
// text or radius search alone), SQLite would scan the whole table and sort it; walking the time
// index newest first instead stops as soon as the page is full, which for any filter that
// matches more than a sliver of the events is thousands of times less work.
func eventsSource(w where, f storage.EventFilter) string {
	if f.Type != "" {
		return "events" // events_type carries the time order
	}
	for _, t := range w.terms {
		if t.kind == selective {
			return "events"
		}
	}
	return "events INDEXED BY events_time"
}

// eventExtras adds the search filters of f that the first cut did not have.
func eventExtras(w *where, f storage.EventFilter) {
	w.anyOf("grid", f.Grids)
	if c := f.Near; c != nil {
		// The same arithmetic as storage.Circle.Contains, so both backends draw one boundary.
		kx, ky := c.Scales()
		w.add("", `(lon IS NOT NULL AND ((lon - ?) * ?) * ((lon - ?) * ?) + ((lat - ?) * ?) * ((lat - ?) * ?) <= ?)`,
			computed, c.Lon, kx, c.Lon, kx, c.Lat, ky, c.Lat, ky, c.RadiusM*c.RadiusM)
	}
	if f.Text != "" {
		needle := storage.LowerASCII(f.Text)
		w.add("", `(instr(`+lowerText(`json_extract(payload, '$.hotline.content')`, f.TextMasked)+`, ?) > 0
			OR instr(`+lowerText(`json_extract(payload, '$.hotline.address')`, f.TextMasked)+`, ?) > 0)`, computed, needle, needle)
	}
}

// EachEvent calls fn with every stored event that matches f, oldest first (then by type and id),
// ignoring f's Limit and Offset: the replay a rule backtest reads. It stops at fn's first error
// and returns it.
func (s *Store) EachEvent(ctx context.Context, f storage.EventFilter, fn func(event.Event) error) error {
	f.Limit, f.Offset = 0, 0
	if err := f.Validate(); err != nil {
		return err
	}
	var w where
	w.eqCoarse("type", f.Type)
	w.eq("district", f.District)
	w.eq("street", f.Street)
	w.eq("grid", f.Grid)
	w.eq("device", f.DeviceID)
	w.between("time_ms", f.Since, f.Until)
	eventExtras(&w, f)
	rows, err := s.r.QueryContext(ctx, "SELECT payload FROM events"+w.sql()+" ORDER BY time_ms, type, id", w.args...)
	if err != nil {
		return fmt.Errorf("sqlite: replay events: %w", err)
	}
	defer rows.Close()
	var doc []byte
	for rows.Next() {
		if err := rows.Scan(&doc); err != nil {
			return fmt.Errorf("sqlite: replay events: %w", err)
		}
		var e event.Event
		if err := json.Unmarshal(doc, &e); err != nil {
			return fmt.Errorf("sqlite: replay events: decode: %w", err)
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	return rows.Err()
}
