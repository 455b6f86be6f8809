-- Metric definitions (per project) and experiments (per environment), sqlite.
-- Their definitions are JSON documents (spec), validated by the store.
CREATE TABLE metrics (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    key        TEXT NOT NULL,
    spec       TEXT NOT NULL,
    version    INTEGER NOT NULL DEFAULT 1,
    UNIQUE (project_id, key)
);
CREATE TABLE experiments (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    environment_id INTEGER NOT NULL REFERENCES environments(id) ON DELETE CASCADE,
    key            TEXT NOT NULL,
    spec           TEXT NOT NULL,
    status         TEXT NOT NULL DEFAULT 'draft',
    started_at     TEXT,
    stopped_at     TEXT,
    decision       TEXT,
    version        INTEGER NOT NULL DEFAULT 1,
    UNIQUE (environment_id, key)
);
