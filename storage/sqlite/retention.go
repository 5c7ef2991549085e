package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/urbanbrain/urbanbrain/storage"
	"github.com/urbanbrain/urbanbrain/storage/internal/canon"
)

// retainChunk bounds one delete transaction, so that the single writer is never held for
// long and the handlers keep up while a large backlog of old rows goes.
const retainChunk = 5000

// Retain deletes what is older than the cutoffs: events before c.Events, and closed incidents
// last updated before c.Incidents with their timeline, report links and dispatches. Open
// incidents stay whatever their age.
func (s *Store) Retain(ctx context.Context, c storage.Cutoffs) (storage.Removed, error) {
	var out storage.Removed
	if !c.Events.IsZero() {
		n, err := s.deleteChunks(ctx,
			"DELETE FROM events WHERE rowid IN (SELECT rowid FROM events WHERE time_ms < ? LIMIT ?)",
			canon.Millis(c.Events), retainChunk)
		out.Events = n
		if err != nil {
			return out, fmt.Errorf("sqlite: retain events: %w", err)
		}
	}
	if !c.Incidents.IsZero() {
		cutoff := canon.Millis(c.Incidents)
		for {
			var n int
			err := s.inTx(ctx, func(tx *sql.Tx) error {
				// Dispatches first: they have no foreign key; the timeline and report links go
				// with their incident (ON DELETE CASCADE).
				const victims = "SELECT id FROM incidents WHERE open = 0 AND updated_ms < ? ORDER BY id LIMIT ?"
				if _, err := tx.ExecContext(ctx, "DELETE FROM dispatches WHERE incident_id IN ("+victims+")",
					cutoff, retainChunk); err != nil {
					return err
				}
				res, err := tx.ExecContext(ctx, "DELETE FROM incidents WHERE id IN ("+victims+")", cutoff, retainChunk)
				if err != nil {
					return err
				}
				affected, err := res.RowsAffected()
				n = int(affected)
				return err
			})
			if err != nil {
				return out, fmt.Errorf("sqlite: retain incidents: %w", err)
			}
			out.Incidents += n
			if n < retainChunk {
				break
			}
		}
	}
	return out, nil
}

func (s *Store) deleteChunks(ctx context.Context, query string, args ...any) (int, error) {
	total := 0
	for {
		res, err := s.w.ExecContext(ctx, query, args...)
		if err != nil {
			return total, err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, err
		}
		total += int(n)
		if n < retainChunk {
			return total, nil
		}
	}
}
