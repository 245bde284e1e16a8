-- Table integration: protect(), its trigger, migration, decrypting views, blind indexes,
-- unprotect. (Roles and a session without the key are tested further down; COPY and
-- pg_dump of protected tables are in tests/integration.sh.)
SELECT set_config('akko_crypt.key', '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f', false) AS root;
CREATE SCHEMA "Bank";
CREATE TABLE "Bank"."Customers" (
    id serial PRIMARY KEY, name text, "Tax Id" text NOT NULL, dob date, email text,
    balance numeric(10,2), profile jsonb, dropped_later int);
ALTER TABLE "Bank"."Customers" DROP COLUMN dropped_later;
INSERT INTO "Bank"."Customers" (name, "Tax Id", dob, email, balance, profile) VALUES
    ('Ada', '123-45-6789', '1815-12-10', 'Ada@Example.com', 1234.50, '{"vip": true}'),
    ('Bob', '', NULL, 'bob@example.com', NULL, NULL);

-- bytea mode on a populated table: the column becomes bytea holding envelopes.
SELECT akko_crypt.protect('"Bank"."Customers"', 'Tax Id');
SELECT akko_crypt.protect('"Bank"."Customers"', 'dob', bind_row => true);
SELECT akko_crypt.protect('"Bank"."Customers"', 'email', blind_index => true, normalization => 'trim_lower',
                          unique_index => true);
SELECT akko_crypt.protect('"Bank"."Customers"', 'balance', class => 'financial');
-- A jsonb column stays jsonb unless bytea mode is asked for, as here.
SELECT akko_crypt.protect('"Bank"."Customers"', 'profile', mode => 'bytea');
SELECT column_name, data_type, is_nullable FROM information_schema.columns
WHERE table_schema = 'Bank' AND table_name = 'Customers' ORDER BY ordinal_position;
SELECT count(*) AS envelopes FROM "Bank"."Customers"
WHERE substr("Tax Id", 1, 4) = '\xac4b4345' AND substr(email, 1, 4) = '\xac4b4345';
-- Calling protect again with the same options is harmless; other options are refused.
SELECT akko_crypt.protect('"Bank"."Customers"', 'Tax Id');
SELECT akko_test.error_of($$SELECT akko_crypt.protect('"Bank"."Customers"', 'Tax Id', class => 'financial')$$);

-- The decrypting view: every column in its type, security_invoker, writable.
SELECT akko_crypt.create_view('"Bank"."Customers"');
SELECT reloptions FROM pg_class WHERE oid = '"Bank"."Customers_decrypted"'::regclass;
SELECT column_name, data_type FROM information_schema.columns
WHERE table_schema = 'Bank' AND table_name = 'Customers_decrypted' ORDER BY ordinal_position;
SELECT * FROM "Bank"."Customers_decrypted" ORDER BY id;
-- Dates are sealed in ISO form, so a session with another DateStyle reads them right.
SET datestyle = 'SQL, DMY';
SELECT dob FROM "Bank"."Customers_decrypted" WHERE id = 1;
RESET datestyle;
SELECT "Tax Id" = '' AS empty_string_kept, dob IS NULL AS null_kept FROM "Bank"."Customers_decrypted" WHERE id = 2;
INSERT INTO "Bank"."Customers_decrypted" (name, "Tax Id", dob, email, balance, profile)
VALUES ('Cy', '999-00-1111', '2000-01-02', ' CY@Example.org', 3, '{"vip": false}') RETURNING *;

-- An UPDATE that does not touch a protected column does not reseal it.
CREATE TEMP TABLE before AS SELECT id, "Tax Id" AS tax, dob, email FROM "Bank"."Customers";
UPDATE "Bank"."Customers_decrypted" SET name = 'Ada L.' WHERE id = 1;
UPDATE "Bank"."Customers" SET name = 'Bob B' WHERE id = 2;
SELECT b.id, c."Tax Id" = b.tax AS same_tax, c.email = b.email AS same_email
FROM "Bank"."Customers" c JOIN before b USING (id) ORDER BY id;
UPDATE "Bank"."Customers_decrypted" SET "Tax Id" = '123-45-0000' WHERE id = 1;
SELECT c."Tax Id" = b.tax AS same_tax FROM "Bank"."Customers" c JOIN before b USING (id) WHERE id = 1;

