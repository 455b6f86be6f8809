-- Guarded rollouts (a flag in an environment watched by guardrail metrics
-- without an experiment), sqlite. The definition is a JSON document (spec),
-- validated by the store. `health`, `checked_at` and `held_until` are the
-- monitor's observations: written every round without a version bump or an
-- audit entry (holding a ramp is audited on the flag's configuration).
CREATE TABLE guarded_rollouts (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    environment_id INTEGER NOT NULL REFERENCES environments(id) ON DELETE CASCADE,
    flag_id        INTEGER NOT NULL REFERENCES flags(id) ON DELETE CASCADE,
    spec           TEXT NOT NULL,
    status         TEXT NOT NULL DEFAULT 'active',
    started_at     TEXT,
    stopped_at     TEXT,
    health         TEXT,
    checked_at     TEXT,
    held_until     TEXT,
    version        INTEGER NOT NULL DEFAULT 1,
    UNIQUE (environment_id, flag_id)
);
CREATE INDEX guarded_rollouts_status ON guarded_rollouts (status);
