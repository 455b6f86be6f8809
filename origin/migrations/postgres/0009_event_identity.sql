-- Events keyed by the environment's identity (postgres), not by its name.
-- Exposures, metric events and the per-user rollup were keyed by the edge's
-- name `org/project/env`: a deleted organization's events stayed stored under
-- that text, and a new organization created with the same keys inherited
-- them. They are now keyed by `env_id`, the environment's id, which is never
-- reused (a sequence). Ingestion resolves the edge's name to the environment
-- that exists when the batch arrives; the events of a deleted environment are
-- unreachable at once and purged in the background
-- (Store::purge_orphaned_events). Rows whose name matches no environment
-- today belonged to deleted tenants: they are not carried over.
-- Column order matters: inserts read rows with
-- json_populate_recordset(NULL::exposures, ...).
CREATE TABLE exposures_by_id (
    env_id           BIGINT NOT NULL,
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
    CONSTRAINT exposures_key PRIMARY KEY (env_id, id)
);
INSERT INTO exposures_by_id
SELECT v.id, x.id, x.flag_key, x.variant, x.user_key, x.time_ms, x.snapshot_version, x.rule_id,
       x.reason, x.country, x.device_type, x.received_ms
FROM exposures x
JOIN (SELECT v.id, o.key || '/' || p.key || '/' || v.key AS name
      FROM environments v JOIN projects p ON p.id = v.project_id
      JOIN organizations o ON o.id = p.org_id) v ON v.name = x.environment;
DROP TABLE exposures;
ALTER TABLE exposures_by_id RENAME TO exposures;
CREATE INDEX exposures_analysis ON exposures (env_id, flag_key, user_key, time_ms) INCLUDE (variant);

CREATE TABLE metric_events_by_id (
    env_id      BIGINT NOT NULL,
    id          TEXT NOT NULL,
    name        TEXT NOT NULL,
    user_key    TEXT NOT NULL,
    value       DOUBLE PRECISION,
    time_ms     BIGINT NOT NULL,
    received_ms BIGINT NOT NULL,
    properties  TEXT,
    CONSTRAINT metric_events_key PRIMARY KEY (env_id, id)
);
INSERT INTO metric_events_by_id
SELECT v.id, e.id, e.name, e.user_key, e.value, e.time_ms, e.received_ms, e.properties
FROM metric_events e
JOIN (SELECT v.id, o.key || '/' || p.key || '/' || v.key AS name
      FROM environments v JOIN projects p ON p.id = v.project_id
      JOIN organizations o ON o.id = p.org_id) v ON v.name = e.environment;
DROP TABLE metric_events;
ALTER TABLE metric_events_by_id RENAME TO metric_events;
CREATE INDEX metric_events_analysis ON metric_events (env_id, name, user_key, time_ms) INCLUDE (value);

-- The rollup is rebuilt from the exposures by the store right after this
-- migration (as after 0007).
DROP TABLE exposure_users;
CREATE TABLE exposure_users (
    env_id   BIGINT NOT NULL,
    flag_key TEXT NOT NULL,
    user_key TEXT NOT NULL,
    first_ms BIGINT NOT NULL,
    variant  TEXT NOT NULL,
    vmin     TEXT NOT NULL,
    vmax     TEXT NOT NULL,
    -- Covering: the analysis reads users in key order from the index alone.
    PRIMARY KEY (env_id, flag_key, user_key) INCLUDE (first_ms, variant, vmin, vmax)
);
CREATE INDEX exposure_users_first ON exposure_users (env_id, flag_key, first_ms);

-- Environments deleted (also by a cascade from their project or
-- organization) whose events are still to be purged; the purge removes the
-- row once nothing of the environment is left.
CREATE TABLE deleted_environments (
    env_id     BIGINT PRIMARY KEY,
    deleted_ms BIGINT NOT NULL
);
CREATE FUNCTION bunting_environment_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO deleted_environments (env_id, deleted_ms)
    VALUES (OLD.id, (extract(epoch FROM clock_timestamp()) * 1000)::bigint)
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;
CREATE TRIGGER environments_deleted AFTER DELETE ON environments
    FOR EACH ROW EXECUTE FUNCTION bunting_environment_deleted();
