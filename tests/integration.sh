#!/usr/bin/env bash
# Out-of-process checks against the running test cluster, for what SQL alone cannot see:
# the server log, pg_stat_activity from another session, SHOW ALL, pg_dump output, bind
# parameters, and a server that did not preload the library.
#   tests/integration.sh DIR PORT     (against the running test cluster)
set -uo pipefail
dir=$1 port=$2
here=$(cd "$(dirname "$0")" && pwd)
. "$(dirname "$0")/checks.sh"

# Its own database: a sealed customer, a class of its own beside the built-in ones.
db=akko_integration
psql_ -c "CREATE DATABASE $db" postgres
psql_ -c "CREATE EXTENSION akko_crypt" $db
keyed $db "CREATE TABLE customers (id int PRIMARY KEY, pii bytea);
    INSERT INTO customers VALUES (1, akko_crypt.seal_pii('{\"name\": \"Ada Lovelace\", \"email\": \"ada@example.com\"}'));
    SELECT akko_crypt.add_class('health');
    SELECT akko_crypt.seal_pii('{\"bp\": \"120/80\"}', 'health')" >/dev/null

# Every key the test suites load, in the spellings they use.
keys=(
    000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
    AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8
    3333333333333333333333333333333333333333333333333333333333333333
    9999999999999999999999999999999999999999999999999999999999999999
)
no_key_in() { # no_key_in FILE: none of the keys appears in FILE
    local k; for k in "${keys[@]}"; do if grep -qi -- "$k" "$1"; then echo "  key ${k:0:6}... found in $1"; return 1; fi; done
}

# A key sent as a bind parameter (extended protocol), as pools do.
cat >"$dir/bind.sql" <<'SQL'
SELECT set_config('akko_crypt.key', :key, false);
SELECT akko_crypt.open_pii(akko_crypt.seal_pii('{"via": "bind"}'));
SQL
bind_key() {
    pgbench -n -t 1 -M extended -h "$dir" -p "$port" -U postgres -f "$dir/bind.sql" \
        -D key=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f $db >/dev/null
}
check "a key sent as a bind parameter loads and seals" bind_key

# pg_stat_activity of another session: the idle session's last statement set the key.
printf "SET akko_crypt.key = '9999999999999999999999999999999999999999999999999999999999999999';\n\\\\! sleep 3\n" |
    psql -X -q -h "$dir" -p "$port" -U postgres $db >/dev/null &
sleeper=$!
sleep 1.5
psql_ -c "SELECT pid, state, query FROM pg_stat_activity WHERE backend_type = 'client backend'" $db >"$dir/activity.txt"
wait $sleeper
check "pg_stat_activity shows no key set by another session" no_key_in "$dir/activity.txt"
check "pg_stat_activity shows that the statement was redacted" grep -q "redacted" "$dir/activity.txt"

psql_ -c "SHOW ALL" $db >"$dir/show_all.txt"
check "SHOW ALL does not list akko_crypt.key" bash -c "! grep -q 'akko_crypt.key' '$dir/show_all.txt'"

pg_dump -h "$dir" -p "$port" -U postgres $db >"$dir/dump.sql"
check "pg_dump output holds the sealed customer, not its name" \
    bash -c "grep -q '^COPY public.customers' '$dir/dump.sql' && ! grep -q 'Lovelace' '$dir/dump.sql'"
check "pg_dump output holds no key" no_key_in "$dir/dump.sql"
copy_block() { # copy_block TABLE: the rows pg_dump wrote for TABLE
    awk -v t="COPY $1 " 'index($0, t) == 1 { on = 1; next } on && /^\\\.$/ { on = 0 } on' "$dir/dump.sql"
}
user_classes_only() {
    # grep reads to the end: grep -q would stop early, and awk's SIGPIPE fail the pipeline (pipefail)
    copy_block akko_crypt.data_class | grep '^health' >/dev/null && ! copy_block akko_crypt.data_class | grep -E '^identity\b' >/dev/null
}
check "pg_dump carries user-added classes, not the built-in ones" user_classes_only
keyring_dumped() { copy_block akko_crypt.keyring | grep '^identity' >/dev/null; }
check "pg_dump carries the wrapped keyring" keyring_dumped

