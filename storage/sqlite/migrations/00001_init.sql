-- The first schema of the embedded store. Timestamps are Unix milliseconds (UTC) in INTEGER
-- columns; 0 stands for "not set". The columns are what queries filter and sort on; the
-- payload/doc columns hold the whole record as JSON, which is what queries return.

-- +goose Up
CREATE TABLE events (
    id          TEXT    NOT NULL,
    type        TEXT    NOT NULL,
    source      TEXT    NOT NULL DEFAULT '',
    time_ms     INTEGER NOT NULL,
    received_ms INTEGER NOT NULL DEFAULT 0,
    lon         REAL,
    lat         REAL,
    district    TEXT    NOT NULL DEFAULT '',
    street      TEXT    NOT NULL DEFAULT '',
    community   TEXT    NOT NULL DEFAULT '',
    grid        TEXT    NOT NULL DEFAULT '',
    device      TEXT    NOT NULL DEFAULT '', -- sensor device id or camera id
    payload     TEXT    NOT NULL,            -- the whole event.Event as JSON
    PRIMARY KEY (type, id)
);
CREATE INDEX events_time     ON events (time_ms);
CREATE INDEX events_type     ON events (type, time_ms);
CREATE INDEX events_street   ON events (street, time_ms);
CREATE INDEX events_grid     ON events (grid, time_ms);
CREATE INDEX events_device   ON events (device, time_ms);

CREATE TABLE incidents (
    id                   TEXT    NOT NULL PRIMARY KEY,
    version              INTEGER NOT NULL,
    status               TEXT    NOT NULL,
    open                 INTEGER NOT NULL, -- event.Status.Open(), so "open" has one definition
    category             TEXT    NOT NULL DEFAULT '',
    severity             TEXT    NOT NULL DEFAULT '',
    title                TEXT    NOT NULL DEFAULT '',
    correlation_key      TEXT    NOT NULL DEFAULT '',
    district             TEXT    NOT NULL DEFAULT '',
    street               TEXT    NOT NULL DEFAULT '',
    community            TEXT    NOT NULL DEFAULT '',
    grid                 TEXT    NOT NULL DEFAULT '',
    lon                  REAL,
    lat                  REAL,
    assignee_worker_id   TEXT    NOT NULL DEFAULT '',
    assignee_worker_name TEXT    NOT NULL DEFAULT '',
    agency               TEXT    NOT NULL DEFAULT '',
    report_count         INTEGER NOT NULL DEFAULT 0,
    created_ms           INTEGER NOT NULL,
    updated_ms           INTEGER NOT NULL,
    doc                  TEXT    NOT NULL -- the whole event.Incident as JSON
);
-- Every list is ordered by (updated_ms DESC, id DESC); each filter column leads an index that
-- carries that order, so a filtered page is an index range scan with no sort.
CREATE INDEX incidents_updated  ON incidents (updated_ms, id);
CREATE INDEX incidents_status   ON incidents (status, updated_ms, id);
CREATE INDEX incidents_open     ON incidents (open, updated_ms, id);
CREATE INDEX incidents_category ON incidents (category, updated_ms, id);
CREATE INDEX incidents_severity ON incidents (severity, updated_ms, id);
CREATE INDEX incidents_district ON incidents (district, updated_ms, id);
CREATE INDEX incidents_street   ON incidents (street, updated_ms, id);
CREATE INDEX incidents_grid     ON incidents (grid, updated_ms, id);
CREATE INDEX incidents_assignee ON incidents (assignee_worker_id, updated_ms, id);

-- The timeline: one row per version, written once.
CREATE TABLE incident_changes (
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
    doc           TEXT    NOT NULL, -- the whole event.Change as JSON (actor scope included)
    PRIMARY KEY (incident_id, version)
) WITHOUT ROWID;

-- Which events were reported about which incident (一事多报). The event may be stored later
-- than the link, or never, so there is no foreign key to events.
CREATE TABLE incident_reports (
    incident_id TEXT NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    event_id    TEXT NOT NULL,
    event_type  TEXT NOT NULL,
    PRIMARY KEY (incident_id, event_id)
) WITHOUT ROWID;

-- Dispatches come from their own topic and may arrive before the incident's change, so there
-- is no foreign key to incidents.
CREATE TABLE dispatches (
    id          TEXT    NOT NULL PRIMARY KEY,
    incident_id TEXT    NOT NULL,
    worker_id   TEXT    NOT NULL DEFAULT '',
    worker_name TEXT    NOT NULL DEFAULT '',
    grid        TEXT    NOT NULL DEFAULT '',
    agency      TEXT    NOT NULL DEFAULT '',
    agency_name TEXT    NOT NULL DEFAULT '',
    reason      TEXT    NOT NULL DEFAULT '',
    at_ms       INTEGER NOT NULL
);
CREATE INDEX dispatches_incident ON dispatches (incident_id, at_ms);

-- +goose Down
DROP TABLE dispatches;
DROP TABLE incident_reports;
DROP TABLE incident_changes;
DROP TABLE incidents;
DROP TABLE events;
