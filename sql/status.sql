-- akko_crypt.status(): runs as the extension owner with search_path = pg_catalog, pg_temp.
-- "privileges" lists every akko_crypt privilege, with the roles that hold it through membership;
-- superusers hold them all.
-- "runs" shows the latest migrate run of each table and reencrypt run of each column, in one shape.
-- "log_exposures" names each logging setting that writes values bound to statements (the way
-- applications send plaintext) to the server log.
-- $1 is this session's root fingerprint and $2 where it came from, both NULL when no key is loaded;
-- $3 is how many values a process seals under one value key (the core's bound).
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
), logging AS (
    -- pg_settings.setting, not current_setting(): it carries no unit ("64", not "64B").
    SELECT max(setting) FILTER (WHERE name = 'log_statement') AS log_statement,
           (max(setting) FILTER (WHERE name = 'log_min_duration_statement'))::int AS min_duration,
           (max(setting) FILTER (WHERE name = 'log_min_duration_sample'))::int AS min_duration_sample,
           (max(setting) FILTER (WHERE name = 'log_statement_sample_rate'))::float8 AS sample_rate,
           (max(setting) FILTER (WHERE name = 'log_parameter_max_length'))::int AS parameter_max_length,
           (max(setting) FILTER (WHERE name = 'log_parameter_max_length_on_error'))::int AS parameter_max_length_on_error
    FROM pg_settings
)
SELECT jsonb_build_object(
    'cipher', 'AES-256-GCM',
    'envelope_format', 2,
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
    'runs', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                      'job', r.job, 'table', r.tbl::text, 'column', r.col,
                      'state', CASE WHEN r.finished_at IS NOT NULL THEN 'finished'
                                    WHEN EXISTS (SELECT FROM pg_stat_activity a
                                                 WHERE a.pid = r.pid AND a.backend_start = r.backend_start
                                                   AND a.state <> 'idle')
                                    THEN 'running' ELSE 'interrupted' END,
                      'started_at', r.started_at, 'updated_at', r.updated_at, 'finished_at', r.finished_at,
                      'resumed', r.resumed, 'pass', r.pass, 'next_block', r.next_block,
                      'table_blocks', r.table_blocks, 'sealed', r.sealed,
                      'cannot_be_opened', r.pass_unreadable, 'not_sealed', r.pass_not_sealed)
                      ORDER BY r.job, r.tbl::text, r.col), '[]')
                  -- A dropped table's runs and registry rows (removed by the next protect,
                  -- restore_protection, create_view or refresh_views) describe nothing that exists.
                  FROM (SELECT DISTINCT ON (job, tbl, col) * FROM akko_crypt.batch_runs
                        WHERE EXISTS (SELECT FROM pg_class c WHERE c.oid = tbl)
                        ORDER BY job, tbl, col, id DESC) r),
    'protected_columns', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                      'table', p.tbl::text, 'column', p.col, 'class', p.class, 'mode', p.mode,
                      'original_type', format_type(p.original_type, p.original_typmod), 'bound_to_row', p.bind_row,
                      'blind_index', p.bidx_col, 'state', p.state, 'migrated', p.migrated,
                      -- Its owner can disable, change or follow the trigger: an auditor sees it here.
                      'trigger', coalesce((SELECT CASE
                              WHEN g.tgenabled = 'D' THEN 'disabled'
                              WHEN g.tgenabled = 'R' THEN 'replica only'
                              WHEN g.tgfoid <> 'akko_crypt.protect_row()'::regprocedure OR g.tgqual IS NOT NULL
                                   OR g.tgtype <> 23 THEN 'altered'
                              -- BEFORE ROW triggers on INSERT or UPDATE fire in name order: a later
                              -- one could replace what this one sealed.
                              WHEN EXISTS (SELECT FROM pg_trigger l WHERE l.tgrelid = p.tbl AND NOT l.tgisinternal
                                             AND l.tgenabled <> 'D' AND l.tgtype & 3 = 3 AND l.tgtype & 20 <> 0
                                             AND l.tgname COLLATE "C" > g.tgname COLLATE "C")
                                   THEN 'followed by another BEFORE trigger'
                              ELSE 'enabled' END
                           FROM pg_trigger g WHERE g.tgrelid = p.tbl AND g.tgname = 'zz_akko_crypt_protect'),
                          'missing'),
                      'protected_at', p.protected_at, 'migrated_at', p.migrated_at)
                      ORDER BY p.tbl::text, p.col), '[]')
                  FROM akko_crypt.protected_columns p
                  WHERE EXISTS (SELECT FROM pg_class c WHERE c.oid = p.tbl)),
    -- Tables whose trigger and registry disagree on what they protect (a table restored from a
    -- table-level or schema-only dump): nothing is written to them until restore_protection.
    'incomplete_protection', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                      'table', t.tbl::regclass::text, 'columns', to_jsonb(t.columns))
                      ORDER BY t.tbl::regclass::text), '[]')
                  FROM (SELECT s.tbl, akko_crypt.protection_disagreements(s.tbl) AS columns
                        FROM (SELECT g.tgrelid AS tbl FROM pg_trigger g WHERE g.tgname = 'zz_akko_crypt_protect'
                                AND g.tgfoid = 'akko_crypt.protect_row()'::regprocedure
                              UNION SELECT p.tbl FROM akko_crypt.protected_columns p
                              WHERE EXISTS (SELECT FROM pg_class c WHERE c.oid = p.tbl)) s) t
                  WHERE t.columns IS NOT NULL),
    -- What of a protected table's owner runs for whoever reads it, with the reader's rights,
    -- key and open privilege, as PostgreSQL always runs it.
    'reader_exposures', (SELECT coalesce(jsonb_agg(jsonb_build_object('table', c.oid::regclass::text, 'exposure', e.exposure)
                      ORDER BY c.oid::regclass::text, e.exposure), '[]')
                  FROM pg_class c
                  CROSS JOIN LATERAL (
                      SELECT 'it is no longer an ordinary table: reading it runs the query its owner gave it' AS exposure
                      WHERE c.relkind <> 'r'
                      UNION ALL
                      SELECT 'row security is on: its policies run for each reader, as the reader'
                      WHERE c.relrowsecurity AND EXISTS (SELECT FROM pg_policy y WHERE y.polrelid = c.oid)) e
                  WHERE c.oid IN (SELECT p.tbl FROM akko_crypt.protected_columns p)),
    'log_exposures', (SELECT coalesce(jsonb_agg(exposure), '[]') FROM (
        SELECT 'statement logging (log_statement, log_min_duration_statement or log_min_duration_sample) '
               'writes the values bound to each statement, plaintext included, to the server log: '
               'set log_parameter_max_length = 0' AS exposure
        FROM logging
        WHERE parameter_max_length <> 0
          AND (log_statement IN ('mod', 'all') OR min_duration >= 0 OR (min_duration_sample >= 0 AND sample_rate > 0))
        UNION ALL
        SELECT 'a statement that fails is logged with the values bound to it, plaintext included: '
               'set log_parameter_max_length_on_error = 0'
        FROM logging
        WHERE parameter_max_length_on_error <> 0) e),
    'privileges', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                      'role', v.grantee::text, 'privilege', v.privilege,
                      'class', CASE WHEN v.privilege IN ('seal', 'open') THEN coalesce(v.class, 'every class') END,
                      'members', (SELECT coalesce(jsonb_agg(m.rolname ORDER BY m.rolname), '[]') FROM pg_roles m
                                  WHERE m.oid <> v.grantee AND pg_has_role(m.oid, v.grantee, 'USAGE') AND NOT m.rolsuper),
                      'granted_by', v.granted_by::text, 'granted_at', v.granted_at)
                      ORDER BY v.grantee::text, v.privilege, v.class), '[]')
                   FROM akko_crypt.privileges v WHERE EXISTS (SELECT FROM pg_roles r WHERE r.oid = v.grantee)),
    'superusers', (SELECT coalesce(jsonb_agg(rolname ORDER BY rolname), '[]') FROM pg_roles WHERE rolsuper),
    'seals_per_value_key', $3,
    'subjects', (SELECT count(*) FROM akko_crypt.subjects),
    'subject_names_in_clear', (SELECT count(*) FROM akko_crypt.subjects WHERE legacy_name IS NOT NULL),
    'audit_log_entries', (SELECT count(*) FROM akko_crypt.audit_log))