# The dump restored into a new database opens with the root key, and with nothing else.
psql_ -c "CREATE DATABASE akko_restored" postgres
psql -X -q -h "$dir" -p "$port" -U postgres -f "$dir/dump.sql" akko_restored >/dev/null 2>"$dir/restore.err"
restored() { # restored KEY: opens the sealed customer in the restored database
    psql_ -c "SELECT set_config('akko_crypt.key', '$1', false) IS NULL" \
        -c "SELECT akko_crypt.open_pii(pii) ->> 'email' FROM customers WHERE id = 1" akko_restored 2>&1
}
check "a restored dump opens with the root key" \
    [ "$(restored 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f | tail -1)" = "ada@example.com" ]
other_root_refused() {
    [[ "$(restored 3333333333333333333333333333333333333333333333333333333333333333)" == *"is not the root that wrapped the keyring"* ]]
}
check "a restored dump does not open with another key" other_root_refused


# A reencrypt killed mid-way with pg_terminate_backend resumes where it stopped and ends
# with no value under the old version; while it runs, other sessions see its progress and
# cannot start a second run on the same column.
psql_ -c "CREATE DATABASE akko_reencrypt" postgres
psql_ -c "CREATE EXTENSION akko_crypt" akko_reencrypt
keyed akko_reencrypt "CREATE TABLE big (id int PRIMARY KEY, v bytea);
    INSERT INTO big SELECT i, akko_crypt.seal_pii(jsonb_build_object('id', i)) FROM generate_series(1, 100000) i;
    SELECT akko_crypt.rotate_key('identity')" >/dev/null
keyed akko_reencrypt "CALL akko_crypt.reencrypt('big', 'v', batch_size => 100)" >"$dir/reencrypt_killed.txt" 2>&1 &
runner=$!
progress=0
for _ in $(seq 100); do
    progress=$(psql_ -c "SELECT coalesce(sum(sealed), 0) FROM akko_crypt.batch_runs WHERE job = 'reencrypt' AND finished_at IS NULL" akko_reencrypt)
    [ "$progress" -gt 0 ] && break
    sleep 0.1
done
check "another session sees a running reencrypt's progress" [ "$progress" -gt 0 ]
keyed akko_reencrypt "CALL akko_crypt.reencrypt('big', 'v')" >"$dir/reencrypt_second.txt" 2>&1
check "a second reencrypt of the same column is refused while one runs" \
    grep -q 'akko_crypt.reencrypt is already running on public.big.v' "$dir/reencrypt_second.txt"
