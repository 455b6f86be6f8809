-- Change management (sqlite): per-environment approval policies, change
-- requests with their reviews, and scheduled application.
--
-- An environment with a policy of one or more approvals is protected:
-- writes to it open change requests instead of going live.
CREATE TABLE env_policies (
    environment_id     INTEGER PRIMARY KEY REFERENCES environments(id) ON DELETE CASCADE,
    required_approvals INTEGER NOT NULL,
    approver_roles     TEXT NOT NULL DEFAULT '[]',
    approver_teams     TEXT NOT NULL DEFAULT '[]',
    version            INTEGER NOT NULL DEFAULT 1
);
-- `changes`: the JSON array of changes, each with the version of what it
-- replaces (its base). `author`: the author's identity (`user:<email>`,
-- `token:<id>` or `admin`), which may not approve. `status`: open,
-- approved, rejected, applied, cancelled or failed. `apply_at`: when an
-- approved request applies by itself.
CREATE TABLE change_requests (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id         INTEGER NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    environment_id INTEGER NOT NULL REFERENCES environments(id) ON DELETE CASCADE,
    title          TEXT NOT NULL,
    description    TEXT NOT NULL DEFAULT '',
    author         TEXT NOT NULL,
    status         TEXT NOT NULL,
    changes        TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    apply_at       TEXT,
    applied_at     TEXT,
    applied_by     TEXT,
    error          TEXT,
    version        INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX change_requests_env ON change_requests (environment_id, id);
CREATE INDEX change_requests_due ON change_requests (status, apply_at);
CREATE TABLE change_reviews (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    change_request_id INTEGER NOT NULL REFERENCES change_requests(id) ON DELETE CASCADE,
    reviewer          TEXT NOT NULL,
    verdict           TEXT NOT NULL,
    comment           TEXT NOT NULL DEFAULT '',
    at                TEXT NOT NULL
);
CREATE INDEX change_reviews_request ON change_reviews (change_request_id, id);
