-- The state of flags beside their definitions (sqlite).
--
-- `archived`: an archived flag is left out of every environment's snapshot
-- and of the flag list, and cannot change until restored.
--
-- `updated_at`/`updated_by`: what a console's flag list shows, when each
-- flag and each of its configurations last changed, and by whom (the audit
-- log's actor name). The store's writes maintain them; existing rows take
-- their latest audit entry, else the flag's first one, else the
-- migration's time and "unknown".
ALTER TABLE flags ADD COLUMN archived INTEGER NOT NULL DEFAULT 0;
ALTER TABLE flags ADD COLUMN updated_at TEXT NOT NULL DEFAULT '';
ALTER TABLE flags ADD COLUMN updated_by TEXT NOT NULL DEFAULT '';
ALTER TABLE flag_configs ADD COLUMN updated_at TEXT NOT NULL DEFAULT '';
ALTER TABLE flag_configs ADD COLUMN updated_by TEXT NOT NULL DEFAULT '';

UPDATE flags SET
    updated_at = COALESCE(
        (SELECT a.at FROM audit_log a
         WHERE a.entity_type = 'flag' AND a.entity_id = flags.id
         ORDER BY a.seq DESC LIMIT 1),
        strftime('%Y-%m-%dT%H:%M:%S', 'now') || '.000000Z'),
    updated_by = COALESCE(
        (SELECT a.actor FROM audit_log a
         WHERE a.entity_type = 'flag' AND a.entity_id = flags.id
         ORDER BY a.seq DESC LIMIT 1),
        'unknown');

UPDATE flag_configs SET
    updated_at = COALESCE(
        (SELECT a.at FROM audit_log a
         WHERE a.entity_type = 'flagConfig' AND a.entity_id = flag_configs.flag_id
           AND a.entity_key = (SELECT f.key FROM flags f WHERE f.id = flag_configs.flag_id)
               || '/' || (SELECT e.key FROM environments e WHERE e.id = flag_configs.environment_id)
         ORDER BY a.seq DESC LIMIT 1),
        (SELECT a.at FROM audit_log a
         WHERE a.entity_type = 'flag' AND a.entity_id = flag_configs.flag_id
         ORDER BY a.seq LIMIT 1),
        strftime('%Y-%m-%dT%H:%M:%S', 'now') || '.000000Z'),
    updated_by = COALESCE(
        (SELECT a.actor FROM audit_log a
         WHERE a.entity_type = 'flagConfig' AND a.entity_id = flag_configs.flag_id
           AND a.entity_key = (SELECT f.key FROM flags f WHERE f.id = flag_configs.flag_id)
               || '/' || (SELECT e.key FROM environments e WHERE e.id = flag_configs.environment_id)
         ORDER BY a.seq DESC LIMIT 1),
        (SELECT a.actor FROM audit_log a
         WHERE a.entity_type = 'flag' AND a.entity_id = flag_configs.flag_id
         ORDER BY a.seq LIMIT 1),
        'unknown');
