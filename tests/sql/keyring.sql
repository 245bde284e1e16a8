-- The keyring: random data keys per class and version, wrapped under the session's root.
CREATE EXTENSION dblink;
SELECT set_config('akko_crypt.key', '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f', false) AS root;
-- The first seal of a class creates its version 1; the root itself is stored nowhere.
CREATE TABLE ledger (id int PRIMARY KEY, pii bytea);
INSERT INTO ledger VALUES (1, akko_crypt.seal_pii('{"iban": "GB00 0001"}', 'financial'));
SELECT class, version, state, length(wrapped_key) AS wrapped_len, root_fingerprint
FROM akko_crypt.keyring WHERE class = 'financial';
SELECT count(*) AS root_in_keyring FROM akko_crypt.keyring
WHERE position('\x000102030405060708090a0b0c0d0e0f'::bytea IN wrapped_key) > 0;

-- Rotation: new seals use the new version at once, older values keep opening.
SELECT akko_crypt.rotate_key('financial') AS new_version;
INSERT INTO ledger VALUES (2, akko_crypt.seal_pii('{"iban": "GB00 0002"}', 'financial'));
SELECT id, get_byte(pii, 9) AS key_version, akko_crypt.open_pii(pii) ->> 'iban' AS iban FROM ledger ORDER BY id;
SELECT version, state FROM akko_crypt.keyring WHERE class = 'financial' ORDER BY version;
SELECT akko_test.error_of($$SELECT akko_crypt.open_pii(set_byte(pii, 9, 7)) FROM ledger WHERE id = 2$$) AS unknown_version;

-- Retiring: never the active version, and only with force until columns are registered.
SELECT akko_test.error_of($$SELECT akko_crypt.retire_key('financial', 2)$$) AS retire_active;
SELECT akko_test.error_of($$SELECT akko_crypt.retire_key('financial', 1)$$) AS retire_unforced;
SELECT akko_crypt.retire_key('financial', 1, force => true);
SELECT akko_test.error_of($$SELECT akko_crypt.open_pii(pii) FROM ledger WHERE id = 1$$) AS open_retired;

-- Destroying: the wrapped key is gone, and opening names the destroyed key.
SELECT akko_crypt.destroy_key('financial', 1);
SELECT version, state, wrapped_key IS NULL AS wrapped_key_gone FROM akko_crypt.keyring
WHERE class = 'financial' ORDER BY version;
SELECT akko_test.error_of($$SELECT akko_crypt.open_pii(pii) FROM ledger WHERE id = 1$$) AS open_destroyed;
SELECT akko_crypt.open_pii(pii) ->> 'iban' AS other_version_still_opens FROM ledger WHERE id = 2;
SELECT akko_test.error_of($$SELECT akko_crypt.destroy_key('financial', 2)$$) AS destroy_active;
SELECT akko_crypt.rotate_key('financial') AS v3;
SELECT akko_test.error_of($$SELECT akko_crypt.destroy_key('financial', 2)$$) AS destroy_unretired;

-- Subjects: each has its own key; the envelope carries a random id, never the name.
INSERT INTO ledger VALUES
    (3, akko_crypt.seal_pii('{"name": "Grace"}', 'identity', NULL, 'customer:3')),
    (4, akko_crypt.seal_pii('{"name": "Alan"}', 'identity', NULL, subject => 'customer:4')),
    (5, akko_crypt.seal_pii('{"email": "grace@example.com"}', 'identity', 'ctx', 'customer:3'));
SELECT id, akko_crypt.open_pii(pii, CASE WHEN id = 5 THEN 'ctx'::bytea END) AS opened,
       position('customer'::bytea IN pii) = 0 AS name_not_in_envelope
FROM ledger WHERE id >= 3 ORDER BY id;
-- The subjects table keeps a keyed hash of each name, never the name.
SELECT length(id) AS id_len, length(salt) AS salt_len, length(lookup) AS lookup_len, legacy_name
FROM akko_crypt.subjects ORDER BY created_at, id;
SELECT count(*) AS rows_naming_a_subject FROM akko_crypt.subjects s
WHERE position('customer'::bytea IN s.lookup || s.id || s.salt) > 0;
SELECT akko_crypt.forget_subject('customer:3') AS forgotten, akko_crypt.forget_subject('customer:3') AS again;
SELECT id, akko_test.error_of(format('SELECT akko_crypt.open_pii(%L::bytea, %L::bytea)', pii,
                                     CASE WHEN id = 5 THEN 'ctx' END)) AS open_after_forget
