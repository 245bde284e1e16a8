-- Text mode: the column keeps (or takes) type text, so applications write the table as they
-- did: every statement an application or an ORM sends stores its plaintext sealed and
-- unchanged, typed parameters included.
SELECT set_config('akko_crypt.key', '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f', false) AS root;
\pset null '(null)'
CREATE TABLE accounts (
    id serial PRIMARY KEY, email text, tax_id varchar(11), born date, balance numeric(8,2),
    login text, note text);
INSERT INTO accounts (email, tax_id, born, balance, login, note)
VALUES ('ada@example.com', '111-11-1111', '1990-01-02', 10.50, 'CORP\ada', 'before protect');
SELECT akko_crypt.protect('accounts', 'email', mode => 'text', blind_index => true,
                          unique_index => true, normalization => 'lower', bind_row => true);
SELECT akko_crypt.protect('accounts', 'tax_id', mode => 'text');
SELECT akko_crypt.protect('accounts', 'born', mode => 'text', bind_row => true);
SELECT akko_crypt.protect('accounts', 'balance', mode => 'text', class => 'financial');
SELECT akko_crypt.protect('accounts', 'login', mode => 'text');
-- Every column keeps its place; text columns stay text, the others become text.
SELECT column_name, data_type FROM information_schema.columns
WHERE table_name = 'accounts' ORDER BY ordinal_position;
SELECT col, mode, original_type FROM akko_crypt.protected_columns
WHERE tbl = 'accounts'::regclass ORDER BY col;
SELECT count(*) AS rows, count(*) FILTER (WHERE email LIKE '$akko:%' AND tax_id LIKE '$akko:%'
       AND born LIKE '$akko:%' AND balance LIKE '$akko:%' AND login LIKE '$akko:%') AS sealed
FROM accounts;
SELECT akko_crypt.create_view('accounts');

-- Text is taken as written: what bytea input would read as escapes stays as it is.
INSERT INTO accounts (email, tax_id, login) VALUES
    ('\x41424344', 'AB\12', 'DOMAIN\\jdoe'),
    (E'tab\there', NULL, 'o''brien');
-- Typed parameters reach a text column through PostgreSQL's assignment casts.
PREPARE typed(text, date, numeric) AS
    INSERT INTO accounts (email, born, balance, note) VALUES ($1, $2, $3, 'prepared') RETURNING id;
EXECUTE typed('bea@example.com', '2001-02-03', 99.95);
-- A value that is not one of the column's type is refused without being shown.
SELECT akko_test.error_of($$INSERT INTO accounts (born) VALUES ('not a date')$$);
SELECT akko_test.error_of($$INSERT INTO accounts (tax_id) VALUES ('123-45-67890')$$);
SELECT id, email, tax_id, born, balance, login, note FROM accounts_decrypted ORDER BY id;
SELECT count(*) AS sealed_or_null FROM accounts
WHERE (email IS NULL OR email LIKE '$akko:%') AND (tax_id IS NULL OR tax_id LIKE '$akko:%')
  AND (born IS NULL OR born LIKE '$akko:%') AND (login IS NULL OR login LIKE '$akko:%');

-- Upserts. On the primary key:
INSERT INTO accounts (id, email, tax_id, note) VALUES (1, 'ada@new.example', '222-22-2222', 'upsert on id')
ON CONFLICT (id) DO UPDATE SET email = EXCLUDED.email, tax_id = EXCLUDED.tax_id, note = EXCLUDED.note;
-- On the unique blind index, from a proposed row with another id: the email, bound to its
-- row, is sealed again for the row that conflicted, and its blind index follows.
INSERT INTO accounts (id, email, born, note) VALUES (50, 'BEA@example.com', '2002-03-04', 'upsert on email')
ON CONFLICT (email_bidx) DO UPDATE SET email = EXCLUDED.email, born = EXCLUDED.born, note = EXCLUDED.note
RETURNING id, email LIKE '$akko:%' AS sealed;
INSERT INTO accounts (id, email) VALUES (1, 'ignored@example.com') ON CONFLICT DO NOTHING;
INSERT INTO accounts (id, email) VALUES (51, 'ADA@NEW.EXAMPLE') ON CONFLICT (email_bidx) DO NOTHING;
SELECT id, email, tax_id, born, note FROM accounts_decrypted WHERE id IN (1, 3, 4, 50, 51) ORDER BY id;
SELECT id FROM accounts WHERE email_bidx = akko_crypt.blind_index('bea@example.com', 'accounts', 'email');

