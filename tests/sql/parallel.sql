-- Parallel queries: seal_pii and open_pii are PARALLEL SAFE, and each worker gets the key
-- its leader held when the query started, sealed for it (never the key in clear).
SET akko_crypt.key = '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f';
CREATE TABLE akko_test.par AS
    SELECT g, jsonb_build_object('n', g, 'name', 'person ' || g) AS pii FROM generate_series(1, 2000) g;
ALTER TABLE akko_test.par ADD COLUMN sealed bytea, ADD COLUMN bound bytea;
UPDATE akko_test.par SET sealed = akko_crypt.seal_pii(pii, 'identity'),
                         bound = akko_crypt.seal_pii(pii, 'identity', int4send(g));
ANALYZE akko_test.par;
SELECT proname, proparallel FROM pg_proc
 WHERE pronamespace = 'akko_crypt'::regnamespace AND proname IN ('seal_pii', 'open_pii') ORDER BY 1;

-- Every plan below runs in parallel workers only: the leader just gathers.
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
SET parallel_leader_participation = off;
EXPLAIN (COSTS OFF) SELECT count(*) FILTER (WHERE akko_crypt.open_pii(sealed) = pii) FROM akko_test.par;
SELECT count(*) FILTER (WHERE akko_crypt.open_pii(sealed) = pii) AS opened_in_workers,
       count(*) FILTER (WHERE akko_crypt.open_pii(bound, int4send(g)) = pii) AS opened_with_context
  FROM akko_test.par;
-- Sealed in workers, opened by the leader.
EXPLAIN (COSTS OFF) CREATE TABLE akko_test.par_plan AS SELECT akko_crypt.seal_pii(pii, 'identity') FROM akko_test.par;
CREATE TABLE akko_test.par_sealed AS SELECT g, akko_crypt.seal_pii(pii, 'identity') AS s FROM akko_test.par;
SELECT count(*) FILTER (WHERE akko_crypt.open_pii(s) = p.pii) AS sealed_in_workers
  FROM akko_test.par_sealed JOIN akko_test.par p USING (g);

-- A single-copy plan shows that the work, and an error raised there, happen in a worker.
-- force_parallel_mode is named debug_parallel_query from PostgreSQL 16 on.
SELECT CASE WHEN current_setting('server_version_num')::int < 160000 THEN 'force_parallel_mode'
            ELSE 'debug_parallel_query' END AS force_parallel \gset
SET :force_parallel = on;
SELECT akko_crypt.open_pii(bound, int4send(g)) FROM akko_test.par WHERE g = 7;
SELECT akko_crypt.open_pii(bound, int4send(g + 1)) FROM akko_test.par WHERE g = 7;
-- What the session shows stays the fingerprint; the sealed root behind it is never displayed.
SELECT current_setting('akko_crypt.key') AS shown, length(current_setting('akko_crypt.key')) AS shown_length;

-- A worker has the key only if its leader holds one as the query begins: not after lock(),
-- even a lock() whose transaction or savepoint rolled back (the GUC stack brings back the
-- old value, which names a key that is gone), not after RESET or the end of SET LOCAL.
SELECT akko_crypt.lock();
SELECT akko_crypt.open_pii(sealed) FROM akko_test.par WHERE g = 7;
SET akko_crypt.key = '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f';
BEGIN;
SELECT akko_crypt.lock();
ROLLBACK;
SHOW akko_crypt.key;
SELECT akko_crypt.open_pii(sealed) FROM akko_test.par WHERE g = 7;
SET akko_crypt.key = '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f';
BEGIN;
SAVEPOINT s;
SELECT akko_crypt.lock();
ROLLBACK TO SAVEPOINT s;
SELECT akko_crypt.open_pii(sealed) FROM akko_test.par WHERE g = 7;
COMMIT;
SET akko_crypt.key = '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f';
RESET akko_crypt.key;
SELECT akko_crypt.open_pii(sealed) FROM akko_test.par WHERE g = 7;
BEGIN;
SET LOCAL akko_crypt.key = '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f';
SELECT akko_crypt.open_pii(sealed) ->> 'n' AS opens_inside FROM akko_test.par WHERE g = 7;
COMMIT;
SELECT akko_crypt.open_pii(sealed) FROM akko_test.par WHERE g = 7;
-- The setting that carries the key to workers is akko_crypt's alone.
SELECT akko_test.error_of($$SET akko_crypt.handoff = 'forged'$$);
SELECT current_setting('akko_crypt.handoff', true) AS handoff_shows;
SET akko_crypt.key = '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f';