FROM ledger WHERE id >= 3 ORDER BY id;

-- A new root: every data key is rewrapped, no value changes; the old root opens nothing.
SELECT md5(string_agg(pii::text, ',' ORDER BY id)) AS values_before FROM ledger \gset
SELECT akko_crypt.rewrap('3333333333333333333333333333333333333333333333333333333333333333') AS rewrapped;
SELECT DISTINCT root_fingerprint FROM akko_crypt.keyring WHERE state <> 'destroyed';
SELECT md5(string_agg(pii::text, ',' ORDER BY id)) = :'values_before' AS no_value_rewritten FROM ledger;
SELECT akko_test.error_of($$SELECT akko_crypt.open_pii(pii) FROM ledger WHERE id = 2$$) AS old_root;
SELECT set_config('akko_crypt.key', repeat('33', 32), false) AS new_root;
SELECT akko_crypt.open_pii(pii) ->> 'iban' AS opens_with_new_root FROM ledger WHERE id = 2;
SELECT akko_test.error_of($$SELECT akko_crypt.rewrap('not a key')$$) AS bad_new_key;
-- And back, for the tests that follow.
SELECT akko_crypt.rewrap('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f') AS rewrapped_back;
SELECT set_config('akko_crypt.key', '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f', false) AS root;
SELECT akko_crypt.unlock() AS unlocked_with;

-- Another backend sees a rotation without reconnecting (the next transaction).
SELECT get_byte(akko_crypt.seal_pii('{}', 'operational'), 9) AS version_before;
\c
SELECT set_config('akko_crypt.key', '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f', false) IS NOT NULL AS loaded;
SELECT get_byte(akko_crypt.seal_pii('{}', 'operational'), 9) AS cached_version;
SELECT result FROM dblink(format('dbname=%s host=%s port=%s', current_database(),
                                 current_setting('unix_socket_directories'), current_setting('port')), $$
    SELECT set_config('akko_crypt.key', '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f', false) IS NOT NULL,
           akko_crypt.rotate_key('operational')$$) AS t(loaded bool, result int);
SELECT get_byte(akko_crypt.seal_pii('{}', 'operational'), 9) AS version_after_other_session_rotated;

-- A class added and used in a transaction that rolls back is gone with it, keys included.
BEGIN;
SELECT akko_crypt.add_class('scratch') AS added;
SELECT get_byte(akko_crypt.seal_pii('{}', 'scratch'), 9) AS first, get_byte(akko_crypt.seal_pii('{}', 'scratch'), 9) AS cached;
ROLLBACK;
SELECT akko_test.error_of($$SELECT akko_crypt.seal_pii('{}', 'scratch')$$) AS after_rollback;

-- The status report.
UPDATE akko_crypt.keyring SET created_at = now() - interval '100 days' WHERE class = 'identity' AND state = 'active';
SELECT s ->> 'cipher' AS cipher, s ->> 'unlocked' AS unlocked, s ->> 'root_fingerprint' AS root,
       s ->> 'rotation_interval' AS policy, s -> 'keyring_root_fingerprints' AS keyring_roots
FROM akko_crypt.status() AS s;
SELECT c ->> 'class' AS class, c ->> 'active_version' AS active, c ->> 'overdue' AS overdue,
       jsonb_path_query_array(c, '$.versions[*].state') AS states