-- Plaintext written straight into the table is sealed too; an envelope passes as it is.
INSERT INTO "Bank"."Customers" (name, "Tax Id", email) VALUES ('Direct', 'direct-literal', 'direct@example.com');
INSERT INTO "Bank"."Customers" (name, "Tax Id")
SELECT 'Copied', "Tax Id" FROM "Bank"."Customers" WHERE id = 1;
SELECT id, name, "Tax Id", email FROM "Bank"."Customers_decrypted" WHERE id > 3 ORDER BY id;
SELECT (SELECT "Tax Id" FROM "Bank"."Customers" WHERE name = 'Copied') = (SELECT "Tax Id" FROM "Bank"."Customers" WHERE id = 1) AS envelope_passed;
SELECT akko_test.error_of($$INSERT INTO "Bank"."Customers" (name, "Tax Id", dob) VALUES ('x', 'y', '\x6e6f742061206461746521')$$);
SELECT akko_test.error_of($$INSERT INTO "Bank"."Customers_decrypted" (name, "Tax Id", balance) VALUES ('x', 'y', 1e20)$$);
SELECT akko_test.error_of($$INSERT INTO "Bank"."Customers" (name, "Tax Id") VALUES ('x', '\xff00')$$);
SELECT akko_test.error_of($$INSERT INTO "Bank"."Customers" (name, "Tax Id") VALUES ('x', '\xac4b434501')$$);
SELECT akko_test.error_of($$INSERT INTO "Bank"."Customers_decrypted" (name) VALUES ('no tax id')$$);

-- Row binding: a value copied to another row does not open there, so writing it there is
-- refused; a changed key reseals.
SELECT akko_test.error_of($$UPDATE "Bank"."Customers" SET dob = (SELECT dob FROM "Bank"."Customers" WHERE id = 1) WHERE id = 3$$);
UPDATE "Bank"."Customers" SET id = 100 WHERE id = 1;
SELECT id, dob FROM "Bank"."Customers_decrypted" WHERE id = 100;
-- A value copied to another column does not open there either.
SELECT akko_test.error_of($$SELECT akko_crypt.open_text(dob) FROM "Bank"."Customers" WHERE id = 100$$);

-- Blind index: equality lookups by index, normalised, UNIQUE.
SELECT id, name FROM "Bank"."Customers"
WHERE email_bidx = akko_crypt.blind_index('ADA@example.com ', '"Bank"."Customers"', 'email');
SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT id FROM "Bank"."Customers"
WHERE email_bidx = akko_crypt.blind_index('ada@example.com', '"Bank"."Customers"', 'email');
RESET enable_seqscan;
SELECT akko_test.error_of($$INSERT INTO "Bank"."Customers_decrypted" (name, "Tax Id", email) VALUES ('Dup', '1', 'ada@EXAMPLE.com')$$);
SELECT akko_test.error_of($$SELECT akko_crypt.blind_index('x', '"Bank"."Customers"', 'dob')$$);
WITH deleted AS (DELETE FROM "Bank"."Customers_decrypted" WHERE name = 'Copied' RETURNING id, "Tax Id")
SELECT * FROM deleted;

-- jsonb mode: the column stays jsonb; plain documents read unchanged, NULL erases.
CREATE TABLE events (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, kind text, pii jsonb);
INSERT INTO events (kind, pii) VALUES ('signup', '{"email": "a@x.org"}'), ('none', NULL), ('scalar', '"text"');
SELECT akko_crypt.protect('events', 'pii', class => 'operational', bind_row => true);  -- jsonb: jsonb mode
SELECT id, pii ? '$akko' AS sealed, jsonb_typeof(pii) FROM events ORDER BY id;
SELECT akko_crypt.create_view('events');
INSERT INTO events_decrypted (kind, pii) VALUES ('via view', '{"email": "b@x.org"}');
INSERT INTO events (kind, pii) VALUES ('direct', '{"email": "c@x.org"}');
UPDATE events SET pii = NULL WHERE kind = 'signup';
SELECT id, kind, pii FROM events_decrypted ORDER BY id;
SELECT count(*) FILTER (WHERE pii ? '$akko') AS sealed, count(pii) AS not_null FROM events;
SELECT akko_crypt.open_pii('{"written": "before protect"}'::jsonb) AS plain_passes,
       akko_crypt.open_pii(NULL::jsonb) AS null_passes;
