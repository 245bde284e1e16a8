-- Side-by-side timings on one cluster, in one session, interleaved round by round so that
-- machine noise hits every query alike. Only the ratios are meant to be compared.
\set ON_ERROR_STOP 1
CREATE EXTENSION IF NOT EXISTS pgcrypto;

DROP TABLE IF EXISTS bench;
CREATE TABLE bench AS
SELECT i,
       jsonb_build_object('name', 'Customer ' || i, 'email', 'customer' || i || '@example.com',
                          'tax_id', 'TX-' || lpad(i::text, 9, '0'), 'dob', '1980-01-01'::date + (i % 9000),
                          'phone', '+44 20 7946 ' || lpad((i % 10000)::text, 4, '0')) AS pii
FROM generate_series(1, 100000) AS i;
ALTER TABLE bench ADD COLUMN plain bytea, ADD COLUMN sealed bytea, ADD COLUMN pgp bytea;
UPDATE bench SET plain = pii::text::bytea, sealed = akko_crypt.seal_pii(pii),
                 pgp = pgp_sym_encrypt(pii::text, 'bench-passphrase', 's2k-mode=1, cipher-algo=aes256');
VACUUM FREEZE ANALYZE bench;

-- Each query runs twice per round: in the plan the planner picks by default (parallel
-- workers for all of them on this table: seal_pii and open_pii are PARALLEL SAFE, like the
-- baselines and pgcrypto), and in a serial plan, which compares the cost per row alone.
CREATE TEMP TABLE queries (name text PRIMARY KEY, sql text, parallel boolean NOT NULL DEFAULT true);
INSERT INTO queries VALUES
    ('baseline_text_to_bytea', 'SELECT count(pii::text::bytea) FROM bench'),
    ('akko_seal_pii',          'SELECT count(akko_crypt.seal_pii(pii)) FROM bench'),
    ('pgcrypto_encrypt',       'SELECT count(pgp_sym_encrypt(pii::text, ''bench-passphrase'', ''s2k-mode=1, cipher-algo=aes256'')) FROM bench'),
    ('baseline_bytea_to_jsonb','SELECT count(convert_from(plain, ''UTF8'')::jsonb) FROM bench'),
    ('akko_open_pii',          'SELECT count(akko_crypt.open_pii(sealed)) FROM bench'),
    ('pgcrypto_decrypt',       'SELECT count(pgp_sym_decrypt(pgp, ''bench-passphrase'')) FROM bench');
INSERT INTO queries SELECT name || '_serial', sql, false FROM queries;

SET bench.rounds = :rounds;
CREATE TEMP TABLE timings (name text, round int, ms float8);
CREATE TEMP TABLE plans (name text PRIMARY KEY, workers int);
DO $$
DECLARE
    q record;
    t0 timestamptz;
    plan json;
    default_workers text := current_setting('max_parallel_workers_per_gather');
BEGIN
    FOR r IN 1..current_setting('bench.rounds')::int LOOP
        FOR q IN SELECT * FROM queries ORDER BY name LOOP
            PERFORM set_config('max_parallel_workers_per_gather',
                               CASE WHEN q.parallel THEN default_workers ELSE '0' END, false);
            IF r = 1 THEN
                EXECUTE 'EXPLAIN (FORMAT JSON) ' || q.sql INTO plan;
                INSERT INTO plans VALUES (q.name, coalesce(substring(plan::text FROM '"Workers Planned": ([0-9]+)')::int, 0));
            END IF;
            t0 := clock_timestamp();
            EXECUTE q.sql;
            INSERT INTO timings VALUES (q.name, r, extract(epoch FROM clock_timestamp() - t0) * 1000);
        END LOOP;
    END LOOP;
END $$;

CREATE TEMP VIEW medians AS
    SELECT name, percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS ms FROM timings GROUP BY name;
\pset format unaligned
\pset tuples_only on
\pset fieldsep '|'
SELECT name, round(ms::numeric, 1), workers FROM medians JOIN plans USING (name) ORDER BY name;
CREATE TEMP VIEW ratios AS
    SELECT kind || suffix AS name, round(a.ms::numeric / b.ms::numeric, 2) AS ratio
      FROM (VALUES ('seal_vs_baseline', 'akko_seal_pii', 'baseline_text_to_bytea'),
                   ('open_vs_baseline', 'akko_open_pii', 'baseline_bytea_to_jsonb'),
                   ('pgcrypto_encrypt_vs_seal', 'pgcrypto_encrypt', 'akko_seal_pii'),
                   ('pgcrypto_decrypt_vs_open', 'pgcrypto_decrypt', 'akko_open_pii')) AS r(kind, top, bottom)
     CROSS JOIN (VALUES (''), ('_serial')) AS plan(suffix)
      JOIN medians a ON a.name = top || suffix
      JOIN medians b ON b.name = bottom || suffix;
SELECT 'ratio|' || name || '|' || ratio FROM ratios ORDER BY name;
SELECT 'avg_json_bytes|' || round(avg(length(pii::text))) FROM bench;