FROM akko_crypt.status() AS s, jsonb_array_elements(s -> 'classes') AS c ORDER BY 1;
SET akko_crypt.rotation_interval = '200d';
SELECT c ->> 'overdue' AS identity_overdue_under_200_days
FROM akko_crypt.status() AS s, jsonb_array_elements(s -> 'classes') AS c WHERE c ->> 'class' = 'identity';
RESET akko_crypt.rotation_interval;
-- It names the logging settings that write bound plaintext to the server log.
SET log_statement = 'all';
SET log_parameter_max_length = -1;
SET log_parameter_max_length_on_error = 0;
SELECT e AS exposure FROM akko_crypt.status() AS s, jsonb_array_elements_text(s -> 'log_exposures') AS e;
SET log_parameter_max_length = 0;
SET log_parameter_max_length_on_error = 64;
SELECT e AS exposure FROM akko_crypt.status() AS s, jsonb_array_elements_text(s -> 'log_exposures') AS e;
SET log_parameter_max_length_on_error = 0;
SET log_statement = 'ddl';
SET log_parameter_max_length = -1;
SET log_min_duration_statement = 0;
SELECT jsonb_array_length(s -> 'log_exposures') AS exposures_at_duration_0 FROM akko_crypt.status() AS s;
SET log_min_duration_statement = -1;
SELECT s -> 'log_exposures' AS exposures_with_ddl_only FROM akko_crypt.status() AS s;
RESET log_statement;
RESET log_parameter_max_length;
RESET log_parameter_max_length_on_error;
RESET log_min_duration_statement;

-- The audit log: every key operation, no key material, append-only even for its owner.
SELECT operation, class, version, outcome, detail IS NOT NULL AS has_detail, role
FROM akko_crypt.audit_log ORDER BY id;
SELECT count(*) AS rows_naming_a_key FROM akko_crypt.audit_log
WHERE detail ~* '000102030405|333333333333';
SELECT akko_test.error_of($$DELETE FROM akko_crypt.audit_log$$) AS delete_audit;
SELECT akko_test.error_of($$UPDATE akko_crypt.audit_log SET outcome = 'fine'$$) AS update_audit;
SELECT akko_test.error_of($$TRUNCATE akko_crypt.audit_log$$) AS truncate_audit;

-- Privileges: a role without grants can do nothing; an application role seals and opens
-- but cannot read the keyring or change keys.
GRANT USAGE ON SCHEMA akko_test TO PUBLIC;
CREATE ROLE akko_nobody;
CREATE ROLE akko_app;
SELECT akko_crypt.grant_privilege('seal', 'akko_app') AND akko_crypt.grant_privilege('open', 'akko_app') AS granted;
SET ROLE akko_nobody;
SELECT akko_test.error_of($$SELECT akko_crypt.seal_pii('{}')$$) AS nobody_seals;
SELECT akko_test.error_of($$SELECT akko_crypt.open_pii(pii) FROM public.ledger WHERE id = 2$$) AS nobody_opens;
RESET ROLE;
GRANT SELECT ON ledger TO akko_app;
SET ROLE akko_app;
SELECT akko_crypt.open_pii(akko_crypt.seal_pii('{"app": true}', subject => 'customer:9')) AS app_round_trip;
SELECT akko_crypt.open_pii(pii) ->> 'iban' AS app_opens FROM ledger WHERE id = 2;
SELECT akko_test.error_of($$SELECT * FROM akko_crypt.keyring$$) AS app_reads_keyring;
SELECT akko_test.error_of($$SELECT * FROM akko_crypt.subjects$$) AS app_reads_subjects;
SELECT akko_test.error_of($$SELECT akko_crypt.rotate_key('identity')$$) AS app_rotates;
SELECT akko_test.error_of($$SELECT akko_crypt.forget_subject('customer:4')$$) AS app_forgets;
-- Objects planted on the caller's search_path are not used by the keyring queries.
RESET ROLE;
CREATE SCHEMA planted;
CREATE FUNCTION planted.always(text, text) RETURNS boolean LANGUAGE plpgsql AS
    $$ BEGIN RAISE NOTICE 'planted operator called'; RETURN true; END $$;
CREATE OPERATOR planted.= (LEFTARG = text, RIGHTARG = text, FUNCTION = planted.always);
GRANT USAGE ON SCHEMA planted TO akko_app;
\c
SELECT set_config('akko_crypt.key', '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f', false) IS NOT NULL AS loaded;
SET ROLE akko_app;
SET search_path = planted, pg_catalog, public;
SELECT 'a'::text = 'b'::text AS planted_operator_is_live;
SELECT akko_crypt.open_pii(akko_crypt.seal_pii('{"planted": false}', 'operational')) AS not_hijacked;
RESET search_path;
RESET ROLE;
DROP SCHEMA planted CASCADE;
-- The session's caches past the few entries they scan and past their bound (4,096 subjects
-- and keys): 5,000 subjects sealed in one statement and opened twice over, one forgotten.
CREATE TEMP TABLE many_subjects AS
    SELECT g, akko_crypt.seal_pii(jsonb_build_object('g', g), subject => 'many:' || g) AS sealed
    FROM generate_series(1, 5000) g;
