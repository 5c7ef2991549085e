package sqlite

import (
	"context"
	"database/sql/driver"
	"fmt"
	"strings"

	"modernc.org/sqlite"

	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/storage"
	"github.com/urbanbrain/urbanbrain/storage/internal/query"
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

// dialect is how SQLite spells what the shared query builder needs.
var dialect = &query.Dialect{
	// Without statistics SQLite picks among equally good-looking indexes at random, and would
	// as soon scan half the table through the open or severity index as a few hundred rows
	// through the district one. So a coarse column (few distinct values) is kept out of index
	// choice, by the unary-plus idiom, whenever a selective column is also filtered.
	HintCoarse: true,
	Contains: func(expr string, masked bool, needle string) (string, []any) {
		return "instr(" + lowerText(expr, masked) + ", ?) > 0", []any{needle}
	},
	AnyReport: func(cond string) string {
		return "EXISTS (SELECT 1 FROM json_each(incidents.doc, '$.reports') WHERE " + cond + ")"
	},
	ReportSummary:  "json_extract(value, '$.summary')",
	HotlineContent: "json_extract(payload, '$.hotline.content')",
	HotlineAddress: "json_extract(payload, '$.hotline.address')",
	HasLocation:    "lon IS NOT NULL",

	// NULL when the incident has not reached the status (yet).
	FirstReached: "(SELECT min(at_ms) FROM incident_changes c WHERE c.incident_id = i.id AND c.to_status = ? AND c.at_ms <> 0)",
	Reached:      func(col string) string { return col + " IS NOT NULL" },
	CountIf:      func(cond string) string { return "sum(CASE WHEN " + cond + " THEN 1 ELSE 0 END)" },
	SumIf: func(expr, cond string) string {
		return "coalesce(sum(CASE WHEN " + cond + " THEN " + expr + " END), 0)"
	},
	SeverityLimit: func(n int) string {
		if n == 0 {
			return "-1"
		}
		return "(CASE severity" + strings.Repeat(" WHEN ? THEN ?", n) + " ELSE -1 END)"
	},

	IncidentsTable: "incidents",
	CountAll:       "*",
	Int:            func(expr string) string { return expr },
	Milestones: func(cols, milestones []string, args []any, w *query.Where) (string, []any) {
		return "SELECT i." + strings.Join(cols, ", i.") + ", i.created_ms AS t_created, " + strings.Join(milestones, ", ") +
			" FROM incidents i" + w.SQL(), append(args, w.Args...)
	},
}

// lowerText is the SQL of expr as a text search compares it: ASCII-lowered, and for a
// masked search without the personal data SearchMask hides.
func lowerText(expr string, masked bool) string {
	if masked {
		return "lower(" + searchMaskFunc + "(" + expr + "))"
	}
	return "lower(" + expr + ")"
}

// eventsSource is the FROM clause of an event list. With no indexed column to start from (a
// text or radius search alone), SQLite would scan the whole table and sort it; walking the time
// index newest first instead stops as soon as the page is full, which for any filter that
// matches more than a sliver of the events is thousands of times less work.
func eventsSource(w *query.Where, f storage.EventFilter) string {
	if f.Type != "" {
		return "events" // events_type carries the time order
	}
	if w.HasSelective() {
		return "events"
	}
	return "events INDEXED BY events_time"
}

// EachEvent calls fn with every stored event that matches f, oldest first (then by type and id),
// ignoring f's Limit and Offset: the replay a rule backtest reads. It stops at fn's first error
// and returns it.
func (s *Store) EachEvent(ctx context.Context, f storage.EventFilter, fn func(event.Event) error) error {
	f.Limit, f.Offset = 0, 0
	if err := f.Validate(); err != nil {
		return err
	}
	w := dialect.Events(f)
	rows, err := s.r.QueryContext(ctx, "SELECT payload FROM events"+w.SQL()+" ORDER BY time_ms, type, id", w.Args...)
	if err != nil {
		return fmt.Errorf("sqlite: replay events: %w", err)
	}
	return query.EachDoc(rows, "sqlite: replay events: ", fn)
}
