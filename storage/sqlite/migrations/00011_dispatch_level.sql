-- The escalation level a dispatch decision reached (community, street, district; issue 12
-- item 7: the incident detail's dispatches[].level was missing). '' for none.

-- +goose Up
ALTER TABLE dispatches ADD COLUMN level TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE dispatches DROP COLUMN level;
