-- What the leadership report counts incidents by (issue 14 item 6): where an incident came from
-- (the event type of its first report, storage.IncidentSource) and the rule that opened it.
-- Rows stored before this migration are filled from their documents; the index serves the
-- report's "created in the period".

-- +goose Up
ALTER TABLE incidents ADD COLUMN source TEXT NOT NULL DEFAULT '';
ALTER TABLE incidents ADD COLUMN rule_id TEXT NOT NULL DEFAULT '';
UPDATE incidents SET
    source  = coalesce(json_extract(doc, '$.reports[0].event_type'), ''),
    rule_id = coalesce(json_extract(doc, '$.rule_id'), '');
CREATE INDEX incidents_created ON incidents (created_ms);

-- +goose Down
DROP INDEX incidents_created;
ALTER TABLE incidents DROP COLUMN rule_id;
ALTER TABLE incidents DROP COLUMN source;
