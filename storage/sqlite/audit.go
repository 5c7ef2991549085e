package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/storage/internal/canon"
	"github.com/urbanbrain/urbanbrain/storage/internal/query"
)

// The audit log (city.audit) is projected into the append-only audit_log table: each record
// once, by its id, so a replayed topic adds nothing; the table's triggers refuse updates and
// deletes.

const insertAuditSQL = `INSERT OR IGNORE INTO audit_log
	(id, kind, incident_id, command_id, action, actor_subject, actor_role, ok, code,
	 from_status, to_status, at_ms, doc)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

// HandleAudit stores one audit record; a replayed record is ignored.
func (s *Store) HandleAudit(ctx context.Context, rec event.AuditRecord) error {
	return s.HandleAudits(ctx, []event.AuditRecord{rec})
}

// HandleAudits stores a batch of audit records in one transaction. A record without an id
// cannot be stored once and is skipped.
func (s *Store) HandleAudits(ctx context.Context, recs []event.AuditRecord) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		rows := rowContext(ctx)
		st, err := tx.PrepareContext(rows, insertAuditSQL)
		if err != nil {
			return fmt.Errorf("sqlite: prepare audit: %w", err)
		}
		defer st.Close()
		for _, r := range recs {
			if err := ctx.Err(); err != nil {
				return err
			}
			if r.ID == "" {
				continue
			}
			doc, err := json.Marshal(r)
			if err != nil {
				continue
			}
			ok := 0
			if r.OK {
				ok = 1
			}
			if _, err := st.ExecContext(rows, r.ID, r.Kind, r.IncidentID, r.CommandID, r.Action, r.Actor.Subject,
				r.Actor.Role, ok, r.Code, string(r.From), string(r.To), canon.Millis(r.At), string(doc)); err != nil {
				return fmt.Errorf("sqlite: store audit %s: %w", r.ID, err)
			}
		}
		return nil
	})
}

// ListAudit returns the audit records of one incident, oldest first.
func (s *Store) ListAudit(ctx context.Context, incidentID string) ([]event.AuditRecord, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT doc FROM audit_log WHERE incident_id = ? ORDER BY at_ms, id`, incidentID)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list audit: %w", err)
	}
	return query.Docs[event.AuditRecord](rows)
}
