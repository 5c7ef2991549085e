package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io/fs"

	"github.com/pressly/goose/v3"
	"go.uber.org/zap"

	"github.com/urbanbrain/urbanbrain/event"
)

// provider runs the embedded migrations on db: the SQL files in migrations/ and, numbered with
// them, those written in Go.
func provider(db *sql.DB, log *zap.Logger) (*goose.Provider, error) {
	dir, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, err
	}
	return goose.NewProvider(goose.DialectSQLite3, db, dir, goose.WithDisableGlobalRegistry(true),
		goose.WithGoMigrations(
			// 00015: report links that migration 00014 could give no time (their event was not
			// stored yet when the store was upgraded) take it from their incident's document,
			// where the report that names the event has it. Undoing it leaves the times:
			// 00014's undoing drops the column.
			goose.NewGoMigration(15, &goose.GoFunc{RunTx: func(ctx context.Context, tx *sql.Tx) error {
				return timeReportLinks(ctx, tx, log)
			}}, nil),
		))
}

// timeReportLinks gives each report link without a time the time linkReports would give it
// now, from the report of its incident that names its event. A link whose incident no longer
// names the event (a split moved the report away), or whose incident's document cannot be
// read, keeps 0: the store still opens.
func timeReportLinks(ctx context.Context, tx *sql.Tx, log *zap.Logger) error {
	rows, err := tx.QueryContext(ctx, `SELECT r.incident_id, r.event_id, i.doc FROM incident_reports r
		JOIN incidents i ON i.id = r.incident_id WHERE r.event_time_ms = 0 ORDER BY r.incident_id`)
	if err != nil {
		return fmt.Errorf("report links without a time: %w", err)
	}
	type link struct {
		incident, event string
		at              int64
	}
	var timed []link
	var inc event.Incident
	for rows.Next() {
		var l link
		var doc string
		if err := rows.Scan(&l.incident, &l.event, &doc); err != nil {
			rows.Close()
			return err
		}
		if inc.ID != l.incident {
			inc = event.Incident{}
			if err := json.Unmarshal([]byte(doc), &inc); err != nil {
				log.Warn("report links of an unreadable incident keep no time", zap.String("incident", l.incident), zap.Error(err))
				inc = event.Incident{}
			}
			inc.ID = l.incident
		}
		for _, r := range inc.Reports {
			if r.EventID == l.event || r.LastEventID == l.event {
				l.at = reportedAt(r, l.event)
				break
			}
		}
		if l.at != 0 {
			timed = append(timed, l)
		}
	}
	if err := rows.Close(); err != nil {
		return err
	}
	if err := rows.Err(); err != nil {
		return err
	}
	for _, l := range timed {
		if _, err := tx.ExecContext(ctx, "UPDATE incident_reports SET event_time_ms = ? WHERE incident_id = ? AND event_id = ?",
			l.at, l.incident, l.event); err != nil {
			return fmt.Errorf("time the link of %s to %s: %w", l.event, l.incident, err)
		}
	}
	return nil
}
