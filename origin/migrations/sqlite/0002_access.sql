-- API tokens and SDK keys (sqlite). Only SHA-256 hashes of secrets are stored.
CREATE TABLE api_tokens (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id     INTEGER NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    role       TEXT NOT NULL,
    hash       TEXT NOT NULL UNIQUE,
    prefix     TEXT NOT NULL,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    revoked_at TEXT,
    last_used  TEXT
);
CREATE INDEX api_tokens_org ON api_tokens (org_id);
-- SDK keys are never deleted: a revoked or expired key stays until the
-- publisher has removed it from KV (kv_state 'removed'). No foreign key to
-- environments, so deleting an environment leaves its keys to be removed.
CREATE TABLE sdk_keys (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id         INTEGER NOT NULL,
    environment_id INTEGER NOT NULL,
    edge_env       TEXT NOT NULL,
    kind           TEXT NOT NULL,
    name           TEXT NOT NULL,
    hash           TEXT NOT NULL UNIQUE,
    prefix         TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    expires_at     TEXT,
    kv_state       TEXT NOT NULL DEFAULT 'pending'
);
CREATE INDEX sdk_keys_env ON sdk_keys (environment_id);
CREATE INDEX sdk_keys_kv ON sdk_keys (kv_state);
-- The organization an audit entry belongs to (for tenant-scoped queries).
ALTER TABLE audit_log ADD COLUMN org_id INTEGER;
CREATE INDEX audit_log_org ON audit_log (org_id, seq);
