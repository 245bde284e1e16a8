#!/usr/bin/env bash
# A narrated walk through akko_crypt on a throwaway PostgreSQL 15 cluster.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here" # people.sql loads people.csv from here
dir=${AKKO_DEMO_DIR:-/tmp/akko_crypt_demo}
port=${AKKO_DEMO_PORT:-55450}
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
sql() { psql -X -h "$dir" -p "$port" -U postgres -v ON_ERROR_STOP=1 "$@" demo; }
# A pool hands the key over at checkout, binding it: set_config('akko_crypt.key', $1, false).
# psql cannot bind, so the demo sends it in the connection's startup options instead: neither
# way puts it in statement text.
keyed_sql() { PGOPTIONS="-c akko_crypt.key=$AKKO_DEMO_KEY" sql "$@"; }
# AKKO_DEMO_KEEP=1 leaves the cluster and OpenBao running at the end (tests/leaks.sh scans them).
stop_all() {
    if [ -n "${AKKO_DEMO_KEEP:-}" ]; then
        echo "left running: tests/cluster.sh stop $dir; kill \$(cat $dir/bao.pid)"
        return
    fi
    if [ -f "$dir/bao.pid" ]; then kill "$(cat "$dir/bao.pid")" 2>/dev/null || true; fi
    "$here/../tests/cluster.sh" stop "$dir"
}

say "Starting a throwaway PostgreSQL 15 cluster in $dir, with akko_crypt in shared_preload_libraries"
"$here/../tests/cluster.sh" start "$dir" "$port"
trap stop_all EXIT
psql -X -q -h "$dir" -p "$port" -U postgres -c "CREATE DATABASE demo" postgres

say "CREATE EXTENSION: schema akko_crypt, three data classes out of the box"
sql -c "CREATE EXTENSION akko_crypt" -c "SELECT name FROM akko_crypt.data_class"

say "A root key: 32 random bytes. It lives with the pool (or Vault), never in the database"
# Handed to psql through the environment, never argv, which any local user can read with ps.
export AKKO_DEMO_KEY
AKKO_DEMO_KEY=${AKKO_DEMO_KEY:-$(head -c 32 /dev/urandom | base64)}
echo "generated a key (not shown); the session will only ever show its fingerprint"

say "Load it at checkout, seal customer PII into a bytea column, read it back"
keyed_sql <<'SQL'
\echo '-- SHOW gives the fingerprint, never the key:'
SHOW akko_crypt.key;
\i people.sql
CREATE TABLE customers (id int PRIMARY KEY, pii bytea NOT NULL);
INSERT INTO customers
SELECT id, akko_crypt.seal_pii(jsonb_build_object('name', name, 'tax_id', tax_id, 'email', email),
                               'identity', CASE id WHEN 2 THEN 'customers:2'::bytea END)
FROM people WHERE id <= 2;
\echo '-- what the table holds:'
SELECT id, substr(encode(pii, 'hex'), 1, 60) || '...' AS stored_bytes, length(pii) AS bytes FROM customers ORDER BY id;
\echo '-- what a session holding the key reads (row 2 is bound to its context):'
SELECT id, akko_crypt.open_pii(pii, CASE id WHEN 2 THEN 'customers:2'::bytea END) AS pii FROM customers ORDER BY id;
CHECKPOINT;
SQL

say "On disk: the table file and the WAL hold ciphertext only"
file="$dir/data/$(psql -X -A -t -h "$dir" -p "$port" -U postgres -c "SELECT pg_relation_filepath('customers')" demo)"
for f in "$file" "$dir"/data/pg_wal/0*; do
    if grep -q "Lovelace" "$f"; then echo "FOUND plaintext in $f"; exit 1; fi
done
echo "grep 'Lovelace' in the table file and every WAL segment: no match"

say "A new session without the key: a clear error, never NULL or clear text"
sql -c "SELECT akko_crypt.open_pii(pii) FROM customers WHERE id = 1" || true

say "A value bound to one row's context does not open in another"
keyed_sql <<'SQL' || true
SELECT akko_crypt.open_pii(pii, 'customers:1'::bytea) FROM customers WHERE id = 2;
SQL

say "Key lifecycle: rotate, re-encrypt online, retire the old version, erase one person"
keyed_sql <<'SQL'
\i people.sql
SELECT akko_crypt.rotate_key('identity') AS new_version;
\echo '-- re-seal everything under version 2, batch by batch; row 2 keeps its context:'
CALL akko_crypt.reencrypt('customers', 'pii', context => $$convert_to('customers:' || id, 'UTF8')$$);
SELECT id, get_byte(pii, 9) AS key_version FROM customers ORDER BY id;
SELECT akko_crypt.retire_key('identity', 1, force => true);
INSERT INTO customers SELECT id, akko_crypt.seal_pii(jsonb_build_object('name', name), subject => 'customer:3') FROM people WHERE id = 3;
SELECT akko_crypt.forget_subject('customer:3');
\echo '-- what the security officer reads:'
SELECT jsonb_pretty(akko_crypt.status()) AS status;
SELECT operation, class, version, outcome FROM akko_crypt.audit_log ORDER BY id;
\set ON_ERROR_STOP off
\echo '-- customer 3 was forgotten: their value never opens again:'
SELECT akko_crypt.open_pii(pii) FROM customers WHERE id = 3;
SQL

