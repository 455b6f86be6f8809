-- Publishing snapshots to the edge (postgres). The durable publish intent is
-- environments.snapshot_version, bumped in the transaction of every change;
-- changed_at is the time of the latest bump, pending_since the time of the
-- oldest bump not yet published to every target (the start of the lag; the
-- publisher clears it).
ALTER TABLE environments ADD COLUMN changed_at TEXT;
ALTER TABLE environments ADD COLUMN pending_since TEXT;
-- What each publisher (target) has put into its KV, per environment. No
-- foreign key: a deleted environment's row names the snapshot to remove.
CREATE TABLE publish_state (
    environment_id    BIGINT NOT NULL,
    target            TEXT NOT NULL,
    edge_env          TEXT,
    published_version BIGINT NOT NULL DEFAULT 0,
    attempts          BIGINT NOT NULL DEFAULT 0,
    last_error        TEXT,
    last_attempt_at   TEXT,
    published_at      TEXT,
    PRIMARY KEY (environment_id, target)
);
