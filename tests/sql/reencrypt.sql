-- reencrypt: reseals a column's values under the active key versions, batch by batch.
-- (Killing a run and resuming it, and a second session meeting a running one, are in
-- tests/integration.sh.)
SELECT set_config('akko_crypt.key', '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f', false) AS root;
SELECT akko_crypt.add_class('payroll');
CREATE TABLE payroll (id int PRIMARY KEY, v bytea, c bytea, note text);
-- v: plain, subject-keyed, not sealed, NULL; c: bound to a context built from the row.
INSERT INTO payroll
SELECT i,
       CASE WHEN i <= 10 THEN akko_crypt.seal_pii(jsonb_build_object('id', i), 'payroll', subject => 'employee:' || i)
            WHEN i IN (11, 12) THEN convert_to('plain bytes', 'UTF8')
            WHEN i = 13 THEN NULL
            ELSE akko_crypt.seal_pii(jsonb_build_object('id', i), 'payroll') END,
       akko_crypt.seal_pii(jsonb_build_object('id', i), 'payroll', convert_to('payroll.c:' || i, 'UTF8')),
       'row ' || i
FROM generate_series(1, 500) AS i;
SELECT akko_crypt.rotate_key('payroll') AS v2;
INSERT INTO payroll VALUES (501, akko_crypt.seal_pii('{"id": 501}', 'payroll'),
                            akko_crypt.seal_pii('{"id": 501}', 'payroll', convert_to('payroll.c:501', 'UTF8')), 'new');
SELECT akko_crypt.forget_subject('employee:1');
CREATE TEMP TABLE subject_ids AS SELECT id, substring(v FROM 19 FOR 16) AS subject_id FROM payroll WHERE id <= 10;

CALL akko_crypt.reencrypt('payroll', 'v', batch_size => 100);
-- Every value that could be opened is under version 2 and opens to what it held; the
-- forgotten subject's value, the plain bytes and the NULL are left as they were.
SELECT get_byte(v, 9) AS key_version, count(*) FROM payroll WHERE v IS NOT NULL AND id NOT IN (11, 12)
GROUP BY 1 ORDER BY 1;
SELECT count(*) AS opened_unchanged FROM payroll
WHERE id > 1 AND id NOT IN (11, 12, 13) AND (akko_crypt.open_pii(v) ->> 'id')::int = id;
SELECT count(*) AS subject_ids_kept FROM payroll JOIN subject_ids USING (id)
WHERE get_byte(v, 5) = 2 AND substring(v FROM 19 FOR 16) = subject_id;
SELECT id, convert_from(v, 'UTF8') AS untouched FROM payroll WHERE id IN (11, 12) ORDER BY id;
SELECT v IS NULL AS still_null FROM payroll WHERE id = 13;
SELECT job, tbl, col, pass, next_block = table_blocks AS walked_to_end, sealed, pass_stale, pass_unreadable,
       pass_not_sealed, resumed, finished_at IS NOT NULL AS finished
FROM akko_crypt.batch_runs WHERE col = 'v';
-- Nothing left: a second run reseals nothing in one pass.
CALL akko_crypt.reencrypt('payroll', 'v');

-- Context-bound values are resealed only with their context, which stays bound.
CALL akko_crypt.reencrypt('payroll', 'c');
\echo :LAST_ERROR_SQLSTATE
CALL akko_crypt.reencrypt('payroll', 'c', context => $$convert_to('payroll.c:' || (id + 1), 'UTF8')$$);
\echo :LAST_ERROR_SQLSTATE
CALL akko_crypt.reencrypt('payroll', 'c', context => $$convert_to('payroll.c:' || id, 'UTF8')$$);
SELECT get_byte(c, 9) AS key_version, get_byte(c, 5) AS flags, count(*) FROM payroll GROUP BY 1, 2;
SELECT count(*) AS opened_with_context FROM payroll
WHERE (akko_crypt.open_pii(c, convert_to('payroll.c:' || id, 'UTF8')) ->> 'id')::int = id;
SELECT resumed, sealed FROM akko_crypt.batch_runs WHERE col = 'c';