SELECT akko_test.error_of($$SELECT akko_crypt.open_pii('{"$akko": "!!"}'::jsonb)$$);

-- refresh_views after ALTER TABLE keeps the view's grants.
CREATE ROLE akko_bi;
GRANT USAGE ON SCHEMA "Bank" TO akko_bi;
GRANT SELECT ON "Bank"."Customers_decrypted" TO akko_bi;
ALTER TABLE "Bank"."Customers" ADD COLUMN segment text DEFAULT 'retail';
SELECT akko_crypt.refresh_views();
SELECT column_name FROM information_schema.columns
WHERE table_schema = 'Bank' AND table_name = 'Customers_decrypted' AND column_name = 'segment';
SELECT has_table_privilege('akko_bi', '"Bank"."Customers_decrypted"', 'SELECT') AS bi_can_select;

-- Roles: the view needs the base table (security_invoker) and the key; the base table
-- alone shows ciphertext.
GRANT SELECT ON "Bank"."Customers" TO akko_bi;
SELECT akko_crypt.grant_privilege('open', 'akko_bi') AS granted;
GRANT USAGE ON SCHEMA akko_test TO akko_bi;
SET ROLE akko_bi;
SELECT id, "Tax Id" FROM "Bank"."Customers_decrypted" WHERE id = 100;
SELECT akko_crypt.lock();
SELECT akko_test.error_of($$SELECT "Tax Id" FROM "Bank"."Customers_decrypted" WHERE id = 100$$);
SELECT substr("Tax Id", 1, 4) AS ciphertext FROM "Bank"."Customers" WHERE id = 100;
SELECT akko_test.error_of($$SELECT akko_crypt.protect('"Bank"."Customers"', 'name')$$);
SELECT akko_test.error_of($$INSERT INTO "Bank"."Customers_decrypted" (name, "Tax Id") VALUES ('x', 'y')$$);
RESET ROLE;
-- Without a key nothing is stored in clear.
SELECT akko_test.error_of($$INSERT INTO "Bank"."Customers" (name, "Tax Id") VALUES ('nokey', 'secret')$$);
-- The blind index key the session derived went with the root.
SELECT akko_test.error_of($$SELECT akko_crypt.blind_index('ada@example.com', '"Bank"."Customers"', 'email')$$);
SELECT set_config('akko_crypt.key', '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f', false) AS root;
SELECT count(*) AS found_again FROM "Bank"."Customers"
WHERE email_bidx = akko_crypt.blind_index('ada@example.com', '"Bank"."Customers"', 'email');
-- What a decrypting view hands the trigger: the value's UTF-8 bytes.
SELECT akko_crypt.utf8_bytes('Zoë') = convert_to('Zoë', 'UTF8') AS utf8_bytes_match;

-- What protect refuses.
CREATE TABLE odd (id int PRIMARY KEY, a text UNIQUE, b text DEFAULT 'x', c bytea, d int, "x; DROP TABLE odd; --" text);
CREATE TABLE parted_events (id int, v text) PARTITION BY RANGE (id);
CREATE TABLE nokey (v text);
SELECT akko_test.error_of($$SELECT akko_crypt.protect('odd', 'a')$$);
SELECT akko_test.error_of($$SELECT akko_crypt.protect('odd', 'b')$$);
SELECT akko_test.error_of($$SELECT akko_crypt.protect('odd', 'c')$$);
SELECT akko_test.error_of($$SELECT akko_crypt.protect('odd', 'd', mode => 'jsonb')$$);
SELECT akko_test.error_of($$SELECT akko_crypt.protect('odd', 'missing')$$);
SELECT akko_test.error_of($$SELECT akko_crypt.protect('odd', 'd', class => 'nope')$$);
SELECT akko_test.error_of($$SELECT akko_crypt.protect('odd', 'd', class => 'blind_index')$$);
SELECT akko_test.error_of($$SELECT akko_crypt.protect('odd', 'd', mode => 'other')$$);
SELECT akko_test.error_of($$SELECT akko_crypt.protect('odd', 'd', blind_index => true, normalization => 'upper')$$);
SELECT akko_test.error_of($$SELECT akko_crypt.protect('parted_events', 'v')$$);
SELECT akko_test.error_of($$SELECT akko_crypt.protect('nokey', 'v', bind_row => true)$$);
SELECT akko_test.error_of($$SELECT akko_crypt.protect('"Bank"."Customers_decrypted"', 'name')$$);
SELECT akko_test.error_of($$SELECT akko_crypt.protect(NULL, 'v')$$);
SELECT akko_test.error_of($$SELECT akko_crypt.unprotect('odd', 'd')$$);
SELECT akko_test.error_of($$SELECT akko_crypt.create_view('odd', 'events')$$);
SELECT akko_test.error_of($$SELECT akko_crypt.protect_row()$$);
-- Names that would inject SQL are quoted everywhere.
SELECT akko_crypt.protect('odd', 'x; DROP TABLE odd; --', bind_row => true);
SELECT akko_crypt.create_view('odd', 'odd view"; DROP TABLE odd; --');
INSERT INTO "odd view""; DROP TABLE odd; --" (id, "x; DROP TABLE odd; --") VALUES (1, 'still here');
SELECT "x; DROP TABLE odd; --" FROM "odd view""; DROP TABLE odd; --";

