-- Per-flag availability to client-side SDKs (sqlite).
--
-- `client_side`: 1 when client SDK keys (browsers, mobile apps) may
-- evaluate the flag at the edge; every existing flag starts unavailable,
-- as a new one does (`clientSide` defaults to false).
ALTER TABLE flags ADD COLUMN client_side INTEGER NOT NULL DEFAULT 0;