CREATE TEMP TABLE subjects_before AS SELECT count(*) AS n FROM akko_crypt.subjects;
SELECT count(*) FILTER (WHERE (akko_crypt.open_pii(sealed) ->> 'g')::int = g) AS opened,
       count(*) FILTER (WHERE (akko_crypt.open_pii(akko_crypt.seal_pii(jsonb_build_object('g', g), subject => 'many:' || g)) ->> 'g')::int = g) AS sealed_again
FROM many_subjects;
SELECT (SELECT count(*) FROM akko_crypt.subjects) - n AS subjects_added_sealing_again FROM subjects_before;
SELECT akko_crypt.forget_subject('many:1') AS forgotten;
SELECT akko_test.error_of($$SELECT akko_crypt.open_pii(sealed) FROM many_subjects WHERE g = 1$$) AS forgotten_opens;
SELECT count(*) FILTER (WHERE (akko_crypt.open_pii(sealed) ->> 'g')::int = g) AS others_open FROM many_subjects WHERE g > 1;
DROP TABLE many_subjects, subjects_before;
REVOKE ALL ON ledger FROM akko_app;
SELECT akko_crypt.revoke_privilege('seal', 'akko_app') AND akko_crypt.revoke_privilege('open', 'akko_app') AS revoked;
DROP ROLE akko_nobody;
DROP ROLE akko_app;
REVOKE USAGE ON SCHEMA akko_test FROM PUBLIC;

-- What a session caches of the keyring and the privileges outlives a transaction only if it
-- was read after the last change the session took in. A repeatable-read transaction reads
-- with its first snapshot; when another session rotates a key or revokes a privilege
-- meanwhile, the transaction's next lock takes in the change but its reads still see the
-- old rows. The next transaction reads them again: it seals under the new version (a
-- session sealed under the version rotated out until the next change, before) and no longer
-- opens.
SELECT dblink_connect('rotator', format('dbname=%s host=%s port=%s user=postgres', current_database(),
                                        current_setting('unix_socket_directories'), current_setting('port'))) AS connected;
SELECT * FROM dblink('rotator', $$SELECT set_config('akko_crypt.key', '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f', false) IS NOT NULL$$)
    AS t(loaded boolean);
SELECT akko_crypt.add_class('probe') AS added;
CREATE ROLE akko_prober;
GRANT USAGE ON SCHEMA akko_test TO akko_prober;
SELECT akko_crypt.grant_privilege('seal', 'akko_prober', 'probe') AND
       akko_crypt.grant_privilege('open', 'akko_prober', 'probe') AS granted;
CREATE TABLE akko_test.probes (n int, v bytea);
GRANT SELECT, INSERT ON akko_test.probes TO akko_prober;
SET ROLE akko_prober;
INSERT INTO akko_test.probes VALUES (1, akko_crypt.seal_pii('{"n": 1}', 'probe'));
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT count(*) AS before_the_change FROM akko_test.probes;
SELECT * FROM dblink('rotator', $$SELECT akko_crypt.rotate_key('probe')$$) AS t(version int);
SELECT * FROM dblink('rotator', $$SELECT akko_crypt.revoke_privilege('open', 'akko_prober', 'probe')$$) AS t(revoked boolean);
INSERT INTO akko_test.probes SELECT 2, akko_crypt.seal_pii('{"n": 2}', 'probe');
COMMIT;
INSERT INTO akko_test.probes VALUES (3, akko_crypt.seal_pii('{"n": 3}', 'probe'));
SELECT n, get_byte(v, 9) AS key_version FROM akko_test.probes ORDER BY n;
SELECT akko_test.error_of($$SELECT akko_crypt.open_pii(v) FROM akko_test.probes WHERE n = 3$$) AS after_the_revoke;
RESET ROLE;
SELECT dblink_disconnect('rotator');
SELECT akko_crypt.revoke_privilege('seal', 'akko_prober', 'probe') AS revoked;
DROP TABLE akko_test.probes;
REVOKE USAGE ON SCHEMA akko_test FROM akko_prober;
DROP ROLE akko_prober;