psql_ -c "SELECT pg_terminate_backend(pid) FROM akko_crypt.batch_runs WHERE finished_at IS NULL" akko_reencrypt >/dev/null
wait $runner
interrupted=$(psql_ -c "SELECT r.finished_at IS NULL AND r.sealed > 0, (SELECT count(*) > 0 FROM big WHERE get_byte(v, 9) = 1)
                        FROM akko_crypt.batch_runs r" akko_reencrypt)
check "the killed run stopped part-way, old values left" [ "$interrupted" = "t|t" ]
check "status() reports the killed run as interrupted" \
    [ "$(psql_ -c "SELECT akko_crypt.status() -> 'runs' -> 0 ->> 'state'" akko_reencrypt)" = interrupted ]
resumed=$(keyed akko_reencrypt "CALL akko_crypt.reencrypt('big', 'v', batch_size => 5000)" 2>"$dir/reencrypt_resumed.txt")
after=$(psql_ -c "SELECT (SELECT count(*) FROM big WHERE get_byte(v, 9) <> 2), sealed, resumed, finished_at IS NOT NULL
                  FROM akko_crypt.batch_runs" akko_reencrypt)
check "the resumed run finishes with no value under the old version, 100000 resealed in all" [ "$after" = "0|100000|1|t" ]
check "the resumed call returns the whole run's count" [ "$resumed" = 100000 ]
opened=$(keyed akko_reencrypt "SELECT count(*) FROM big WHERE (akko_crypt.open_pii(v) ->> 'id')::int = id")
check "every value opens to its row after the interrupted run" [ "$opened" = 100000 ]
check "the audit log shows the run started, resumed and finished" \
    [ "$(psql_ -c "SELECT string_agg(outcome, ',' ORDER BY id) FROM akko_crypt.audit_log WHERE operation = 'reencrypt'" akko_reencrypt)" = "started,resumed,finished" ]

# Two sessions seal and insert while a third rotates the key five times: no insert is lost,
# every value opens, and both sessions move to each new version without reconnecting.
psql_ -c "CREATE DATABASE akko_load" postgres
psql_ -c "CREATE EXTENSION akko_crypt" akko_load
keyed akko_load "CREATE TABLE load (id bigserial PRIMARY KEY, client int NOT NULL, v bytea NOT NULL);
    SELECT akko_crypt.seal_pii('{}')" >/dev/null
echo "INSERT INTO load (client, v) VALUES (:client_id, akko_crypt.seal_pii(jsonb_build_object('client', :client_id)));" >"$dir/load.sql"
PGOPTIONS="-c akko_crypt.key=$root" pgbench -n -c 2 -j 2 -T 5 -h "$dir" -p "$port" -U postgres \
    -f "$dir/load.sql" akko_load >"$dir/pgbench_load.txt" 2>&1 &
loader=$!
for _ in 1 2 3 4 5; do
    sleep 0.6
    keyed akko_load "SELECT akko_crypt.rotate_key('identity')" >/dev/null
done
wait $loader
loaded=$?
committed=$(awk -F': ' '/number of transactions actually processed/ { print $2 }' "$dir/pgbench_load.txt" | cut -d/ -f1)
check "pgbench ran without a failed transaction" [ "$loaded" -eq 0 ]
summary=$(keyed akko_load "SELECT count(*), count(*) FILTER (WHERE (akko_crypt.open_pii(v) ->> 'client')::int = client),
                               count(DISTINCT get_byte(v, 9)) FROM load")
check "every committed insert is there and opens ($committed rows)" [ "$summary" = "$committed|$committed|6" ]
last_versions=$(psql_ -c "SELECT string_agg(get_byte(v, 9)::text, ',') FROM (SELECT DISTINCT ON (client) v FROM load ORDER BY client, id DESC) s" akko_load)
check "both sealing sessions ended on the newest version" [ "$last_versions" = "6,6" ]

check "the server log holds no key (log_statement = all, debug1)" no_key_in "$dir/server.log"
check "the server log shows the redaction marker" grep -q "akko_crypt: redacted" "$dir/server.log"
check "the server log shows no backend crash" \
    bash -c "! grep -qE 'terminated by signal|PANIC|server process .* was terminated' '$dir/server.log'"

# A LATIN1 database seals UTF-8 plaintext and gets its own encoding back, and a value
# sealed there opens with the same text in a UTF-8 database. The client speaks UTF-8.
with_key() { # with_key DB SQL: runs SQL in DB with a key loaded, prints the last row
    PGCLIENTENCODING=UTF8 psql_ -c "SELECT set_config('akko_crypt.key', repeat('ab', 32), false) IS NULL" -c "$2" "$1" | tail -1
}
psql_ -c "CREATE DATABASE akko_latin1 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0" postgres
psql_ -c "CREATE EXTENSION akko_crypt" akko_latin1
name='Zoë Ångström'
sealed=$(with_key akko_latin1 "SELECT akko_crypt.seal_pii(jsonb_build_object('name', '$name'))")
opened_latin1=$(with_key akko_latin1 "SELECT akko_crypt.open_pii('$sealed'::bytea) ->> 'name'")
# Data keys belong to a database's keyring: the UTF-8 database gets a copy of it.
psql_ -c "CREATE DATABASE akko_utf8 ENCODING 'UTF8' TEMPLATE template0" postgres
psql_ -c "CREATE EXTENSION akko_crypt" akko_utf8
psql_ -c "COPY akko_crypt.keyring TO STDOUT" akko_latin1 | psql_ -c "COPY akko_crypt.keyring FROM STDIN" akko_utf8
opened_utf8=$(with_key akko_utf8 "SELECT akko_crypt.open_pii('$sealed'::bytea) ->> 'name'")
sealed_len=$(psql_ -c "SELECT length('$sealed'::bytea)" postgres)
check "a LATIN1 database round-trips non-ASCII text" [ "$opened_latin1" = "$name" ]
check "a value sealed in LATIN1 opens in a UTF-8 database with the same keyring" [ "$opened_utf8" = "$name" ]
check "the plaintext inside the envelope is UTF-8 (63 bytes of overhead)" \
    [ "$sealed_len" -eq $((63 + $(printf '{"name": "%s"}' "$name" | wc -c))) ]
# A protected column in the LATIN1 database: written through its view, the value is sealed
# as UTF-8 (the same envelope opens in the UTF-8 database) and reads back in LATIN1.
psql_ -c "CREATE TABLE people (id int PRIMARY KEY, name text)" -c "SELECT akko_crypt.protect('people', 'name')" \
    -c "SELECT akko_crypt.create_view('people')" akko_latin1 >/dev/null
with_key akko_latin1 "INSERT INTO people_decrypted VALUES (1, '$name')" >/dev/null
people_latin1=$(with_key akko_latin1 "SELECT name FROM people_decrypted")
people_sealed=$(psql_ -c "SELECT name FROM people" akko_latin1)
people_utf8=$(with_key akko_utf8 "SELECT akko_crypt.open_text('$people_sealed'::bytea)")
check "a LATIN1 database's protected column round-trips non-ASCII text through its view" [ "$people_latin1" = "$name" ]
check "that value was sealed as UTF-8: it opens in the UTF-8 database" [ "$people_utf8" = "$name" ]

# Protected tables (tests/sql/protect.sql covers the SQL side): COPY, and pg_dump/restore.
keyed $db "CREATE TABLE copied (id int PRIMARY KEY, ssn text, notes jsonb);
    SELECT akko_crypt.protect('copied', 'ssn', bind_row => true);
    SELECT akko_crypt.protect('copied', 'notes', mode => 'jsonb');
    SELECT akko_crypt.create_view('copied')" >/dev/null
printf '1\tcopy-ssn-1\t{"n": 1}\n2\tcopy-ssn-2\t\\N\n' >"$dir/copy.tsv"
psql_ -c "SELECT set_config('akko_crypt.key', '$root', false) IS NULL" -c "\\copy copied FROM '$dir/copy.tsv'" \
    $db >/dev/null 2>"$dir/copy.err"
copy_sealed=$(psql_ -c "SELECT count(*) FILTER (WHERE substr(ssn, 1, 4) = '\\xac4b4345'), count(*) FILTER (WHERE notes ? '\$akko') FROM copied" $db)
copy_opened=$(keyed $db "SELECT string_agg(ssn || ':' || coalesce(notes ->> 'n', '-'), ',' ORDER BY id) FROM copied_decrypted" | tail -1)
check "COPY into a protected table seals every value ($copy_sealed)" [ "$copy_sealed" = "2|1" ]
check "COPY'd values open through the view" [ "$copy_opened" = "copy-ssn-1:1,copy-ssn-2:-" ]
pg_dump -h "$dir" -p "$port" -U postgres $db >"$dir/dump2.sql"
check "pg_dump of a protected table holds no plaintext" bash -c "! grep -q 'copy-ssn-' '$dir/dump2.sql'"
psql_ -c "CREATE DATABASE akko_restored2" postgres
psql -X -q -h "$dir" -p "$port" -U postgres -f "$dir/dump2.sql" akko_restored2 >/dev/null 2>"$dir/restore2.err"
restored_view=$(keyed akko_restored2 "SELECT string_agg(ssn, ',' ORDER BY id) FROM copied_decrypted" | tail -1)
check "the restored view opens the row-bound values" [ "$restored_view" = "copy-ssn-1,copy-ssn-2" ]
restored_write=$(keyed akko_restored2 "INSERT INTO copied_decrypted VALUES (3, 'after-restore', '{\"n\": 3}');
    SELECT substr(ssn, 1, 4) = '\\xac4b4345' AND notes ? '\$akko' FROM copied WHERE id = 3" | tail -1)
check "the restored trigger and rules seal new rows" [ "$restored_write" = "t" ]
check "the restore ran without errors" bash -c "! grep -v 'already exists' '$dir/restore2.err' | grep -q ERROR"

# Without shared_preload_libraries the extension refuses to load.
other="$dir-nopreload"
"$here/cluster.sh" start "$other" $((port + 1)) ""
psql -X -q -h "$other" -p $((port + 1)) -U postgres -c "CREATE EXTENSION akko_crypt" postgres >"$other/out.txt" 2>&1
check "CREATE EXTENSION without shared_preload_libraries is refused" \
    grep -q "akko_crypt must be loaded through shared_preload_libraries" "$other/out.txt"
"$here/cluster.sh" stop "$other"

echo "integration: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
