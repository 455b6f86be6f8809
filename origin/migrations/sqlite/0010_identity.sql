-- People, teams, custom roles and scoped role bindings (sqlite).
--
-- A user is one person across organizations, known by e-mail (lowercase):
-- an administrator may bind a role to an e-mail before its first sign-in.
-- `idp_groups` is the JSON array of the identity provider's groups claim at
-- the last sign-in (teams map from it). `is_admin`: the instance's
-- administrator (the bootstrap sign-in), who may act in every organization.
CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    email         TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL DEFAULT '',
    is_admin      INTEGER NOT NULL DEFAULT 0,
    idp_groups    TEXT NOT NULL DEFAULT '[]',
    created_at    TEXT NOT NULL,
    last_login_at TEXT,
    disabled_at   TEXT
);
-- Teams of an organization: members managed in bunting, and/or everyone
-- whose identity-provider groups include `idp_group`.
CREATE TABLE teams (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id     INTEGER NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    key        TEXT NOT NULL,
    name       TEXT NOT NULL,
    idp_group  TEXT,
    version    INTEGER NOT NULL DEFAULT 1,
    UNIQUE (org_id, key)
);
CREATE TABLE team_members (
    team_id INTEGER NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (team_id, user_id)
);
-- Custom roles: named permission sets (a JSON array of permission names).
CREATE TABLE roles (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id      INTEGER NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    key         TEXT NOT NULL,
    name        TEXT NOT NULL,
    permissions TEXT NOT NULL,
    version     INTEGER NOT NULL DEFAULT 1,
    UNIQUE (org_id, key)
);
-- A role (built-in name or custom role key) granted to a user or a team
-- at organization (no project), project (no environment) or environment
-- scope.
CREATE TABLE role_bindings (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id         INTEGER NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    subject_kind   TEXT NOT NULL,
    subject_id     INTEGER NOT NULL,
    role           TEXT NOT NULL,
    project_id     INTEGER REFERENCES projects(id) ON DELETE CASCADE,
    environment_id INTEGER REFERENCES environments(id) ON DELETE CASCADE,
    created_at     TEXT NOT NULL,
    created_by     TEXT NOT NULL
);
CREATE INDEX role_bindings_org ON role_bindings (org_id);
CREATE INDEX role_bindings_subject ON role_bindings (subject_kind, subject_id);
-- Tokens: `service` (a role at a scope) or `personal` (acting as their
-- user; `role` caps what the user may do through it), an optional expiry.
-- `last_used` (from 0002) is kept by authentication.
ALTER TABLE api_tokens ADD COLUMN kind TEXT NOT NULL DEFAULT 'service';
ALTER TABLE api_tokens ADD COLUMN user_id INTEGER REFERENCES users(id) ON DELETE CASCADE;
ALTER TABLE api_tokens ADD COLUMN project_id INTEGER REFERENCES projects(id) ON DELETE CASCADE;
ALTER TABLE api_tokens ADD COLUMN environment_id INTEGER REFERENCES environments(id) ON DELETE CASCADE;
ALTER TABLE api_tokens ADD COLUMN expires_at TEXT;
