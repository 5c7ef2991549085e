-- The first schema of the ClickHouse store. It must run on ClickHouse 18.16 (Debian's package)
-- and on current releases, so it keeps to what both have: the MergeTree family, plain types,
-- timestamps as Int64 Unix milliseconds (UTC; 0 is "not set") plus a DateTime column computed
-- by the server for partitioning; no DateTime64, JSON, Map or LowCardinality. Every table is a
-- ReplacingMergeTree keyed by the record's identity, so a replayed or retried insert collapses
-- into the row already there; reads use FINAL (or min/max, which duplicates cannot change).
-- Statements end with a semicolon at the end of a line; each must be safe to run twice.
--
-- index_granularity is 1024 rather than 8192: a page of search results or an incident's
-- detail reads rows by key, scattered over the table, and each key costs a whole granule of
-- JSON documents; at 1024 a device's history on a million events reads 5x less (measured on
-- 18.16), and scans are not slower.

-- Raw events, one row per (type, id). `time_check` stands in for a CHECK constraint, which
-- 18.16 does not have: the server refuses a row whose time is outside the DateTime range
-- (1970-01-01 .. 2105-12-31), so the batch writer can isolate it and dead-letter it.
CREATE TABLE IF NOT EXISTS events (
    id           String,
    type         String,
    source       String,
    time_ms      Int64,
    received_ms  Int64,
    has_location UInt8,
    lon          Float64,
    lat          Float64,
    district     String,
    street       String,
    community    String,
    grid         String,
    device       String,
    content      String,
    address      String,
    payload      String,
    day          DateTime MATERIALIZED toDateTime(intDiv(time_ms, 1000)),
    time_check   UInt8 DEFAULT throwIf(time_ms < 0 OR time_ms > 4291747199999)
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (type, id)
SETTINGS index_granularity = 1024;

-- Incidents: every version is inserted; FINAL keeps the highest version per id.
CREATE TABLE IF NOT EXISTS incidents (
    id                   String,
    version              Int64,
    status               String,
    open                 UInt8,
    category             String,
    severity             String,
    title                String,
    correlation_key      String,
    district             String,
    street               String,
    community            String,
    grid                 String,
    has_location         UInt8,
    lon                  Float64,
    lat                  Float64,
    assignee_worker_id   String,
    assignee_worker_name String,
    agency               String,
    report_count         Int64,
    created_ms           Int64,
    updated_ms           Int64,
    summaries            Array(String),
    doc                  String
) ENGINE = ReplacingMergeTree(version)
ORDER BY id
SETTINGS index_granularity = 1024;

-- The timeline: one row per incident version.
CREATE TABLE IF NOT EXISTS incident_changes (
    incident_id   String,
    version       Int64,
    action        String,
    from_status   String,
    to_status     String,
    actor_subject String,
    actor_role    String,
    reason        String,
    note          String,
    command_id    String,
    signal_id     String,
    at_ms         Int64,
    doc           String
) ENGINE = ReplacingMergeTree
ORDER BY (incident_id, version)
SETTINGS index_granularity = 1024;

-- Which events were reported about which incident (一事多报).
CREATE TABLE IF NOT EXISTS incident_reports (
    incident_id String,
    event_id    String,
    event_type  String
) ENGINE = ReplacingMergeTree
ORDER BY (incident_id, event_id)
SETTINGS index_granularity = 1024;

CREATE TABLE IF NOT EXISTS dispatches (
    id          String,
    incident_id String,
    worker_id   String,
    worker_name String,
    grid        String,
    agency      String,
    agency_name String,
    reason      String,
    at_ms       Int64
) ENGINE = ReplacingMergeTree
ORDER BY (incident_id, id)
SETTINGS index_granularity = 1024;
