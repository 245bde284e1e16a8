-- akko_crypt.status(): runs as the extension owner with search_path = pg_catalog, pg_temp.
-- For each column, "reencrypt" shows its latest run.
-- $1 is this session's root fingerprint and $2 where it came from, both NULL when no key is loaded.
WITH policy AS (
    SELECT make_interval(mins => setting::int) AS rotation_interval,
           CASE WHEN setting::int % 1440 = 0 THEN (setting::int / 1440) || ' days'
                ELSE make_interval(mins => setting::int)::text END AS shown
    FROM pg_settings WHERE name = 'akko_crypt.rotation_interval'
), classes AS (
    SELECT c.name, a.version AS active_version, a.created_at AS last_rotation,
           a.created_at + p.rotation_interval AS next_rotation_due,
           (SELECT jsonb_agg(jsonb_build_object(
                        'version', k.version, 'state', k.state, 'created_at', k.created_at,
                        'state_changed_at', k.state_changed_at, 'root_fingerprint', k.root_fingerprint)
                    ORDER BY k.version)
            FROM akko_crypt.keyring k WHERE k.class = c.name) AS versions
    FROM akko_crypt.data_class c
    CROSS JOIN policy p
    LEFT JOIN akko_crypt.keyring a ON a.class = c.name AND a.state = 'active'
)
SELECT jsonb_build_object(
    'cipher', 'AES-256-GCM',
    'envelope_format', 1,
    'unlocked', $1 IS NOT NULL,
    'key_source', $2,
    'root_fingerprint', $1,
    'keyring_root_fingerprints',
        (SELECT coalesce(jsonb_agg(DISTINCT root_fingerprint), '[]')
         FROM akko_crypt.keyring WHERE state <> 'destroyed'),
    'rotation_interval', (SELECT shown FROM policy),
    'classes', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                    'class', name, 'active_version', active_version,
                    'last_rotation', last_rotation, 'next_rotation_due', next_rotation_due,
                    'overdue', coalesce(next_rotation_due < now(), false),
                    'versions', coalesce(versions, '[]')) ORDER BY name), '[]')
                FROM classes),
    'reencrypt', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                      'table', r.tbl::text, 'column', r.col,
                      'state', CASE WHEN r.finished_at IS NOT NULL THEN 'finished'
                                    WHEN EXISTS (SELECT FROM pg_stat_activity a
                                                 WHERE a.pid = r.pid AND a.backend_start = r.backend_start)
                                    THEN 'running' ELSE 'interrupted' END,
                      'started_at', r.started_at, 'finished_at', r.finished_at, 'pass', r.pass,
                      'resealed', r.resealed, 'cannot_be_opened', r.pass_unreadable,
                      'not_sealed', r.pass_not_sealed) ORDER BY r.tbl::text, r.col), '[]')
                  FROM (SELECT DISTINCT ON (tbl, col) * FROM akko_crypt.reencrypt_runs
                        ORDER BY tbl, col, id DESC) r),
    'protected_columns', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                      'table', p.tbl::text, 'column', p.col, 'class', p.class, 'mode', p.mode,
                      'original_type', p.original_type, 'bound_to_row', p.bind_row,
                      'blind_index', p.bidx_col, 'state', p.state, 'migrated', p.migrated,
                      'protected_at', p.protected_at, 'migrated_at', p.migrated_at)
                      ORDER BY p.tbl::text, p.col), '[]')
                  FROM akko_crypt.protected_columns p),
    'subjects', (SELECT count(*) FROM akko_crypt.subjects),
    'audit_log_entries', (SELECT count(*) FROM akko_crypt.audit_log))
