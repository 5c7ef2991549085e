-- The timeline as a rowid table with a unique index on (incident_id, version), where it was a
-- WITHOUT ROWID table clustered on that key. A timeline entry is about 840 bytes (a signal's
-- change carries its rule's explanation), too large for a clustered key: SQLite's guidance for
-- WITHOUT ROWID is rows under a twentieth of a page. Every "link" version of an older incident
-- landed among that incident's entries and split 16 KiB pages of whole rows; now each entry
-- is appended to the table and only its small index entry lands in the middle
-- (BenchmarkHandleIncidentChangesCity, docs/performance.md). Reading an incident's timeline is
-- a range of the unique index and a row lookup per entry; when an incident first reached a
-- status is one seek in a second index of its own.
--
-- Upgrading copies the whole timeline once, in one transaction, when the store opens: a
-- million entries (about 1 GB) took 49 s with the sqlite3 shell on the development machine's
-- disk, most of it writing the WAL, and the store is not ready meanwhile. The old table's pages
-- are reused by later writes, not returned to the file system.

-- +goose Up
CREATE TABLE incident_changes_rowid (
    incident_id   TEXT    NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    version       INTEGER NOT NULL,
    action        TEXT    NOT NULL,
    from_status   TEXT    NOT NULL DEFAULT '',
    to_status     TEXT    NOT NULL DEFAULT '',
    actor_subject TEXT    NOT NULL DEFAULT '',
    actor_role    TEXT    NOT NULL DEFAULT '',
    reason        TEXT    NOT NULL DEFAULT '',
    note          TEXT    NOT NULL DEFAULT '',
    command_id    TEXT    NOT NULL DEFAULT '',
    signal_id     TEXT    NOT NULL DEFAULT '',
    at_ms         INTEGER NOT NULL,
    doc           TEXT    NOT NULL -- the whole event.Change as JSON (actor scope included)
);
INSERT INTO incident_changes_rowid
    (incident_id, version, action, from_status, to_status, actor_subject, actor_role, reason,
     note, command_id, signal_id, at_ms, doc)
SELECT incident_id, version, action, from_status, to_status, actor_subject, actor_role, reason,
       note, command_id, signal_id, at_ms, doc
FROM incident_changes ORDER BY incident_id, version;
DROP TABLE incident_changes;
ALTER TABLE incident_changes_rowid RENAME TO incident_changes;
CREATE UNIQUE INDEX incident_changes_version ON incident_changes (incident_id, version);
-- When each incident first reached each status (the KPIs' stage times, query.FirstReached):
-- one seek in this index instead of reading the incident's entries from the table.
CREATE INDEX incident_changes_reached ON incident_changes (incident_id, to_status, at_ms);

-- +goose Down
CREATE TABLE incident_changes_clustered (
    incident_id   TEXT    NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    version       INTEGER NOT NULL,
    action        TEXT    NOT NULL,
    from_status   TEXT    NOT NULL DEFAULT '',
    to_status     TEXT    NOT NULL DEFAULT '',
    actor_subject TEXT    NOT NULL DEFAULT '',
    actor_role    TEXT    NOT NULL DEFAULT '',
    reason        TEXT    NOT NULL DEFAULT '',
    note          TEXT    NOT NULL DEFAULT '',
    command_id    TEXT    NOT NULL DEFAULT '',
    signal_id     TEXT    NOT NULL DEFAULT '',
    at_ms         INTEGER NOT NULL,
    doc           TEXT    NOT NULL,
    PRIMARY KEY (incident_id, version)
) WITHOUT ROWID;
INSERT INTO incident_changes_clustered
    (incident_id, version, action, from_status, to_status, actor_subject, actor_role, reason,
     note, command_id, signal_id, at_ms, doc)
SELECT incident_id, version, action, from_status, to_status, actor_subject, actor_role, reason,
       note, command_id, signal_id, at_ms, doc
FROM incident_changes;
DROP TABLE incident_changes;
ALTER TABLE incident_changes_clustered RENAME TO incident_changes;
