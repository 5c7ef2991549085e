-- Events keyed by (time, type, id), where they were keyed by (type, id). Producers' ids are
-- UUIDs in no order, so the unique index on (type, id) took every stored event at a random
-- place: a batch dirtied most of that index's pages, and a row cost more the larger the table
-- (BenchmarkHandleEvent/sync=normal/batch=5000: 28–35 µs a row over 300,000 rows, 49 µs over
-- a million). Keyed by time first, an event lands at the end of the index with the others of
-- its moment, and a row costs about as much at any size (20–21 µs over 300,000 rows, 28 µs
-- over a million; docs/performance.md "Events keyed by time"). A replayed record is the same
-- event at the same time, so INSERT OR IGNORE still drops it; the same id sent again with
-- another time is another row. The unique index also serves what the old events_time index
-- did (lists newest first, retention) and keeps its name.
--
-- Nothing reads events by id alone any more except Open311's ticket lookup, which has a
-- partial index of its own (hotline tickets are a small share of the traffic). An incident's
-- report links carry their event's time (event_time_ms) and reach the event through the key.
-- Links stored before this migration get the time of their event if it is stored; those whose
-- event was not stored yet get it from their incident's document in the Go migration 00015
-- (storage/sqlite/migrate.go).
--
-- Upgrading copies the events table once, in one transaction, when the store opens: a million
-- events (1.2 GB) took 36 s with the sqlite3 shell on the development machine, and the WAL
-- grows by about the table's size meanwhile.

-- +goose Up
ALTER TABLE incident_reports ADD COLUMN event_time_ms INTEGER NOT NULL DEFAULT 0;
UPDATE incident_reports SET event_time_ms = coalesce((SELECT e.time_ms FROM events e
    WHERE e.type = incident_reports.event_type AND e.id = incident_reports.event_id), 0);

CREATE TABLE events_by_time (
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
    payload     TEXT    NOT NULL             -- the whole event.Event as JSON
);
INSERT INTO events_by_time
    (id, type, source, time_ms, received_ms, lon, lat, district, street, community, grid, device, payload)
SELECT id, type, source, time_ms, received_ms, lon, lat, district, street, community, grid, device, payload
FROM events ORDER BY time_ms, type, id;
DROP TABLE events;
ALTER TABLE events_by_time RENAME TO events;
CREATE UNIQUE INDEX events_time ON events (time_ms, type, id);
CREATE INDEX events_type     ON events (type, time_ms);
CREATE INDEX events_street   ON events (street, time_ms);
CREATE INDEX events_grid     ON events (grid, time_ms);
CREATE INDEX events_device   ON events (device, time_ms);
CREATE INDEX events_ticket   ON events (id) WHERE type = 'city.hotline.ticket';

-- +goose Down
-- Back to one row per (type, id): of the rows that share one, the earliest stays.
CREATE TABLE events_by_id (
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
    device      TEXT    NOT NULL DEFAULT '',
    payload     TEXT    NOT NULL,
    PRIMARY KEY (type, id)
);
INSERT OR IGNORE INTO events_by_id
    (id, type, source, time_ms, received_ms, lon, lat, district, street, community, grid, device, payload)
SELECT id, type, source, time_ms, received_ms, lon, lat, district, street, community, grid, device, payload
FROM events ORDER BY time_ms, type, id;
DROP TABLE events;
ALTER TABLE events_by_id RENAME TO events;
CREATE INDEX events_time     ON events (time_ms);
CREATE INDEX events_type     ON events (type, time_ms);
CREATE INDEX events_street   ON events (street, time_ms);
CREATE INDEX events_grid     ON events (grid, time_ms);
CREATE INDEX events_device   ON events (device, time_ms);
ALTER TABLE incident_reports DROP COLUMN event_time_ms;
