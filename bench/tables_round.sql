-- One round of the table integration benchmark (see bench/tables.sql).
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
TRUNCATE plain_customers, sealed_customers, text_customers, pgcrypto_customers, ciphertext_only;
CHECKPOINT;
SELECT timed('insert_plain', 'INSERT INTO plain_customers SELECT * FROM src');
SELECT timed('insert_ciphertext_only', 'INSERT INTO ciphertext_only SELECT * FROM sealed_rows');
SELECT timed('insert_instead_of_trigger', 'INSERT INTO sealed_customers_via_trigger SELECT * FROM src');
TRUNCATE sealed_customers;
SELECT timed('insert_protected', 'INSERT INTO sealed_customers_decrypted SELECT * FROM src');
SELECT timed('insert_text_mode', 'INSERT INTO text_customers SELECT * FROM src');
SELECT timed('insert_pgcrypto_trigger', $q$INSERT INTO pgcrypto_customers SELECT id, name,
    convert_to(tax_id, 'UTF8'), convert_to(dob::text, 'UTF8'), convert_to(email, 'UTF8') FROM src$q$);
VACUUM ANALYZE plain_customers, sealed_customers;
SELECT timed('read_plain', $q$COPY (SELECT * FROM plain_customers) TO '/dev/null'$q$);
SELECT timed('read_view', $q$COPY (SELECT * FROM sealed_customers_decrypted) TO '/dev/null'$q$);
-- The same reads on one core: the planner gives the view's scan parallel workers (opening is
-- costed), never the plain table's.
SET max_parallel_workers_per_gather = 0;
SELECT timed('read_plain_serial', $q$COPY (SELECT * FROM plain_customers) TO '/dev/null'$q$);
SELECT timed('read_view_serial', $q$COPY (SELECT * FROM sealed_customers_decrypted) TO '/dev/null'$q$);
RESET max_parallel_workers_per_gather;
-- Upserts that update every row (after the reads: they leave dead rows behind).
SELECT timed('upsert_plain', 'INSERT INTO plain_customers SELECT * FROM src
    ON CONFLICT (id) DO UPDATE SET tax_id = EXCLUDED.tax_id, email = EXCLUDED.email');
SELECT timed('upsert_text_mode', 'INSERT INTO text_customers SELECT * FROM src
    ON CONFLICT (id) DO UPDATE SET tax_id = EXCLUDED.tax_id, email = EXCLUDED.email');
