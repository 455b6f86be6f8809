-- Browser sessions, pending OpenID Connect sign-ins and bootstrap sign-in
-- links (sqlite). Only SHA-256 hashes of the secrets are stored: the session
-- id of the cookie, the `state` of a sign-in, the link's token. Times are
-- the store's sortable UTC text (`YYYY-MM-DDTHH:MM:SS.ffffffZ`).
--
-- A session ends at `expires_at` (its absolute lifetime) or when it was
-- not used for the idle timeout after `last_seen_at`; sign-out deletes it.
CREATE TABLE sessions (
    id_hash      TEXT PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at   TEXT NOT NULL,
    last_seen_at TEXT NOT NULL,
    expires_at   TEXT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expiry ON sessions (expires_at);
-- An authorization request sent to the identity provider, kept until its
-- callback (taken once: a replayed `state` finds nothing).
CREATE TABLE login_states (
    state_hash    TEXT PRIMARY KEY,
    nonce         TEXT NOT NULL,
    pkce_verifier TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    expires_at    TEXT NOT NULL
);
-- One-time sign-in links for the instance's administrator.
CREATE TABLE bootstrap_links (
    token_hash TEXT PRIMARY KEY,
    email      TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at    TEXT
);