-- MERGE, UPDATE ... FROM, DELETE ... RETURNING.
MERGE INTO accounts a USING (VALUES (2, 'merged@example.com'), (60, 'inserted@example.com')) s(id, email)
ON a.id = s.id
WHEN MATCHED THEN UPDATE SET email = s.email
WHEN NOT MATCHED THEN INSERT (id, email, note) VALUES (s.id, s.email, 'merge');
UPDATE accounts a SET tax_id = s.tax_id FROM (VALUES (2, '333-33-3333')) s(id, tax_id) WHERE a.id = s.id;
SELECT id, email, tax_id, note FROM accounts_decrypted WHERE id IN (2, 60) ORDER BY id;
DELETE FROM accounts WHERE id = 60 RETURNING id, email LIKE '$akko:%' AS sealed;

-- COPY: plaintext in, sealed; sealed envelopes out and back in (a restore) open as before.
COPY accounts (id, email, tax_id, born, balance, login, note) FROM stdin;
70	copy@example.com	444-44-4444	1970-07-07	7.70	back\\slash	copied
\.
SELECT id, email, tax_id, born, balance, login, note FROM accounts_decrypted WHERE id = 70;
CREATE TEMP TABLE saved AS SELECT * FROM accounts;
DELETE FROM accounts;
INSERT INTO accounts SELECT * FROM saved;
SELECT count(*) AS restored FROM accounts_decrypted;
SELECT id, email, born FROM accounts_decrypted WHERE id = 1;

-- Through the view, values keep their types.
INSERT INTO accounts_decrypted (id, email, born, balance, note) VALUES (80, 'view@example.com', '1999-09-09', 1.25, 'view');
UPDATE accounts_decrypted SET tax_id = '555-55-5555' WHERE id = 80;
SELECT id, email, tax_id, born, balance, note FROM accounts_decrypted WHERE id = 80;

-- Text shaped like an envelope is an envelope attempt: refused unless it is a valid one.
SELECT akko_test.error_of($$INSERT INTO accounts (note, tax_id) VALUES ('forged', '$akko:not base64')$$);
SELECT akko_test.error_of($$INSERT INTO accounts (note, tax_id) VALUES ('forged', '$akko:rAECAw==')$$);
SELECT akko_test.error_of($$INSERT INTO accounts (id, born) SELECT 90, born FROM accounts WHERE id = 70$$);
SELECT akko_test.error_of($$SELECT akko_crypt.envelope_from_text('123-45-6789')$$);
SELECT akko_crypt.envelope_from_text(akko_crypt.envelope_as_text('\xac01'::bytea));

-- A role that may seal but not open writes, and upserts, without opening anything; it
-- cannot copy an envelope that it did not just write.
CREATE ROLE text_writer;
GRANT SELECT, INSERT, UPDATE ON accounts TO text_writer;
GRANT USAGE ON SCHEMA akko_test TO text_writer;
SELECT akko_crypt.grant_privilege('seal', 'text_writer', 'identity');
SET ROLE text_writer;
INSERT INTO accounts (id, email, tax_id, note) VALUES (100, 'writer@example.com', '666-66-6666', 'writer')
ON CONFLICT (email_bidx) DO UPDATE SET email = EXCLUDED.email, tax_id = EXCLUDED.tax_id;
INSERT INTO accounts (id, email, tax_id) VALUES (101, 'WRITER@example.com', '777-77-7777')
ON CONFLICT (email_bidx) DO UPDATE SET email = EXCLUDED.email, tax_id = EXCLUDED.tax_id;
SELECT akko_test.error_of($$UPDATE accounts SET tax_id = (SELECT tax_id FROM accounts WHERE id = 70) WHERE id = 100$$);
SELECT akko_test.error_of($$INSERT INTO accounts (id, tax_id) SELECT 102, tax_id FROM accounts WHERE id = 70$$);
-- An upsert takes only what its own INSERT sealed, for the same column.
SELECT akko_test.error_of($$INSERT INTO accounts (id, tax_id) VALUES (100, '000-00-0000')
    ON CONFLICT (id) DO UPDATE SET tax_id = (SELECT tax_id FROM accounts WHERE id = 70)$$);
