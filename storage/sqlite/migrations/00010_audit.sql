-- The audit log (issue 4): every command and its outcome, refusals included, and every attempt
-- to notify an agency, as published on city.audit. Append-only: rows are inserted once by id
-- and triggers refuse any update or delete, retention included.
-- Numbered 00010 to stay clear of the schema migrations of the storage stage.

-- +goose Up
CREATE TABLE audit_log (
    id            TEXT    NOT NULL PRIMARY KEY,
    kind          TEXT    NOT NULL,            -- command or notify
    incident_id   TEXT    NOT NULL DEFAULT '',
    command_id    TEXT    NOT NULL DEFAULT '',
    action        TEXT    NOT NULL DEFAULT '',
    actor_subject TEXT    NOT NULL DEFAULT '',
    actor_role    TEXT    NOT NULL DEFAULT '',
    ok            INTEGER NOT NULL,
    code          TEXT    NOT NULL DEFAULT '',
    from_status   TEXT    NOT NULL DEFAULT '',
    to_status     TEXT    NOT NULL DEFAULT '',
    at_ms         INTEGER NOT NULL,
    doc           TEXT    NOT NULL             -- the whole event.AuditRecord as JSON
);
CREATE INDEX audit_log_incident ON audit_log (incident_id, at_ms);
CREATE INDEX audit_log_actor    ON audit_log (actor_subject, at_ms);

-- +goose StatementBegin
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
-- +goose StatementEnd

-- +goose Down
DROP TABLE audit_log;
