-- SDK-key records in KV carry the key's kind (sqlite).
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
    changed_at = strftime('%Y-%m-%dT%H:%M:%S', 'now') || '.000000Z',
    pending_since = COALESCE(pending_since, strftime('%Y-%m-%dT%H:%M:%S', 'now') || '.000000Z')
WHERE id IN (SELECT environment_id FROM sdk_keys WHERE kv_state = 'pending');
