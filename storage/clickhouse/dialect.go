package clickhouse

import (
	"strings"
	"time"

	"github.com/urbanbrain/urbanbrain/storage"
	"github.com/urbanbrain/urbanbrain/storage/internal/query"
)

// dialect is how ClickHouse (18.16 and current) spells what the shared query builder needs.
// Arguments are bound by the driver on the client, with quoting. Events are immutable, so the
// copies of one are identical and a condition on events may be checked before or after dropping
// duplicates alike.
var dialect = &query.Dialect{
	// On 18.16 a Distributed table read FINAL with an ORDER BY and no WHERE fails ("Cannot
	// find column version in source stream").
	NoConditions: " WHERE 1",
	// The masking pattern travels as an argument: replaceRegexpAll is in 18.16 already, and
	// runs the very pattern SQLite runs through Go, so both backends mask alike.
	Contains: func(expr string, masked bool, needle string) (string, []any) {
		if masked {
			return "position(lower(replaceRegexpAll(" + expr + ", ?, '*')), ?) > 0", []any{storage.SearchMaskPattern, needle}
		}
		return "position(lower(" + expr + "), ?) > 0", []any{needle}
	},
	AnyReport:      func(cond string) string { return "arrayExists(x -> " + cond + ", summaries)" },
	ReportSummary:  "x",
	HotlineContent: "content",
	HotlineAddress: "address",
	HasLocation:    "has_location = 1",
	EventPartition: eventDay,

	// 0 when the incident has not reached the status (yet). min() is unchanged by duplicate
	// timeline rows, so no FINAL is needed there.
	FirstReached: "minIf(at_ms, to_status = ? AND at_ms != 0)",
	Reached:      func(col string) string { return col + " != 0" },
	CountIf:      func(cond string) string { return "countIf(" + cond + ")" },
	SumIf:        func(expr, cond string) string { return "sumIf(" + expr + ", " + cond + ")" },
	SeverityLimit: func(n int) string {
		if n == 0 {
			return "toInt64(-1)"
		}
		return "multiIf(" + strings.Repeat("severity = ?, toInt64(?), ", n) + "toInt64(-1))"
	},

	IncidentsTable: "incidents FINAL",
	Int:            func(expr string) string { return "toInt64(" + expr + ")" },
	Milestones: func(cols, milestones []string, args []any, w *query.Where) (string, []any) {
		list := strings.Join(cols, ", ")
		return "SELECT " + list + ", t_created, " + strings.Join(query.MilestoneCols(), ", ") + " FROM (" +
			"SELECT id, " + list + ", created_ms AS t_created FROM incidents FINAL" + w.SQL() + ") " +
			"ANY LEFT JOIN (SELECT incident_id AS id, " + strings.Join(milestones, ", ") +
			" FROM incident_changes GROUP BY incident_id) USING id", append(w.ArgsWith(), args...)
	},
}

// eventDay bounds, loosely, the events' day column to [since, until) (time_ms is bounded
// exactly): the partition key and every part's min/max index are on day, so the condition lets
// the server skip the months and the parts outside the range.
func eventDay(w *query.Where, since, until time.Time) {
	if !since.IsZero() {
		w.Add(query.TimeRange, "day", " >= toDateTime(?)", max(query.CeilMillis(since), 0)/1000)
	}
	if !until.IsZero() {
		w.Add(query.TimeRange, "day", " <= toDateTime(?)", max(query.CeilMillis(until), 0)/1000)
	}
}
