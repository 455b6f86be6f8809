-- SDK-key records in KV carry the key's kind (postgres).
--
-- The edge serves whole snapshots (GET /sdk/v1/snapshot, for the embedding
-- hosts) only to keys whose KV record says "kind": "server"; records
-- written before kinds existed have none. Every key already live in KV is
-- marked pending and its environment changed, so the publisher writes its
-- record again, with the kind, on its next round (a new snapshot version of
-- the same content).
UPDATE sdk_keys SET kv_state = 'pending' WHERE kv_state = 'live';

UPDATE environments SET
    snapshot_version = snapshot_version + 1,
    changed_at = to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
    pending_since = COALESCE(pending_since, to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))
WHERE id IN (SELECT environment_id FROM sdk_keys WHERE kv_state = 'pending');
