#!/usr/bin/env bash
# Load while keys rotate: pgbench clients insert rows through a protected table's view and
# update them, while another session rotates the sealing class and re-encrypts the column
# again and again. Afterwards every committed insert is there exactly once, every update
# landed, and every value opens and still matches its blind index.
#   tests/load.sh DIR PORT     (quick form; make stress sets AKKO_LOAD_SECONDS and _CLIENTS)
set -uo pipefail
dir=$1 port=$2
seconds=${AKKO_LOAD_SECONDS:-6} clients=${AKKO_LOAD_CLIENTS:-8}
. "$(dirname "$0")/checks.sh"

psql_ -c "CREATE DATABASE akko_rotation_load" postgres
keyed akko_rotation_load "CREATE EXTENSION akko_crypt;
    CREATE TABLE accounts (id bigserial PRIMARY KEY, client int NOT NULL, email text, balance numeric NOT NULL);
    SELECT akko_crypt.protect('accounts', 'email', blind_index => true, normalization => 'lower');
    SELECT akko_crypt.protect('accounts', 'balance', class => 'financial');
    SELECT akko_crypt.create_view('accounts');
    ALTER VIEW accounts_decrypted ALTER COLUMN balance SET DEFAULT 0" >/dev/null
cat >"$dir/load_accounts.sql" <<'SQL'
\set n random(1, 1000000000)
BEGIN;
INSERT INTO accounts_decrypted (client, email) VALUES (:client_id, 'User' || :n || '@Example.com') RETURNING id \gset
UPDATE accounts_decrypted SET balance = balance + 1 WHERE id = :id;
COMMIT;
SQL
PGOPTIONS="-c akko_crypt.key=$root" pgbench -n -c "$clients" -j 2 -T "$seconds" -h "$dir" -p "$port" -U postgres \
    -f "$dir/load_accounts.sql" akko_rotation_load >"$dir/load_accounts.txt" 2>&1 &
loader=$!
rotations=0
while kill -0 "$loader" 2>/dev/null; do
    # One statement per -c: a CALL that commits cannot run inside a multi-statement string.
    psql_ -v ON_ERROR_STOP=1 -c "SELECT set_config('akko_crypt.key', '$root', false) IS NULL" \
        -c "SELECT akko_crypt.rotate_key('identity'), akko_crypt.rotate_key('financial')" \
        -c "CALL akko_crypt.reencrypt('accounts', 'email', batch_size => 500)" \
        -c "CALL akko_crypt.reencrypt('accounts', 'balance', batch_size => 500)" \
        akko_rotation_load >>"$dir/load_rotations.txt" 2>&1 && rotations=$((rotations + 1))
    sleep 0.3
done
wait $loader
loaded=$?
committed=$(awk -F': ' '/number of transactions actually processed/ { print $2 }' "$dir/load_accounts.txt" | cut -d/ -f1)
check "pgbench: $clients clients, $seconds s, no failed transaction ($committed committed)" [ "$loaded" -eq 0 ]
check "the key rotations and re-encryptions ran alongside ($rotations rounds, none failed)" \
    bash -c "[ $rotations -gt 0 ] && ! grep -q ERROR '$dir/load_rotations.txt'"
summary=$(keyed akko_rotation_load "SELECT count(*), count(DISTINCT a.id), sum(a.balance),
        count(*) FILTER (WHERE a.email ~ '^User[0-9]+@Example\\.com\$'),
        count(*) FILTER (WHERE t.email_bidx = akko_crypt.blind_index(a.email, 'accounts', 'email'))
    FROM accounts_decrypted a JOIN accounts t USING (id)")
check "every committed insert is there once, updated once, opens and matches its blind index" \
    [ "$summary" = "$committed|$committed|$committed|$committed|$committed" ]
# Rows a client sealed under the previous version while a pass went by are left for the next
# pass, as online rotation must: one more pass after the load moves them too.
psql_ -c "SELECT set_config('akko_crypt.key', '$root', false) IS NULL" \
    -c "CALL akko_crypt.reencrypt('accounts', 'email')" -c "CALL akko_crypt.reencrypt('accounts', 'balance')" \
    akko_rotation_load >/dev/null 2>>"$dir/load_rotations.txt"
# The key version an envelope names: 4 bytes, big-endian, at offset 6.
newest=$(keyed akko_rotation_load "WITH active AS (SELECT class, version FROM akko_crypt.keyring WHERE state = 'active')
    SELECT (SELECT min(version) FROM active WHERE class IN ('identity', 'financial')), count(*) FILTER (WHERE
        ('x' || encode(substring(email FROM 7 FOR 4), 'hex'))::bit(32)::int = (SELECT version FROM active WHERE class = 'identity')
    AND ('x' || encode(substring(balance FROM 7 FOR 4), 'hex'))::bit(32)::int = (SELECT version FROM active WHERE class = 'financial'))
    FROM accounts")
check "every value ends under its class's newest key version (${newest%%|*} or later)" \
    [ "${newest#*|}" = "$committed" -a "${newest%%|*}" -gt 1 ]

echo "load: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
