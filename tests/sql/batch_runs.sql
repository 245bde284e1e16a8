-- The batch-run engine that migrate and reencrypt share: one table of runs
-- (akko_crypt.batch_runs), one shape in status(), a run that stops is taken over by the
-- next call, and only the backend and role that run it may drive it. A second session
-- comes through dblink (created by keyring.sql).
SELECT set_config('akko_crypt.key', '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f', false) AS root;
SELECT dblink_connect('other', format('dbname=%s host=%s port=%s user=postgres', current_database(),
                                      current_setting('unix_socket_directories'), current_setting('port'))) AS connected;
SELECT set_config('akko_test.other_pid', pid::text, false) IS NOT NULL AS other_pid_known
FROM dblink('other', 'SELECT pg_backend_pid()') AS t(pid int);

-- A migration online, in batches of about 500 rows.
CREATE TABLE staff (id int PRIMARY KEY, ssn text NOT NULL);
INSERT INTO staff SELECT i, lpad(i::text, 9, '0') FROM generate_series(1, 5000) AS i;
ANALYZE staff;
SELECT akko_crypt.protect('staff', 'ssn', migrate => false);
CALL akko_crypt.migrate('staff', batch_size => 500);
SELECT job, tbl, col, pass, next_block = table_blocks AS walked_to_end, sealed, resumed,
       finished_at IS NOT NULL AS finished
FROM akko_crypt.batch_runs WHERE tbl = 'staff'::regclass;
SELECT count(*) FILTER (WHERE akko_crypt.open_text(ssn) = lpad(id::text, 9, '0')) AS sealed_and_opening
FROM staff;

-- A run driven step by step stops part way; a column protected meanwhile joins it, and the
-- walk starts again from block 0 so that it covers the new column's rows too.
CREATE TABLE pairs (id int PRIMARY KEY, a text, b text);
INSERT INTO pairs SELECT i, 'a' || i, 'b' || i FROM generate_series(1, 5000) AS i;
ANALYZE pairs;
SELECT akko_crypt.protect('pairs', 'a', migrate => false);
SELECT akko_crypt.migrate_start('pairs', 500) AS run \gset
SELECT akko_crypt.migrate_step(:run) IS NULL AS goes_on;
SELECT akko_crypt.migrate_step(:run) IS NULL AS goes_on;
SELECT next_block > 0 AS part_way FROM akko_crypt.batch_runs WHERE id = :run;
SELECT akko_crypt.protect('pairs', 'b', migrate => false);
SELECT next_block AS walks_again_from FROM akko_crypt.batch_runs WHERE id = :run;
-- Only this backend and this role drive it: another backend is refused (55006), another
-- role too (42501), and a run of one job is no run of the other (42704).
SELECT regexp_replace(akko_test.error_of(format($$SELECT * FROM dblink('other', 'SELECT akko_crypt.migrate_step(%s)') AS t(n bigint)$$, :run)),
                      '\d+', 'N', 'g') AS other_backend;
CREATE ROLE akko_runner;
GRANT USAGE ON SCHEMA akko_test TO akko_runner;
SELECT akko_crypt.grant_privilege('protect', 'akko_runner') AS granted;
SET ROLE akko_runner;
SELECT regexp_replace(akko_test.error_of(format('SELECT akko_crypt.migrate_step(%s)', :run)), '\d+', 'N', 'g') AS other_role;
RESET ROLE;
SELECT regexp_replace(akko_test.error_of(format('SELECT akko_crypt.reencrypt_step(%s)', :run)), '\d+', 'N', 'g') AS other_job;
SELECT akko_test.error_of('SELECT akko_crypt.migrate_step(0)') AS no_run;
-- The next call resumes it (this backend's own run) and seals both columns.
CALL akko_crypt.migrate('pairs', batch_size => 500);
SELECT resumed, sealed >= 5000 AS sealed_all, finished_at IS NOT NULL AS finished
FROM akko_crypt.batch_runs WHERE id = :run;
SELECT count(*) FILTER (WHERE akko_crypt.open_text(a) = 'a' || id AND akko_crypt.open_text(b) = 'b' || id)
       AS both_sealed_and_opening
FROM pairs;

-- Another backend starts a migration and stops (its call cancelled, its connection left
-- in a pool): while it runs a statement the run is its own, and a second call is refused
-- (55006); once it sits idle, the next call takes the run over.
CREATE TABLE staff_more (id int PRIMARY KEY, phone text);
INSERT INTO staff_more SELECT i, '+44 ' || i FROM generate_series(1, 100) AS i;
SELECT akko_crypt.protect('staff_more', 'phone', migrate => false);
SELECT * FROM dblink('other', $$SELECT akko_crypt.migrate_start('staff_more', 10) IS NOT NULL$$) AS t(started boolean);
SELECT pg_advisory_lock(42);
SELECT dblink_send_query('other', 'SELECT pg_advisory_lock(42)') AS sent;
DO $$
BEGIN
    FOR i IN 1..200 LOOP
        EXIT WHEN EXISTS (SELECT FROM pg_stat_activity WHERE pid = current_setting('akko_test.other_pid')::int
                          AND wait_event_type = 'Lock');
        PERFORM pg_sleep(0.05);
    END LOOP;
END $$;
SELECT r ->> 'state' AS state FROM jsonb_array_elements(akko_crypt.status() -> 'runs') AS r
WHERE r ->> 'table' = 'public.staff_more';
SELECT regexp_replace(akko_test.error_of($$CALL akko_crypt.migrate('staff_more')$$), '\d+', 'N', 'g') AS while_it_runs;
SELECT pg_advisory_unlock(42);
SELECT * FROM dblink_get_result('other') AS t(locked text);
SELECT count(*) AS no_more_results FROM dblink_get_result('other') AS t(locked text);
SELECT * FROM dblink('other', 'SELECT pg_advisory_unlock(42)') AS t(unlocked boolean);
SELECT r ->> 'state' AS state FROM jsonb_array_elements(akko_crypt.status() -> 'runs') AS r
WHERE r ->> 'table' = 'public.staff_more';
CALL akko_crypt.migrate('staff_more');
SELECT job, tbl, resumed, sealed, finished_at IS NOT NULL AS finished
FROM akko_crypt.batch_runs WHERE tbl = 'staff_more'::regclass;

-- status() shows every job's latest run in one shape.
SELECT r ->> 'job' AS job, r ->> 'table' AS tbl, r ->> 'column' AS col, r ->> 'state' AS state,
       r ->> 'sealed' AS sealed, (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(r) AS k) AS shape
FROM jsonb_array_elements(akko_crypt.status() -> 'runs') AS r WHERE r ->> 'job' = 'migrate';
-- The audit log has each migration's start, takeover and end.
SELECT operation, regexp_replace(detail, 'run \d+', 'run N') AS detail, outcome FROM akko_crypt.audit_log
WHERE operation = 'migrate' ORDER BY id;

SELECT akko_crypt.revoke_privilege('protect', 'akko_runner') AS revoked;
REVOKE USAGE ON SCHEMA akko_test FROM akko_runner;
DROP ROLE akko_runner;
SELECT dblink_disconnect('other');
DROP TABLE staff, pairs, staff_more;
