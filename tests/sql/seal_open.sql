-- Without a key nothing is sealed or opened: 55000, never NULL or clear text.
SELECT akko_test.error_of($$SELECT akko_crypt.seal_pii('{"name": "Ada"}')$$);
SELECT akko_test.error_of($$SELECT akko_crypt.open_pii('\xac4b434501'::bytea)$$);
SELECT set_config('akko_crypt.key', '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f', false);

-- NULL in, NULL out.
SELECT akko_crypt.seal_pii(NULL) IS NULL AS sealed_null, akko_crypt.open_pii(NULL::bytea) IS NULL AS opened_null;

-- Edge documents round-trip exactly, text included.
SELECT v AS document,
       akko_crypt.open_pii(akko_crypt.seal_pii(v))::text = v::text AS round_trips
FROM (VALUES ('""'::jsonb), ('{}'), ('[]'), ('null'), ('0'), ('"Zoë Ångström 😀 \"quoted\" \\"'::text::jsonb),
             ('{"name": "Ada", "tags": ["a", "b"], "n": 1.50, "deep": {"x": [null, true]}}')) AS t(v);

-- A document of several megabytes.
SELECT length(d::text) > 5000000 AS over_5mb, akko_crypt.open_pii(akko_crypt.seal_pii(d)) = d AS round_trips
FROM (SELECT jsonb_agg(jsonb_build_object('i', i, 'pad', repeat('é', 100))) AS d FROM generate_series(1, 50000) AS i) AS s;

-- What is stored is ciphertext: the plaintext does not appear, and sealing twice differs.
CREATE TABLE customers (id int PRIMARY KEY, pii bytea);
INSERT INTO customers VALUES (1, akko_crypt.seal_pii('{"name": "Ada Lovelace", "email": "ada@example.com"}'));
SELECT position('Lovelace'::bytea IN pii) = 0 AS no_plaintext,
       substring(pii FROM 1 FOR 5) AS magic_and_format,
       length(pii) - length('{"name": "Ada Lovelace", "email": "ada@example.com"}') AS overhead
FROM customers;
SELECT akko_crypt.seal_pii('{"a": 1}') <> akko_crypt.seal_pii('{"a": 1}') AS fresh_nonce_each_time;
SELECT akko_crypt.open_pii(pii) ->> 'email' AS email FROM customers;

-- Classes: three built in, more can be added, unknown and malformed names are refused.
SELECT name, builtin FROM akko_crypt.data_class ORDER BY name;
SELECT akko_crypt.add_class('health') AS added, akko_crypt.add_class('health') AS added_again;
SELECT akko_crypt.open_pii(akko_crypt.seal_pii('{"bp": "120/80"}', 'health')) AS health_record;
SELECT akko_test.error_of($$SELECT akko_crypt.seal_pii('{}', 'no_such_class')$$);
SELECT akko_test.error_of($$SELECT akko_crypt.seal_pii('{}', 'Bad Name')$$);
SELECT akko_test.error_of($$SELECT akko_crypt.seal_pii('{}', NULL)$$);
SELECT akko_test.error_of($$SELECT akko_crypt.add_class('x; DROP TABLE customers')$$);
SELECT akko_test.error_of($$SELECT akko_crypt.add_class(repeat('a', 64))$$);
-- The class blind_index keys blind indexes only: nothing is sealed or opened under it.
SELECT akko_test.error_of($$SELECT akko_crypt.seal_pii('{}', 'blind_index')$$);
SELECT akko_test.error_of(format($$SELECT akko_crypt.open_pii(%L::bytea)$$,
    overlay(akko_crypt.seal_pii('{"a": 1}', 'identity') PLACING '\x0b'::bytea || 'blind_index'::bytea FROM 11 FOR 9)));

-- A value sealed under one class never opens under another: relabel "identity" as
-- "financia" (same length, so only the class bytes change) after registering that class.
SELECT akko_crypt.add_class('financia');
SELECT akko_crypt.seal_pii('{}', 'financia') IS NOT NULL AS financia_has_a_key;
SELECT akko_test.error_of(format($$SELECT akko_crypt.open_pii(%L::bytea)$$,
    overlay(akko_crypt.seal_pii('{"a": 1}', 'identity') PLACING 'financia'::bytea FROM 12)));

-- Context is authenticated: same context opens, anything else fails.
CREATE TEMP TABLE bound AS
    SELECT akko_crypt.seal_pii('{"ssn": "078-05-1120"}', 'financial', 'customers.pii:1'::bytea) AS s;
SELECT akko_crypt.open_pii(s, 'customers.pii:1'::bytea) ->> 'ssn' AS ssn FROM bound;
SELECT akko_test.error_of(format($$SELECT akko_crypt.open_pii(%L::bytea, 'customers.pii:2'::bytea)$$, s)) FROM bound;
SELECT akko_test.error_of(format($$SELECT akko_crypt.open_pii(%L::bytea)$$, s)) FROM bound;
SELECT akko_test.error_of(format($$SELECT akko_crypt.open_pii(%L::bytea, ''::bytea)$$, s)) FROM bound;
SELECT akko_test.error_of(format($$SELECT akko_crypt.open_pii(%L::bytea, 'x'::bytea)$$, pii)) FROM customers;
SELECT akko_crypt.open_pii(akko_crypt.seal_pii('{}', 'identity', ''::bytea), ''::bytea) AS empty_context_is_a_context;

-- Every byte of an envelope matters: flip one bit anywhere and it fails to open.
SELECT count(*) AS bytes, count(*) FILTER (WHERE akko_test.error_of(
           format($$SELECT akko_crypt.open_pii(%L::bytea, 'customers.pii:1'::bytea)$$, akko_test.flip(s, i))) = 'no error') AS opened
FROM bound, generate_series(0, length(s) - 1) AS i;
SELECT DISTINCT split_part(akko_test.error_of(format($$SELECT akko_crypt.open_pii(%L::bytea, 'customers.pii:1'::bytea)$$,
           akko_test.flip(s, i))), ':', 1) AS sqlstates_seen
FROM bound, generate_series(0, length(s) - 1) AS i ORDER BY 1;

-- Malformed envelopes say what is wrong.
SELECT akko_test.error_of($$SELECT akko_crypt.open_pii(''::bytea)$$);
SELECT akko_test.error_of($$SELECT akko_crypt.open_pii('{"name": "Ada"}'::text::bytea)$$);
SELECT akko_test.error_of(format($$SELECT akko_crypt.open_pii(%L::bytea)$$, substring(pii FROM 1 FOR 30))) FROM customers;
SELECT akko_test.error_of(format($$SELECT akko_crypt.open_pii(%L::bytea)$$, set_byte(pii, 4, 3))) FROM customers;
-- Relabelled as format 1, a format 2 envelope's bytes no longer line up.
SELECT akko_test.error_of(format($$SELECT akko_crypt.open_pii(%L::bytea)$$, set_byte(pii, 4, 1))) FROM customers;
SELECT akko_test.error_of(format($$SELECT akko_crypt.open_pii(%L::bytea)$$, set_byte(pii, 5, 128))) FROM customers;
SELECT akko_test.error_of(format($$SELECT akko_crypt.open_pii(%L::bytea)$$, set_byte(pii, 9, 2))) FROM customers;
SELECT akko_test.error_of(format($$SELECT akko_crypt.open_pii(%L::bytea)$$, pii || '\x00'::bytea)) FROM customers;

-- Another key opens nothing.
SELECT set_config('akko_crypt.key', repeat('11', 32), false);
SELECT akko_test.error_of($$SELECT akko_crypt.open_pii(pii) FROM customers$$);
