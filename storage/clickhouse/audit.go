package clickhouse

import (
	"context"
	"encoding/json"
	"fmt"

	"go.uber.org/zap"

	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/storage"
	"github.com/urbanbrain/urbanbrain/storage/internal/canon"
)

const insertAudit = `INSERT INTO audit_log (id, kind, incident_id, command_id, action, actor_subject,
	actor_role, ok, code, from_status, to_status, at_ms, doc)`

// HandleAudit stores one audit record; a replayed record collapses into the stored one.
func (s *Store) HandleAudit(ctx context.Context, rec event.AuditRecord) error {
	return s.HandleAudits(ctx, []event.AuditRecord{rec})
}

// HandleAudits stores a batch of city.audit records. A record without an id cannot be stored
// once and is skipped, as in the SQLite store.
func (s *Store) HandleAudits(ctx context.Context, recs []event.AuditRecord) error {
	rows := make([][]any, 0, len(recs))
	index := make([]int, 0, len(recs))
	for i, r := range recs {
		if r.ID == "" {
			s.log.Warn("skipping audit record without id", zap.String("incident", r.IncidentID))
			continue
		}
		doc, err := json.Marshal(r)
		if err != nil {
			s.log.Warn("skipping unencodable audit record", zap.String("id", r.ID), zap.Error(err))
			continue
		}
		var ok uint8
		if r.OK {
			ok = 1
		}
		rows = append(rows, []any{r.ID, r.Kind, r.IncidentID, r.CommandID, r.Action, r.Actor.Subject, r.Actor.Role,
			ok, r.Code, string(r.From), string(r.To), canon.Millis(r.At), string(doc)})
		index = append(index, i)
	}
	rejected, err := s.isolate(ctx, len(rows), func(ctx context.Context, sel []int) error {
		return s.insert(ctx, insertAudit, rows, sel)
	})
	if err != nil {
		return fmt.Errorf("clickhouse: store audit records: %w", err)
	}
	return storage.Rejects(remap(rejected, index))
}

// ListAudit returns the audit records of one incident, oldest first.
func (s *Store) ListAudit(ctx context.Context, incidentID string) ([]event.AuditRecord, error) {
	out, err := queryDocs[event.AuditRecord](ctx, s.conn,
		"SELECT doc FROM audit_log FINAL "+s.keyCond()+" incident_id = ? ORDER BY at_ms, id", []any{incidentID})
	if err != nil {
		return nil, fmt.Errorf("clickhouse: list audit: %w", err)
	}
	return out, nil
}
