-- bunting origin store, SQLite. JSON columns are TEXT holding compact JSON.
CREATE TABLE organizations (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    key     TEXT NOT NULL UNIQUE,
    name    TEXT NOT NULL,
    version INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE projects (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id  INTEGER NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    key     TEXT NOT NULL,
    name    TEXT NOT NULL,
    version INTEGER NOT NULL DEFAULT 1,
    UNIQUE (org_id, key)
);
CREATE TABLE environments (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id       INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    key              TEXT NOT NULL,
    name             TEXT NOT NULL,
    version          INTEGER NOT NULL DEFAULT 1,
    snapshot_version INTEGER NOT NULL DEFAULT 0,
    UNIQUE (project_id, key)
);
CREATE TABLE layers (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    key        TEXT NOT NULL,
    salt       TEXT,
    bucket_by  TEXT,
    version    INTEGER NOT NULL DEFAULT 1,
    UNIQUE (project_id, key)
);
CREATE TABLE flags (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id  INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    key         TEXT NOT NULL,
    flag_type   TEXT NOT NULL,
    variants    TEXT NOT NULL,
    off_variant TEXT NOT NULL,
    description TEXT,
    owner       TEXT,
    tags        TEXT NOT NULL,
    salt        TEXT,
    bucket_by   TEXT,
    layer       TEXT,
    version     INTEGER NOT NULL DEFAULT 1,
    UNIQUE (project_id, key)
);
CREATE TABLE flag_configs (
    flag_id        INTEGER NOT NULL REFERENCES flags(id) ON DELETE CASCADE,
    environment_id INTEGER NOT NULL REFERENCES environments(id) ON DELETE CASCADE,
    enabled        INTEGER NOT NULL,
    rules          TEXT NOT NULL,
    fallthrough    TEXT NOT NULL,
    prerequisites  TEXT NOT NULL,
    version        INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (flag_id, environment_id)
);
CREATE TABLE segments (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    environment_id INTEGER NOT NULL REFERENCES environments(id) ON DELETE CASCADE,
    key            TEXT NOT NULL,
    included       TEXT NOT NULL,
    excluded       TEXT NOT NULL,
    condition      TEXT,
    description    TEXT,
    version        INTEGER NOT NULL DEFAULT 1,
    UNIQUE (environment_id, key)
);
CREATE TABLE audit_log (
    seq         INTEGER PRIMARY KEY,
    actor       TEXT NOT NULL,
    at          TEXT NOT NULL,
    action      TEXT NOT NULL,
    entity_type TEXT NOT NULL,
    entity_id   INTEGER NOT NULL,
    entity_key  TEXT NOT NULL,
    before      TEXT,
    after       TEXT,
    request_id  TEXT,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL
);
CREATE INDEX audit_log_entity ON audit_log (entity_type, entity_id, seq);
CREATE INDEX audit_log_actor ON audit_log (actor, seq);
CREATE INDEX audit_log_at ON audit_log (at);
-- The chain head: one row, locked by every mutation (serializes appends).
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