say "Protected tables: a bank's customers in bytea mode, an event store's jsonb, a BI role"
keyed_sql <<'SQL'
\i people.sql
CREATE TABLE bank_customers (id serial PRIMARY KEY, name text, tax_id text NOT NULL, dob date, email text);
INSERT INTO bank_customers (name, tax_id, dob, email) SELECT name, tax_id, dob, email FROM people WHERE id <= 2 ORDER BY id;
\echo '-- the columns already hold plaintext; protect migrates them and keeps them sealed:'
SELECT akko_crypt.protect('bank_customers', 'name'), akko_crypt.protect('bank_customers', 'tax_id'),
       akko_crypt.protect('bank_customers', 'dob', bind_row => true),
       akko_crypt.protect('bank_customers', 'email', blind_index => true, normalization => 'trim_lower', unique_index => true);
SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'bank_customers' ORDER BY ordinal_position;
SELECT akko_crypt.create_view('bank_customers');
INSERT INTO bank_customers_decrypted (name, tax_id, dob, email) SELECT name, tax_id, dob, email FROM people WHERE id = 3;
\echo '-- the table holds envelopes; the view reads them in their types:'
SELECT id, substr(encode(tax_id, 'hex'), 1, 24) || '...' AS tax_id_stored, email_bidx FROM bank_customers ORDER BY id;
SELECT * FROM bank_customers_decrypted ORDER BY id;
\echo '-- a blind-index lookup on an encrypted column, normalised; the plan a large table gets'
\echo '-- (three rows alone would be scanned, so sequential scans are switched off to show it):'
SET enable_seqscan = off;
-- the address as someone might type it, padded and in capitals:
\set typed '(SELECT '' '' || upper(email) FROM people WHERE id = 1)'
EXPLAIN (COSTS OFF) SELECT id FROM bank_customers WHERE email_bidx = akko_crypt.blind_index(:typed, 'bank_customers', 'email');
RESET enable_seqscan;
SELECT id, akko_crypt.open_text(name) AS name FROM bank_customers WHERE email_bidx = akko_crypt.blind_index(:typed, 'bank_customers', 'email');
\echo '-- a BI role may open the class identity, and nothing else: it reads the view with the key;'
\echo '-- with the table alone it sees ciphertext, and it may not seal or open any other class:'
CREATE ROLE bi_analyst;
SELECT akko_crypt.grant_privilege('open', 'bi_analyst', 'identity');
GRANT SELECT ON bank_customers, bank_customers_decrypted, customers TO bi_analyst;
SET ROLE bi_analyst;
SELECT name, tax_id, dob FROM bank_customers_decrypted WHERE id = 2;
SELECT substr(encode(name, 'hex'), 1, 24) || '...' AS name_in_table, substr(encode(tax_id, 'hex'), 1, 24) || '...' AS tax_id_in_table
FROM bank_customers WHERE id = 2;
\set ON_ERROR_STOP off
INSERT INTO bank_customers_decrypted (name, tax_id) VALUES ('Mallory', '000-00-0000');
\set ON_ERROR_STOP on
RESET ROLE;
\echo '-- an event store: pii stays jsonb, sealed as {"$akko": ...}; rows from before still read:'
CREATE TABLE events (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, subject text, pii jsonb);
INSERT INTO events (subject, pii) SELECT 'customer:1', jsonb_build_object('ip', ip, 'email', email) FROM people WHERE id = 1;
SELECT akko_crypt.protect('events', 'pii', mode => 'jsonb', class => 'operational');
INSERT INTO events (subject, pii) SELECT 'customer:' || id, jsonb_build_object('ip', ip) FROM people WHERE id >= 2 ORDER BY id;
SELECT akko_crypt.create_view('events');
SELECT id, left(pii::text, 40) || '...' AS stored FROM events ORDER BY id;
SELECT * FROM events_decrypted ORDER BY id;
\echo '-- forgetting a subject as before: set the value to NULL:'
UPDATE events SET pii = NULL WHERE subject = 'customer:1';
SELECT * FROM events_decrypted ORDER BY id;
SQL

say "The root from OpenBao Transit: a new session unlocks with no key from the pool"
bao=${AKKO_BAO:-$here/../.venv/bin/bao}
export BAO_ADDR="http://127.0.0.1:$((port + 20))" BAO_TOKEN=akko-demo-root
. "$here/../tests/bao.sh"
bao_start "$dir/bao.log"
echo "$bao_pid" >"$dir/bao.pid"
printf 'path "transit/datakey/wrapped/akko_root" { capabilities = ["update"] }\npath "transit/decrypt/akko_root" { capabilities = ["update"] }\n' |
    "$bao" policy write akko_demo - >/dev/null
bao_token_file "$dir/vault.token" akko_demo
echo "OpenBao dev server on $BAO_ADDR, Transit key akko_root; the backend's token may only wrap and decrypt"
sql -q -c "ALTER DATABASE demo SET akko_crypt.vault_addr = '$BAO_ADDR'" \
    -c "ALTER DATABASE demo SET akko_crypt.vault_token_file = '$dir/vault.token'" \
    -c "ALTER DATABASE demo SET akko_crypt.vault_transit_key = 'akko_root'"
keyed_sql <<'SQL'
\echo '-- once: a new root from Transit; the keyring is rewrapped under it, no value is rewritten:'
SELECT akko_crypt.vault_init_transit() AS new_root_fingerprint;
\echo '-- the database keeps the root only as Transit wrapped it:'
SELECT left(wrapped_root, 20) || '...' AS wrapped_root FROM akko_crypt.transit_root;
SQL
sql <<'SQL'
\echo '-- a new session, no key sent: the first open fetches the root through Transit:'
SELECT id, akko_crypt.open_pii(pii) ->> 'name' AS name FROM customers WHERE id = 1;
SHOW akko_crypt.key;
SELECT akko_crypt.status() ->> 'key_source' AS key_source;
SQL

say "Done. The cluster and OpenBao stop now (AKKO_DEMO_KEEP=1 leaves them running); see README.md for the pool setup."
