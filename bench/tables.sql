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
