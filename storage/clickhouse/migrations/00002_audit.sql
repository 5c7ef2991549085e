-- The audit log (city.audit, issue 4): every command and its outcome, refusals included, and
-- every attempt to notify an agency. Inserted once per record id (a replay collapses into the
-- row already there); the store never updates or deletes it, retention included. ClickHouse
-- has no triggers to refuse an ALTER ... DELETE by hand, so append-only is the store's
-- promise here, and the server's grants are the place to enforce it for people.
CREATE TABLE IF NOT EXISTS audit_log (
    id            String,
    kind          String,
    incident_id   String,
    command_id    String,
    action        String,
    actor_subject String,
    actor_role    String,
    ok            UInt8,
    code          String,
    from_status   String,
    to_status     String,
    at_ms         Int64,
    doc           String
) ENGINE = ReplacingMergeTree
ORDER BY (incident_id, id)
SETTINGS index_granularity = 1024;
