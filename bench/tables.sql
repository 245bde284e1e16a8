-- make bench, table integration: writes into a table with three protected columns (through
-- its decrypting view, the path plaintext takes) against the same table unprotected and the
-- PL/pgSQL + pgcrypto trigger recipe, and reads through the view against the plain table.
-- Sets up; bench/tables_round.sql is one round, bench.sh runs it again and again.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pgcrypto;
CREATE TABLE src AS
SELECT g AS id, 'Customer ' || g AS name, lpad(g::text, 9, '0') AS tax_id,
       date '1950-01-01' + g % 20000 AS dob, 'user' || g || '@example.com' AS email
FROM generate_series(1, 100000) AS g;
CREATE TABLE plain_customers (id int PRIMARY KEY, name text, tax_id text, dob date, email text);
CREATE INDEX ON plain_customers (email);
CREATE TABLE sealed_customers (id int PRIMARY KEY, name text, tax_id text, dob date, email text);
SELECT akko_crypt.protect('sealed_customers', 'tax_id'), akko_crypt.protect('sealed_customers', 'dob'),
       akko_crypt.protect('sealed_customers', 'email', blind_index => true, normalization => 'lower');
SELECT akko_crypt.create_view('sealed_customers');
-- The same columns in text mode, written straight into the table as applications and ORMs do.
CREATE TABLE text_customers (id int PRIMARY KEY, name text, tax_id text, dob date, email text);
SELECT akko_crypt.protect('text_customers', 'tax_id', mode => 'text'),
       akko_crypt.protect('text_customers', 'dob', mode => 'text'),
       akko_crypt.protect('text_customers', 'email', mode => 'text', blind_index => true, normalization => 'lower');
-- The alternative to the view's rules: a row-level INSTEAD OF trigger, one INSERT per row.
CREATE VIEW sealed_customers_via_trigger AS SELECT * FROM sealed_customers_decrypted;
CREATE FUNCTION insert_via_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO sealed_customers VALUES (NEW.id, NEW.name, akko_crypt.utf8_bytes(NEW.tax_id),
        akko_crypt.utf8_bytes(NEW.dob::text), akko_crypt.utf8_bytes(NEW.email));
    RETURN NEW;
END $$;
CREATE TRIGGER seal INSTEAD OF INSERT ON sealed_customers_via_trigger FOR EACH ROW EXECUTE FUNCTION insert_via_trigger();
-- What the ciphertext itself costs to store: the protected table's rows, already sealed,
-- inserted into a copy of it (same columns and indexes) that has no trigger.
INSERT INTO sealed_customers_decrypted SELECT * FROM src;
CREATE TABLE sealed_rows AS SELECT * FROM sealed_customers;
CREATE TABLE ciphertext_only (LIKE sealed_customers INCLUDING INDEXES);
-- The recipe users copy: a PL/pgSQL trigger around pgcrypto (with the faster s2k-mode=1;
-- pgcrypto's default key stretching is about 100 times slower still).
CREATE TABLE pgcrypto_customers (id int PRIMARY KEY, name text, tax_id bytea, dob bytea, email bytea);
CREATE FUNCTION pgcrypto_seal() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.tax_id := pgp_sym_encrypt(convert_from(NEW.tax_id, 'UTF8'), 'bench key', 's2k-mode=1, cipher-algo=aes256');
    NEW.dob := pgp_sym_encrypt(convert_from(NEW.dob, 'UTF8'), 'bench key', 's2k-mode=1, cipher-algo=aes256');
    NEW.email := pgp_sym_encrypt(convert_from(NEW.email, 'UTF8'), 'bench key', 's2k-mode=1, cipher-algo=aes256');
    RETURN NEW;
END $$;
CREATE TRIGGER seal BEFORE INSERT OR UPDATE ON pgcrypto_customers FOR EACH ROW EXECUTE FUNCTION pgcrypto_seal();

CREATE TABLE bench_timings (name text, ms numeric);
CREATE FUNCTION timed(name text, statement text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz := clock_timestamp();
BEGIN
    EXECUTE statement;
    INSERT INTO bench_timings VALUES (name, extract(epoch FROM clock_timestamp() - t0) * 1000);
END $$;