-- status() lists what is protected, and how.
SELECT c ->> 'table' AS tbl, c ->> 'column' AS col, c ->> 'class' AS class, c ->> 'mode' AS mode,
       c ->> 'original_type' AS original_type, c ->> 'bound_to_row' AS bound, c ->> 'blind_index' AS bidx,
       c ->> 'state' AS state
FROM akko_crypt.status() AS s, jsonb_array_elements(s -> 'protected_columns') AS c ORDER BY 1, 2;

-- unprotect restores plaintext and the original type.
SELECT akko_crypt.unprotect('"Bank"."Customers"', 'dob');
SELECT akko_crypt.unprotect('"Bank"."Customers"', 'email');
SELECT akko_crypt.unprotect('events', 'pii');
SELECT column_name, data_type, is_nullable FROM information_schema.columns
WHERE table_schema = 'Bank' AND table_name = 'Customers' ORDER BY ordinal_position;
SELECT id, dob, email FROM "Bank"."Customers" ORDER BY id;
SELECT id, pii FROM events ORDER BY id;
SELECT id, dob, email FROM "Bank"."Customers_decrypted" ORDER BY id;

-- The trigger keeps one spec per protected table a session writes to (hashed past eight):
-- a table's DDL drops its spec alone, and every table goes on sealing by its own spec.
DO $$ BEGIN
    FOR i IN 1..10 LOOP
        EXECUTE format('CREATE TABLE spec_%s (id int PRIMARY KEY, v text)', i);
        PERFORM akko_crypt.protect(format('spec_%s', i)::regclass, 'v', mode => 'text');
        EXECUTE format('INSERT INTO spec_%1$s VALUES (1, %1$L)', i);
    END LOOP;
END $$;
ALTER TABLE spec_3 ADD COLUMN w text;
SELECT akko_crypt.protect('spec_3', 'w', mode => 'text');
DO $$ BEGIN
    FOR i IN 1..10 LOOP
        EXECUTE format('INSERT INTO spec_%1$s (id, v) VALUES (2, %1$L)', i);
    END LOOP;
END $$;
INSERT INTO spec_3 VALUES (3, '3', 'w3');
CREATE TEMP TABLE spec_check (tbl int, id int, v text, in_clear boolean);
DO $$ BEGIN
    FOR i IN 1..10 LOOP
        EXECUTE format($q$INSERT INTO spec_check SELECT %1$s, id, akko_crypt.open_text(akko_crypt.envelope_from_text(v)),
                                                  NOT starts_with(v, '$akko:') FROM spec_%1$s$q$, i);
    END LOOP;
END $$;
SELECT tbl, string_agg(v, ',' ORDER BY id) AS opened, bool_or(in_clear) AS any_in_clear
FROM spec_check GROUP BY tbl ORDER BY tbl;
-- The new column, known only to the spec loaded again after the DDL, is sealed too.
SELECT akko_crypt.open_text(akko_crypt.envelope_from_text(w)) AS w, starts_with(w, '$akko:') AS sealed
FROM spec_3 WHERE id = 3;
DROP TABLE spec_check, spec_1, spec_2, spec_3, spec_4, spec_5, spec_6, spec_7, spec_8, spec_9, spec_10;
