-- Event ingestion (postgres): exposures from the edge and metric events, as
-- POST /api/v1/events stores them for experiment analysis. Times are Unix
-- milliseconds. The primary key (environment, id) deduplicates: inserts use
-- ON CONFLICT DO NOTHING, so a retried batch stores nothing twice. Exposure
-- ids are derived from their fields when the producer sends none (the edge
-- does not); metric event ids are the client's idempotency ids.
-- No foreign keys: environments are the edge's names (`org/project/env`),
-- and events outlive renamed or deleted environments.
-- Column order matters: inserts read rows with
-- json_populate_recordset(NULL::exposures, ...).
CREATE TABLE exposures (
    environment      TEXT NOT NULL,
    id               TEXT NOT NULL,
    flag_key         TEXT NOT NULL,
    variant          TEXT NOT NULL,
    user_key         TEXT NOT NULL,
    time_ms          BIGINT NOT NULL,
    snapshot_version BIGINT,
    rule_id          TEXT,
    reason           TEXT,
    country          TEXT,
    device_type      TEXT,
    received_ms      BIGINT NOT NULL,
    PRIMARY KEY (environment, id)
);
-- First exposure (arm) per user and flag.
CREATE INDEX exposures_analysis ON exposures (environment, flag_key, user_key, time_ms);
CREATE TABLE metric_events (
    environment TEXT NOT NULL,
    id          TEXT NOT NULL,
    name        TEXT NOT NULL,
    user_key    TEXT NOT NULL,
    value       DOUBLE PRECISION,
    time_ms     BIGINT NOT NULL,
    received_ms BIGINT NOT NULL,
    properties  TEXT,
    PRIMARY KEY (environment, id)
);
-- Conversions and per-user sums of one metric within attribution windows.
CREATE INDEX metric_events_analysis ON metric_events (environment, name, user_key, time_ms);
