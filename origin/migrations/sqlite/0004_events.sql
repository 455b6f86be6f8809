-- Event ingestion (sqlite): exposures from the edge and metric events, as
-- POST /api/v1/events stores them for experiment analysis. Times are Unix
-- milliseconds. The primary key (environment, id) deduplicates: inserts use
-- ON CONFLICT DO NOTHING, so a retried batch stores nothing twice. Exposure
-- ids are derived from their fields when the producer sends none (the edge
-- does not); metric event ids are the client's idempotency ids.
-- No foreign keys: environments are the edge's names (`org/project/env`),
-- and events outlive renamed or deleted environments.
CREATE TABLE exposures (
    environment      TEXT NOT NULL,
    id               TEXT NOT NULL,
    flag_key         TEXT NOT NULL,
    variant          TEXT NOT NULL,
    user_key         TEXT NOT NULL,
    time_ms          INTEGER NOT NULL,
    snapshot_version INTEGER,
    rule_id          TEXT,
    reason           TEXT,
    country          TEXT,
    device_type      TEXT,
    received_ms      INTEGER NOT NULL,
    PRIMARY KEY (environment, id)
) WITHOUT ROWID;
-- First exposure (arm) per user and flag.
CREATE INDEX exposures_analysis ON exposures (environment, flag_key, user_key, time_ms);
CREATE TABLE metric_events (
    environment TEXT NOT NULL,
    id          TEXT NOT NULL,
    name        TEXT NOT NULL,
    user_key    TEXT NOT NULL,
    value       REAL,
    time_ms     INTEGER NOT NULL,
    received_ms INTEGER NOT NULL,
    properties  TEXT,
    PRIMARY KEY (environment, id)
) WITHOUT ROWID;
-- Conversions and per-user sums of one metric within attribution windows.
CREATE INDEX metric_events_analysis ON metric_events (environment, name, user_key, time_ms);