SELECT akko_test.error_of($$INSERT INTO accounts (id, tax_id, login) VALUES (100, '000-00-0000', 'x')
    ON CONFLICT (id) DO UPDATE SET login = EXCLUDED.tax_id$$);
RESET ROLE;
SELECT id, email, tax_id FROM accounts_decrypted WHERE id IN (100, 101, 102) ORDER BY id;

-- Without the key nothing is written, in clear or otherwise.
SELECT akko_crypt.lock();
SELECT akko_test.error_of($$INSERT INTO accounts (id, tax_id) VALUES (110, '888-88-8888')$$);
SELECT akko_test.error_of($$INSERT INTO accounts (id, tax_id) VALUES (1, '888-88-8888') ON CONFLICT (id) DO UPDATE SET tax_id = EXCLUDED.tax_id$$);
SELECT set_config('akko_crypt.key', '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f', false) AS root;

-- Rotation and re-encryption, then back to the original types.
SELECT akko_crypt.rotate_key('identity') AS version;
CALL akko_crypt.reencrypt('accounts', 'tax_id');
CALL akko_crypt.reencrypt('accounts', 'email');
SELECT id, email, tax_id FROM accounts_decrypted WHERE id IN (1, 100) ORDER BY id;
SELECT akko_crypt.unprotect('accounts', 'born');
SELECT akko_crypt.unprotect('accounts', 'tax_id');
SELECT column_name, data_type FROM information_schema.columns
WHERE table_name = 'accounts' ORDER BY ordinal_position;
SELECT id, tax_id, born FROM accounts WHERE id IN (1, 70) ORDER BY id;

-- A column that already holds text shaped like an envelope is refused: nobody authenticated it.
CREATE TABLE planted (id int PRIMARY KEY, secret text);
INSERT INTO planted VALUES (1, 'plain'), (2, (SELECT email FROM accounts WHERE id = 70));
SELECT akko_test.error_of($$SELECT akko_crypt.protect('planted', 'secret', mode => 'text')$$);
DROP TABLE planted;

-- An online migration of a text column: the sealed column is added, the plaintext goes.
CREATE TABLE suppliers_t (id int PRIMARY KEY, vat text NOT NULL);
INSERT INTO suppliers_t SELECT g, 'VAT-' || g FROM generate_series(1, 500) g;
SELECT akko_crypt.protect('suppliers_t', 'vat', mode => 'text', migrate => false);
INSERT INTO suppliers_t VALUES (501, 'VAT-501');
CALL akko_crypt.migrate('suppliers_t', batch_size => 100);
SELECT column_name, data_type, is_nullable FROM information_schema.columns
WHERE table_name = 'suppliers_t' ORDER BY ordinal_position;
SELECT count(*) FILTER (WHERE vat LIKE '$akko:%') AS sealed FROM suppliers_t;
SELECT akko_crypt.create_view('suppliers_t');
SELECT * FROM suppliers_t_decrypted WHERE id IN (1, 501) ORDER BY id;

DROP VIEW accounts_decrypted, suppliers_t_decrypted;
DROP TABLE accounts, suppliers_t;
REVOKE USAGE ON SCHEMA akko_test FROM text_writer;
SELECT akko_crypt.revoke_privilege('seal', 'text_writer', 'identity');
DROP ROLE text_writer;