-- A parallel query cannot write, and a class's first seal writes its key, a subject's first
-- seal the subject's: a plan whose seals may do so runs without workers (Workers Launched: 0),
-- and works; once the class has its key, the same plan runs in a worker again.
SELECT akko_crypt.add_class('parallel_class');
SELECT * FROM akko_test.plan_run($$
    SELECT akko_crypt.seal_pii(pii, 'parallel_class') FROM akko_test.par WHERE g = 7$$) AS "QUERY PLAN";
SELECT * FROM akko_test.plan_run($$
    SELECT akko_crypt.seal_pii(pii, 'parallel_class') FROM akko_test.par WHERE g = 7$$) AS "QUERY PLAN";
SELECT * FROM akko_test.plan_run($$
    SELECT akko_crypt.seal_pii(pii, 'parallel_class', subject => 'parallel subject') FROM akko_test.par WHERE g = 7$$) AS "QUERY PLAN";
SELECT akko_crypt.open_pii(akko_crypt.seal_pii(pii, 'parallel_class', subject => 'parallel subject'))
  FROM akko_test.par WHERE g = 7;
-- A class known only as the plan runs may be one without a key: no workers either.
SELECT * FROM akko_test.plan_run($$
    SELECT akko_crypt.seal_pii(pii, CASE WHEN g = 7 THEN 'parallel_class' END) FROM akko_test.par WHERE g = 7$$) AS "QUERY PLAN";
-- A call the walk of target lists and filters does not reach (a join's condition), beside
-- one it does on a class with a key: the plan's text counts every call, so no workers.
SELECT akko_crypt.add_class('parallel_join');
SET enable_hashjoin = off;
SET enable_mergejoin = off;
SELECT * FROM akko_test.plan_run($$
    SELECT count(akko_crypt.seal_pii(a.pii, 'identity')) FROM akko_test.par a JOIN akko_test.par b
        ON a.g = b.g AND akko_crypt.seal_pii(a.pii || b.pii, 'parallel_join') IS NOT NULL
     WHERE a.g < 3 AND b.g < 3$$) AS "QUERY PLAN";
RESET enable_hashjoin;
RESET enable_mergejoin;
-- What issue 16 found: a CREATE TABLE ... AS that is a class's first seal.
RESET :force_parallel;
SELECT akko_crypt.add_class('parallel_ctas');
CREATE TABLE akko_test.par_first AS SELECT g, akko_crypt.seal_pii(pii, 'parallel_ctas') AS s FROM akko_test.par;
SELECT count(*) FILTER (WHERE akko_crypt.open_pii(s) = p.pii) AS first_seals_open
  FROM akko_test.par_first JOIN akko_test.par p USING (g);
DROP TABLE akko_test.par_first;
RESET ALL;

-- Opening reads the keyring without giving the transaction an id, so it runs on a hot
-- standby, and a reading transaction writes no commit record.
SET akko_crypt.key = '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f';
BEGIN;
SELECT akko_crypt.open_pii(sealed) FROM akko_test.par WHERE g = 7;
SELECT pg_current_xact_id_if_assigned() IS NULL AS no_transaction_id;
COMMIT;
DROP TABLE akko_test.par, akko_test.par_sealed;
