-- The bad-input matrix: every function of the extension with NULL arguments, every
-- truncation and every single-bit flip of an envelope, envelopes opened under the wrong
-- context, key version or subject, a multi-megabyte value, invalid parameter values and
-- odd table and column names. Each answer is a documented SQLSTATE; none is XX000 (an
-- internal error, which a panic or an unwrap would give).
SELECT set_config('akko_crypt.key', '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f', false) AS root;
CREATE TEMPORARY TABLE outcomes (probe text, input text, outcome text);
-- Runs statement and records its outcome: "ok", or the SQLSTATE it raised.
CREATE FUNCTION pg_temp.probe(probe text, input text, statement text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE state text;
BEGIN
    EXECUTE statement;
    INSERT INTO outcomes VALUES (probe, input, 'ok');
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE;
    INSERT INTO outcomes VALUES (probe, input, state);
END $$;

-- 1. Every function with every argument NULL (those that only change the session's key or
-- reach Vault are covered by key_custody and the Vault tests).
SELECT count(*) AS probed FROM (SELECT pg_temp.probe('all arguments NULL', p.oid::regprocedure::text,
           format(CASE p.prokind WHEN 'p' THEN 'CALL akko_crypt.%I(%s)' ELSE 'SELECT akko_crypt.%I(%s)' END,
                  p.proname,
                  (SELECT coalesce(string_agg(format('NULL::%s', format_type(
                              CASE WHEN a.t IN ('"any"'::regtype, 'anyelement'::regtype) THEN 'text'::regtype ELSE a.t END, NULL)), ', ' ORDER BY a.n), '')
                   FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY AS a(t, n))))
FROM pg_proc p
WHERE p.pronamespace = 'akko_crypt'::regnamespace
  AND p.proname NOT IN ('lock', 'unlock', 'rewrap', 'vault_init_transit', 'refresh_views')) AS probes;
SELECT input AS function, outcome FROM outcomes WHERE probe = 'all arguments NULL' ORDER BY 1;

-- 2. An envelope cut at every length and with every single bit flipped, opened as bytea,
-- as a protected column's text, and written into a protected column.
CREATE TABLE matrix (id int PRIMARY KEY, v text);
SELECT akko_crypt.protect('matrix', 'v');
CREATE TEMPORARY TABLE sealed AS SELECT akko_crypt.seal_pii('{"tax_id": "123-45-6789"}') AS e;
SELECT count(*) AS probed FROM (SELECT pg_temp.probe('truncated', n::text, format('SELECT akko_crypt.open_pii(%L::bytea)', substring(e FROM 1 FOR n)))
FROM sealed, generate_series(0, length(e) - 1) AS n) AS probes;
SELECT count(*) AS probed FROM (SELECT pg_temp.probe('bit flipped', bit::text, format('SELECT akko_crypt.open_pii(%L::bytea)', set_bit(e, bit, 1 - get_bit(e, bit))))
FROM sealed, generate_series(0, length(e) * 8 - 1) AS bit) AS probes;
SELECT count(*) AS probed FROM (SELECT pg_temp.probe('extended', '1 byte', format('SELECT akko_crypt.open_pii(%L::bytea)', e || '\x00'::bytea)) FROM sealed) AS probes;
SELECT count(*) AS probed FROM (SELECT pg_temp.probe('open_text bit flipped', bit::text, format('SELECT akko_crypt.open_text(%L::bytea)', set_bit(e, bit, 1 - get_bit(e, bit))))
FROM sealed, generate_series(0, length(e) * 8 - 1, 7) AS bit) AS probes;
SELECT count(*) AS probed FROM (SELECT pg_temp.probe('written truncated', n::text, format('INSERT INTO matrix VALUES (%s, %L::bytea)', n, substring(e FROM 1 FOR n)))
FROM sealed, generate_series(4, length(e) - 1, 5) AS n) AS probes;
SELECT count(*) AS probed FROM (SELECT pg_temp.probe('written bit flipped', bit::text, format('INSERT INTO matrix VALUES (%s, %L::bytea)', 1000 + bit, set_bit(e, bit, 1 - get_bit(e, bit))))
FROM sealed, generate_series(0, length(e) * 8 - 1, 3) AS bit) AS probes;
-- Which documented SQLSTATE a flipped bit gives can depend on the random nonce (a class
-- name whose length byte grows reads nonce bytes), so the answers are checked against the
-- codes the README documents for envelopes: malformed 22P03, unknown version or subject
-- 42704, failed authentication XX001, context mismatch or unknown class 22023, retired or
-- no key 55000, plaintext not UTF-8 22021. No altered envelope may open.
SELECT probe, count(*) AS probes, count(*) FILTER (WHERE outcome = 'ok') AS accepted,
       count(*) FILTER (WHERE outcome NOT IN ('ok', '22P03', '42704', 'XX001', '22023', '55000', '22021')) AS undocumented
FROM outcomes WHERE probe <> 'all arguments NULL' GROUP BY 1 ORDER BY 1;
-- A cut envelope that still parses (header, nonce and a tag's worth of bytes) is refused like
-- any envelope written into the table that does not open: nothing of it is stored.
SELECT count(*) AS stored_cut_envelopes FROM matrix;

-- 3. Envelopes opened under what they were not sealed for.
SELECT akko_test.error_of($$SELECT akko_crypt.open_pii(akko_crypt.seal_pii('{}', context => 'row 1'), 'row 2')$$);
SELECT akko_test.error_of($$SELECT akko_crypt.open_pii(akko_crypt.seal_pii('{}', context => 'row 1'))$$);
SELECT akko_test.error_of($$SELECT akko_crypt.open_pii(akko_crypt.seal_pii('{}'), 'row 1')$$);
-- another key version: the envelope names version 9 of identity, which does not exist.
SELECT akko_test.error_of(format('SELECT akko_crypt.open_pii(%L::bytea)', overlay(e PLACING '\x00000009'::bytea FROM 7))) FROM sealed;
-- another subject: a forgotten one.
CREATE TEMPORARY TABLE subject_value AS SELECT akko_crypt.seal_pii('{"a": 1}', subject => 'matrix subject') AS e;
SELECT akko_crypt.forget_subject('matrix subject');
SELECT akko_test.error_of(format('SELECT akko_crypt.open_pii(%L::bytea)', e)) FROM subject_value;

-- 4. A multi-megabyte value, sealed and opened, and through a protected column's view.
SELECT md5(akko_crypt.open_pii(akko_crypt.seal_pii(jsonb_build_object('blob', repeat('x', 5 * 1024 * 1024))))::text)
     = md5(jsonb_build_object('blob', repeat('x', 5 * 1024 * 1024))::text) AS five_mb_round_trip;
SELECT akko_crypt.create_view('matrix');
INSERT INTO matrix_decrypted VALUES (1000, repeat('é', 1024 * 1024));
SELECT length(v) AS characters, md5(v) = md5(repeat('é', 1024 * 1024)) AS same FROM matrix_decrypted WHERE id = 1000;

-- 5. Invalid parameter values.
SELECT akko_test.error_of($$SET akko_crypt.key = 'too short'$$);
SELECT akko_test.error_of($$SET akko_crypt.key = 'zz0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f'$$);
-- PostgreSQL 17 gives the range's bounds their unit; the bounds are what is checked.
SELECT regexp_replace(akko_test.error_of($$SET akko_crypt.rotation_interval = -1$$), '(\d) (min|ms)(\)| \.\.)', '\1\3', 'g') AS error_of;
SELECT regexp_replace(akko_test.error_of($$SET akko_crypt.vault_timeout = 0$$), '(\d) (min|ms)(\)| \.\.)', '\1\3', 'g') AS error_of;
SELECT akko_test.error_of($$SET akko_crypt.vault_auth = 'password'$$);
SELECT akko_test.error_of($$SET akko_crypt.vault_allow_http = 'perhaps'$$);
SHOW akko_crypt.key;

-- 6. Odd table and column names.
SELECT akko_test.error_of($$SELECT akko_crypt.protect('no_such_table', 'v')$$);
SELECT akko_test.error_of($$SELECT akko_crypt.protect('matrix', '')$$);
SELECT akko_test.error_of($$SELECT akko_crypt.protect('matrix', NULL)$$);
SELECT akko_test.error_of($$SELECT akko_crypt.protect('matrix', 'v"; DROP TABLE matrix; --')$$);
SELECT akko_test.error_of($$SELECT akko_crypt.protect('pg_catalog.pg_class', 'relname')$$);
SELECT akko_test.error_of($$SELECT akko_crypt.create_view('matrix', '')$$);
SELECT akko_test.error_of($$SELECT akko_crypt.create_view('no_such_table')$$);
SELECT akko_test.error_of($$SELECT akko_crypt.unprotect('matrix', 'id')$$);
SELECT akko_test.error_of($$SELECT akko_crypt.blind_index('x', 'matrix', 'v')$$);
SELECT akko_test.error_of($$SELECT akko_crypt.blind_index('x', 'matrix', 'no such column')$$);

-- Nothing in the matrix was an internal error.
SELECT count(*) FILTER (WHERE outcome = 'XX000') AS internal_errors, count(*) AS probes FROM outcomes;