-- Values under a destroyed or retired version cannot be resealed: counted, left alone.
SELECT akko_crypt.add_class('scrap');
CREATE TABLE scraps (id int, v bytea);
INSERT INTO scraps SELECT i, akko_crypt.seal_pii(jsonb_build_object('id', i), 'scrap') FROM generate_series(1, 3) i;
SELECT akko_crypt.rotate_key('scrap') AS v2;
INSERT INTO scraps SELECT i, akko_crypt.seal_pii(jsonb_build_object('id', i), 'scrap') FROM generate_series(4, 5) i;
SELECT akko_crypt.rotate_key('scrap') AS v3;
INSERT INTO scraps SELECT i, akko_crypt.seal_pii(jsonb_build_object('id', i), 'scrap') FROM generate_series(6, 7) i;
SELECT akko_crypt.destroy_key('scrap', 1, force => true);
SELECT akko_crypt.retire_key('scrap', 2, force => true);
CALL akko_crypt.reencrypt('scraps', 'v');
SELECT id, get_byte(v, 9) AS key_version FROM scraps ORDER BY id;

-- An empty table finishes at once.
CREATE TABLE nothing_here (v bytea);
CALL akko_crypt.reencrypt('nothing_here', 'v');

-- What it refuses, before touching anything.
CALL akko_crypt.reencrypt('payroll', 'note');
\echo :LAST_ERROR_SQLSTATE
CALL akko_crypt.reencrypt('payroll', 'missing');
\echo :LAST_ERROR_SQLSTATE
CALL akko_crypt.reencrypt('payroll', 'v', batch_size => 0);
\echo :LAST_ERROR_SQLSTATE
CALL akko_crypt.reencrypt('payroll', NULL);
\echo :LAST_ERROR_SQLSTATE
CALL akko_crypt.reencrypt('payroll', 'c', context => 'no_such_column');
\echo :LAST_ERROR_SQLSTATE
CREATE TABLE parted (k int, v bytea) PARTITION BY RANGE (k);
CALL akko_crypt.reencrypt('parted', 'v');
\echo :LAST_ERROR_SQLSTATE
CREATE VIEW payroll_view AS SELECT * FROM payroll;
CALL akko_crypt.reencrypt('payroll_view', 'v');
\echo :LAST_ERROR_SQLSTATE
-- It commits as it goes, so it cannot run inside a transaction block.
BEGIN;
CALL akko_crypt.reencrypt('payroll', 'v');
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;

-- Only a role that may seal and open the column's class, with SELECT and UPDATE on the
-- column, may run it: it opens every value it seals again.
CREATE ROLE akko_operator;
GRANT USAGE ON SCHEMA akko_test TO akko_operator;
SET ROLE akko_operator;
CALL akko_crypt.reencrypt('public.payroll', 'v');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT akko_crypt.grant_privilege('seal', 'akko_operator', 'payroll') AS granted;
GRANT SELECT ON payroll TO akko_operator;
SET ROLE akko_operator;
CALL akko_crypt.reencrypt('public.payroll', 'v');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) >= 0 AS operator_reads_runs FROM akko_crypt.batch_runs;
RESET ROLE;
GRANT UPDATE (v) ON payroll TO akko_operator;
SELECT akko_crypt.rotate_key('payroll') AS v3;
-- May seal the class but not open it: refused at the first old value, nothing resealed.
SET ROLE akko_operator;
CALL akko_crypt.reencrypt('public.payroll', 'v');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT count(*) FILTER (WHERE get_byte(v, 9) = 3) AS under_v3_before_open_right FROM payroll;
SELECT akko_crypt.grant_privilege('open', 'akko_operator', 'payroll') AS granted;
SET ROLE akko_operator;
CALL akko_crypt.reencrypt('public.payroll', 'v');
RESET ROLE;
SELECT akko_crypt.revoke_privilege('seal', 'akko_operator', 'payroll') AND
       akko_crypt.revoke_privilege('open', 'akko_operator', 'payroll') AS revoked;
REVOKE ALL ON payroll FROM akko_operator;
REVOKE ALL ON SCHEMA akko_test FROM akko_operator;
DROP ROLE akko_operator;

-- Every run is in the audit log: started, resumed, finished, with its counts.
SELECT operation, role, detail, outcome FROM akko_crypt.audit_log
WHERE operation = 'reencrypt' ORDER BY id;
-- status() shows the latest run of each column.
SELECT r ->> 'job' AS job, r ->> 'table' AS tbl, r ->> 'column' AS col, r ->> 'state' AS state,
       r ->> 'sealed' AS sealed, r ->> 'cannot_be_opened' AS cannot_be_opened, r ->> 'not_sealed' AS not_sealed,
       (r ->> 'next_block') = (r ->> 'table_blocks') AS walked_to_end
FROM jsonb_array_elements(akko_crypt.status() -> 'runs') AS r;
