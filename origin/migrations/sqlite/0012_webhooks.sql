-- Webhook subscriptions of an organization and their outbox (sqlite).
-- The signing secret is kept as issued (whsec_…): HMAC needs it; it is
-- never returned after creation or rotation, nor written to the audit log.
-- During a rotation's grace period the previous secret signs too.
CREATE TABLE webhooks (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id          INTEGER NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    url             TEXT NOT NULL,
    events          TEXT NOT NULL,
    format          TEXT NOT NULL,
    enabled         INTEGER NOT NULL,
    description     TEXT NOT NULL,
    secret          TEXT NOT NULL,
    previous_secret TEXT,
    previous_until  TEXT,
    rotated_at      TEXT,
    created_at      TEXT NOT NULL,
    created_by      TEXT NOT NULL,
    version         INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX webhooks_org ON webhooks (org_id);
-- The outbox: one message per (subscription, event), written in the
-- transaction of the change it reports. `msg_id` is the webhook-id the
-- receiver sees (the same on every attempt). A message is due when it is
-- pending, `next_attempt_at` has come and no delivery loop holds it
-- (`claimed_until`, a lease longer than one attempt's timeout).
CREATE TABLE webhook_messages (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id      INTEGER NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    msg_id          TEXT NOT NULL UNIQUE,
    event_type      TEXT NOT NULL,
    payload         TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'pending',
    attempts        INTEGER NOT NULL DEFAULT 0,
    manual          INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    claimed_until   TEXT
);
CREATE INDEX webhook_messages_due ON webhook_messages (status, next_attempt_at);
CREATE INDEX webhook_messages_hook ON webhook_messages (webhook_id, id);
-- Every delivery attempt of a message: the HTTP status, or the error.
CREATE TABLE webhook_attempts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id  INTEGER NOT NULL REFERENCES webhook_messages(id) ON DELETE CASCADE,
    at          TEXT NOT NULL,
    status_code INTEGER,
    error       TEXT,
    duration_ms INTEGER NOT NULL
);
CREATE INDEX webhook_attempts_message ON webhook_attempts (message_id, id);
