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
SELECT reltuples / relpages AS rows_per_block FROM pg_class WHERE oid = 'staff'::regclass \gset
CALL akko_crypt.migrate('staff', batch_size => 500);
-- Each batch holds about 500 rows: the last one's blocks did not grow past twice that.
SELECT blocks_per_batch * :rows_per_block BETWEEN 250 AND 1000 AS batches_of_about_500_rows
FROM akko_crypt.batch_runs WHERE tbl = 'staff'::regclass;
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
SELECT regexp_replace(akko_test.error_of(format('SELECT akko_crypt.migrate_step(%s)', :run)), '\d+', 'N', 'g') AS not_the_owner;
RESET ROLE;
-- Not even the table's owner (here for the moment) drives a run another role started.
ALTER TABLE pairs OWNER TO akko_runner;
SET ROLE akko_runner;
SELECT regexp_replace(akko_test.error_of(format('SELECT akko_crypt.migrate_step(%s)', :run)), '\d+', 'N', 'g') AS owner_not_runner;
RESET ROLE;
ALTER TABLE pairs OWNER TO postgres;
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

-- A start left in an open transaction (a pooled connection idle in its transaction) holds
-- up no other table's run, which starts and finishes at once; a start on its own table
-- waits for that transaction (here until lock_timeout, 55P03), and after its rollback
-- starts afresh.
CREATE TABLE idle_a (id int PRIMARY KEY, v text);
CREATE TABLE idle_b (id int PRIMARY KEY, v text);
INSERT INTO idle_a SELECT i, 'a' || i FROM generate_series(1, 50) AS i;
INSERT INTO idle_b SELECT i, 'b' || i FROM generate_series(1, 50) AS i;
SELECT akko_crypt.protect('idle_a', 'v', migrate => false) AS a,
       akko_crypt.protect('idle_b', 'v', migrate => false) AS b;
SELECT dblink_exec('other', 'BEGIN') AS began;
SELECT * FROM dblink('other', $$SELECT akko_crypt.migrate_start('idle_a', 10) IS NOT NULL$$) AS t(started boolean);
SET lock_timeout = '10s';
CALL akko_crypt.migrate('idle_b', batch_size => 10);
SET lock_timeout = '200ms';
SELECT akko_test.error_of($$SELECT akko_crypt.migrate_start('idle_a', 10)$$) AS same_table_waits;
RESET lock_timeout;
SELECT dblink_exec('other', 'ROLLBACK') AS rolled_back;
CALL akko_crypt.migrate('idle_a', batch_size => 10);
SELECT tbl, resumed, sealed, finished_at IS NOT NULL AS finished
FROM akko_crypt.batch_runs WHERE tbl IN ('idle_a'::regclass, 'idle_b'::regclass) ORDER BY tbl::text;
SELECT count(*) FILTER (WHERE akko_crypt.open_text(v) LIKE 'a%') AS a_sealed_and_opening FROM idle_a;
DROP TABLE idle_a, idle_b;
-- The dropped tables' registry rows stay until the next protect or view change, and
-- status() leaves them out (it would show them as bare OIDs).
SELECT count(*) AS registry_rows_of_dropped_tables FROM akko_crypt.protected_columns p
WHERE NOT EXISTS (SELECT FROM pg_class c WHERE c.oid = p.tbl);
SELECT count(*) AS dropped_tables_in_status
FROM jsonb_array_elements(akko_crypt.status() -> 'protected_columns') AS p
WHERE p ->> 'table' ~ '^[0-9]+$';

-- A rewrite of the table between two batches (VACUUM FULL, CLUSTER) moves its rows: the
-- pass walks again from block 0.
SELECT akko_crypt.add_class('notes') AS added;
CREATE TABLE vault_notes (id int PRIMARY KEY, v bytea);
INSERT INTO vault_notes SELECT i, akko_crypt.seal_pii(jsonb_build_object('id', i), 'notes') FROM generate_series(1, 3000) AS i;
ANALYZE vault_notes;
SELECT akko_crypt.rotate_key('notes') > 0 AS rotated;
SELECT akko_crypt.reencrypt_start('vault_notes'::regclass, 'v', 200, NULL) AS run \gset
SELECT akko_crypt.reencrypt_step(:run) IS NULL AS goes_on;
SELECT akko_crypt.reencrypt_step(:run) IS NULL AS goes_on;
SELECT akko_crypt.reencrypt_step(:run) IS NULL AS goes_on;
SELECT next_block AS walked_before FROM akko_crypt.batch_runs WHERE id = :run \gset
VACUUM FULL vault_notes;
SELECT akko_crypt.reencrypt_step(:run) IS NULL AS goes_on;
SELECT next_block < :walked_before AS walks_again_from_block_0 FROM akko_crypt.batch_runs WHERE id = :run;
CALL akko_crypt.reencrypt('vault_notes', 'v');
SELECT count(*) FILTER (WHERE get_byte(v, 9) = (SELECT version FROM akko_crypt.keyring
                                                 WHERE class = 'notes' AND state = 'active')) AS under_the_active_version
FROM vault_notes;

-- A context expression runs as the table's owner: a member of the owner gives one, and the
-- run refuses to go on once that role is no longer a member (42501).
CREATE ROLE akko_note_owners;
CREATE ROLE akko_note_keeper IN ROLE akko_note_owners;
ALTER TABLE vault_notes OWNER TO akko_note_owners;
GRANT SELECT, UPDATE ON vault_notes TO akko_note_keeper;
GRANT USAGE ON SCHEMA akko_test TO akko_note_keeper;
SELECT akko_crypt.grant_privilege('seal', 'akko_note_keeper', 'notes') AND
       akko_crypt.grant_privilege('open', 'akko_note_keeper', 'notes') AS granted;
SELECT akko_crypt.rotate_key('notes') > 0 AS rotated;
SET ROLE akko_note_keeper;
SELECT akko_crypt.reencrypt_start('vault_notes'::regclass, 'v', 200, 'NULL::bytea') AS run \gset
SELECT akko_crypt.reencrypt_step(:run) IS NULL AS goes_on;
RESET ROLE;
REVOKE akko_note_owners FROM akko_note_keeper;
SET ROLE akko_note_keeper;
SELECT akko_test.error_of(format('SELECT akko_crypt.reencrypt_step(%s)', :run)) AS no_longer_a_member;
RESET ROLE;
ALTER TABLE vault_notes OWNER TO postgres;
SELECT akko_crypt.revoke_privilege('seal', 'akko_note_keeper', 'notes') AND
       akko_crypt.revoke_privilege('open', 'akko_note_keeper', 'notes') AS revoked;
REVOKE ALL ON vault_notes FROM akko_note_keeper;
REVOKE USAGE ON SCHEMA akko_test FROM akko_note_keeper;
DROP ROLE akko_note_keeper, akko_note_owners;
-- The unfinished run is taken over by the next call, which derives the context again.
CALL akko_crypt.reencrypt('vault_notes', 'v');
SELECT resumed, finished_at IS NOT NULL AS finished, context FROM akko_crypt.batch_runs WHERE id = :run;

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
DROP TABLE staff, pairs, staff_more, vault_notes;
