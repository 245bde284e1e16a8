-- The key goes in, only its fingerprint comes out.
SET akko_crypt.key = 'AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=';
SHOW akko_crypt.key;
SELECT current_setting('akko_crypt.key') AS visible_value;
-- The same 32 bytes in hex have the same fingerprint.
SELECT set_config('akko_crypt.key', '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f', false) AS fingerprint;
-- Hidden from pg_settings (and SHOW ALL, checked by tests/integration.sh).
SELECT count(*) AS visible_in_pg_settings FROM pg_settings WHERE name = 'akko_crypt.key';

-- Malformed keys are refused without echoing them, and leave the old key in place.
SELECT akko_test.error_of($$SET akko_crypt.key = 'too-short-to-be-a-key'$$);
SELECT akko_test.error_of($$SET akko_crypt.key = 'AAECAwQFBgcICQoLDA0ODw=='$$);
SELECT akko_test.error_of($$SELECT set_config('akko_crypt.key', repeat('ab', 33), false)$$);
SHOW akko_crypt.key;

-- No key in the catalog or in a configuration file.
SELECT akko_test.error_of($$ALTER ROLE postgres SET akko_crypt.key = 'AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8='$$);
SELECT akko_test.error_of(format('ALTER DATABASE %I SET akko_crypt.key = %L', current_database(), repeat('22', 32)));
-- ALTER SYSTEM cannot run in the helper's transaction, so its error shows as is.
ALTER SYSTEM SET akko_crypt.key = 'AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=';
SELECT akko_test.error_of($$CREATE FUNCTION akko_test.with_key() RETURNS int LANGUAGE sql
    SET akko_crypt.key = 'AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=' AS 'SELECT 1'$$);
SELECT count(*) AS stored_settings FROM pg_db_role_setting WHERE array_to_string(setconfig, ',') LIKE '%akko_crypt%';
-- The prefix is reserved, so a typo cannot park a key in a visible placeholder.
SELECT akko_test.error_of($$SET akko_crypt.kye = 'not-a-key'$$);

-- Transactions: a rolled-back SET restores the previous key, SET LOCAL ends with its transaction.
BEGIN;
SET akko_crypt.key = '3333333333333333333333333333333333333333333333333333333333333333';
SHOW akko_crypt.key;
ROLLBACK;
SHOW akko_crypt.key;
SELECT akko_crypt.open_pii(akko_crypt.seal_pii('{"after": "rollback"}')) AS opens_with_restored_key;
RESET akko_crypt.key;
BEGIN;
SELECT set_config('akko_crypt.key', '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f', true) AS local_key;
SELECT akko_crypt.open_pii(akko_crypt.seal_pii('{"inside": "transaction"}')) AS inside;
COMMIT;
SHOW akko_crypt.key;
SELECT akko_test.error_of($$SELECT akko_crypt.seal_pii('{}')$$) AS after_commit;
-- Savepoints.
BEGIN;
SELECT set_config('akko_crypt.key', '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f', false) AS outer_key;
SAVEPOINT s;
SELECT set_config('akko_crypt.key', repeat('66', 32), false) AS inner_key;
ROLLBACK TO SAVEPOINT s;
SHOW akko_crypt.key;
SELECT akko_crypt.open_pii(akko_crypt.seal_pii('{"savepoint": 1}')) AS opens_after_rollback_to;
COMMIT;

-- RESET and DISCARD ALL drop the key.
RESET akko_crypt.key;
SHOW akko_crypt.key;
SELECT akko_test.error_of($$SELECT akko_crypt.seal_pii('{}')$$);
SELECT set_config('akko_crypt.key', '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f', false) IS NOT NULL AS loaded;
DISCARD ALL;
SHOW akko_crypt.key;
SELECT akko_test.error_of($$SELECT akko_crypt.seal_pii('{}')$$);

-- lock() drops the key at once, and for good even if its transaction rolls back.
SELECT set_config('akko_crypt.key', '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f', false) IS NOT NULL AS loaded;
SELECT akko_crypt.lock();
SHOW akko_crypt.key;
SELECT akko_test.error_of($$SELECT akko_crypt.seal_pii('{}')$$);
SELECT set_config('akko_crypt.key', '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f', false) IS NOT NULL AS loaded;
BEGIN;
SELECT akko_crypt.lock();
ROLLBACK;
SHOW akko_crypt.key;
SELECT akko_test.error_of($$SELECT akko_crypt.seal_pii('{}')$$) AS after_rolled_back_lock;

-- Parallel workers receive only the fingerprint; queries still run in parallel, and the
-- functions that need the key stay in the leader.
SELECT set_config('akko_crypt.key', '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f', false) IS NOT NULL AS loaded;
CREATE TABLE wide AS SELECT i, akko_crypt.seal_pii(jsonb_build_object('i', i)) AS s FROM generate_series(1, 2000) AS i;
ANALYZE wide;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
-- force_parallel_mode is named debug_parallel_query from PostgreSQL 16 on.
SELECT CASE WHEN current_setting('server_version_num')::int < 160000 THEN 'force_parallel_mode'
            ELSE 'debug_parallel_query' END AS force_parallel \gset
SET :force_parallel = on;
SELECT * FROM akko_test.plan_run($$
    SELECT count(*) FROM wide$$) AS "QUERY PLAN";
SELECT count(*) AS opened FROM wide WHERE (akko_crypt.open_pii(s) ->> 'i')::int = i;
RESET ALL;

-- A new session starts without the key of the previous one.
SELECT set_config('akko_crypt.key', repeat('77', 32), false) IS NOT NULL AS loaded;
\c
SHOW akko_crypt.key;
SELECT akko_test.error_of($$SELECT akko_crypt.seal_pii('{}')$$);
