#!/usr/bin/env bash
# make bench: seal/open against their no-crypto baselines and against pgcrypto, side by side
# in one session on one throwaway cluster; writes the medians and ratios to docs/benchmarks.md.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dir=${AKKO_BENCH_DIR:-/tmp/akko_crypt_bench}
port=${AKKO_BENCH_PORT:-55460}
rounds=${AKKO_BENCH_ROUNDS:-7}
out="$here/../docs/benchmarks.md"

# One random root key for every session of the run, handed over at connection start: it
# is on no command line and in no statement.
PGOPTIONS="-c akko_crypt.key=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export PGOPTIONS

"$here/../tests/cluster.sh" start "$dir" "$port"
trap '"$here/../tests/cluster.sh" stop "$dir"' EXIT
psql -X -q -h "$dir" -p "$port" -U postgres -c "ALTER SYSTEM SET log_statement = 'none'" \
    -c "ALTER SYSTEM SET log_min_messages = 'warning'" -c "SELECT pg_reload_conf()" -c "CREATE EXTENSION akko_crypt" postgres >/dev/null
results=$(psql -X -q -h "$dir" -p "$port" -U postgres -v rounds="$rounds" -f "$here/bench.sql" postgres)
echo "$results"

q() { psql -X -q -A -t -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U postgres postgres "$@"; }
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# reencrypt against the offline way to move values to a new key: one UPDATE rewriting every
# value in one transaction, which locks every row until it commits. Each round rotates and
# vacuums first, so every value is stale and the table carries no dead rows.
time_after_rotation() { # time_after_rotation SQL: prints the milliseconds SQL took
    q -c "SELECT akko_crypt.rotate_key('identity')" -c "VACUUM bench" >/dev/null
    q 2>/dev/null <<SQL | tail -1
SELECT clock_timestamp() AS t0 \gset
$1
SELECT round(extract(epoch FROM clock_timestamp() - :'t0') * 1000, 1);
SQL
}
reencrypt_rounds=${AKKO_BENCH_REENCRYPT_ROUNDS:-3}
reencrypt_ms=() update_ms=()
for _ in $(seq "$reencrypt_rounds"); do
    reencrypt_ms+=("$(time_after_rotation "CALL akko_crypt.reencrypt('bench', 'sealed', batch_size => 1000);")")
    update_ms+=("$(time_after_rotation "UPDATE bench SET sealed = akko_crypt.seal_pii(akko_crypt.open_pii(sealed));")")
done
reencrypt_median=$(printf '%s\n' "${reencrypt_ms[@]}" | median)
update_median=$(printf '%s\n' "${update_ms[@]}" | median)
per_second() { awk -v ms="$1" 'BEGIN { printf "%d", 100000 / (ms / 1000) }'; }

# Table integration (bench/tables.sql): bulk writes through the decrypting view against the
# unprotected table and the pgcrypto trigger recipe, reads through the view, then pgbench
# with 8 clients for single-row inserts and point lookups, then a 1M-row migration.
q -f "$here/tables.sql" >/dev/null
for _ in $(seq "$rounds"); do q -f "$here/tables_round.sql" >/dev/null; done
table_ms() { q -c "SELECT round(percentile_disc(0.5) WITHIN GROUP (ORDER BY ms), 1) FROM bench_timings WHERE name = '$1'"; }
table_ratio() { awk -v a="$(table_ms "$1")" -v b="$(table_ms "$2")" 'BEGIN { printf "%.2f", a / b }'; }
q -c "TRUNCATE plain_customers, sealed_customers" -c "INSERT INTO plain_customers SELECT * FROM src" \
  -c "INSERT INTO sealed_customers_decrypted SELECT * FROM src" -c "VACUUM ANALYZE plain_customers, sealed_customers" \
  -c "CREATE TABLE ins_plain (id serial PRIMARY KEY, name text, tax_id text, dob date, email text)" \
  -c "CREATE TABLE ins_sealed (id serial PRIMARY KEY, name text, tax_id text, dob date, email text)" \
  -c "SELECT akko_crypt.protect('ins_sealed', c) FROM unnest(ARRAY['tax_id', 'dob', 'email']) AS c" \
  -c "SELECT akko_crypt.create_view('ins_sealed')" \
  -c "CREATE TABLE ins_text (id serial PRIMARY KEY, name text, tax_id text, dob date, email text)" \
  -c "SELECT akko_crypt.protect('ins_text', c, mode => 'text') FROM unnest(ARRAY['tax_id', 'dob', 'email']) AS c" \
  -c "CREATE TABLE ups_plain (id int PRIMARY KEY, name text, tax_id text, dob date, email text)" \
  -c "CREATE TABLE ups_text (LIKE ups_plain INCLUDING ALL)" \
  -c "SELECT akko_crypt.protect('ups_text', c, mode => 'text') FROM unnest(ARRAY['tax_id', 'dob', 'email']) AS c" \
  -c "CREATE TABLE ins_routed (id serial PRIMARY KEY, name text, tax_id text, dob date, email text)" \
  -c "CREATE VIEW ins_routed_view AS SELECT * FROM ins_routed" \
  -c "ALTER VIEW ins_routed_view ALTER COLUMN id SET DEFAULT nextval('ins_routed_id_seq')" \
  -c "CREATE RULE insert_routed AS ON INSERT TO ins_routed_view DO INSTEAD INSERT INTO ins_routed VALUES (NEW.*)" >/dev/null
printf '\\set n random(1, 100000)\nINSERT INTO %s (name, tax_id, dob, email) VALUES (%s, lpad(:n::text, 9, %s), date %s + :n %% 20000, %s || :n || %s);\n' \
    ins_plain "'Customer'" "'0'" "'1950-01-01'" "'user'" "'@example.com'" >"$dir/ins_plain.sql"
sed 's/ins_plain/ins_sealed_decrypted/' "$dir/ins_plain.sql" >"$dir/ins_sealed.sql"
sed 's/ins_plain/ins_routed_view/' "$dir/ins_plain.sql" >"$dir/ins_routed.sql"
sed 's/ins_plain/ins_text/' "$dir/ins_plain.sql" >"$dir/ins_text.sql"
# An upsert by key on 100,000 ids: an insert at first, more and more updates as the run goes.
printf '\\set n random(1, 100000)\nINSERT INTO %s VALUES (:n, %s, lpad(:n::text, 9, %s), date %s + :n %% 20000, %s || :n || %s) ON CONFLICT (id) DO UPDATE SET tax_id = EXCLUDED.tax_id, email = EXCLUDED.email;\n' \
    ups_plain "'Customer'" "'0'" "'1950-01-01'" "'user'" "'@example.com'" >"$dir/ups_plain.sql"
sed 's/ups_plain/ups_text/' "$dir/ups_plain.sql" >"$dir/ups_text.sql"
printf '\\set n random(1, 100000)\nSELECT id FROM plain_customers WHERE email = %s || :n || %s;\n' "'user'" "'@example.com'" >"$dir/lookup_plain.sql"
printf '\\set n random(1, 100000)\nSELECT id FROM sealed_customers WHERE email_bidx = akko_crypt.blind_index(%s || :n || %s, %s, %s);\n' \
    "'user'" "'@example.com'" "'sealed_customers'" "'email'" >"$dir/lookup_bidx.sql"
pgbench_seconds=${AKKO_BENCH_PGBENCH_SECONDS:-8}
tps() { # tps SCRIPT [QUERY MODE]
    pgbench -n -c 8 -j 2 -T "$pgbench_seconds" -M "${2:-simple}" -f "$dir/$1.sql" -h "$dir" -p "$port" -U postgres postgres 2>&1 |
    awk '/^tps/ { printf "%d", $3 }'; }
declare -A tps_runs
for _ in 1 2 3; do
    for script in ins_plain ins_routed ins_sealed ins_text ups_plain ups_text lookup_plain lookup_bidx; do
        tps_runs[$script]+="$(tps "$script") "
    done
    for script in ins_plain ins_text ups_plain ups_text; do tps_runs[${script}_prepared]+="$(tps "$script" prepared) "; done
done
tps_median() { printf '%s\n' ${tps_runs[$1]} | median; }
tps_loss() { awk -v a="$(tps_median "$1")" -v b="$(tps_median "$2")" 'BEGIN { printf "%.1f", (1 - a / b) * 100 }'; }
# What a BI tool sees: every row of a SELECT received by a client (libpq, one connection).
echo 'SELECT * FROM plain_customers;' >"$dir/select_plain.sql"
echo 'SELECT * FROM sealed_customers_decrypted;' >"$dir/select_view.sql"
select_ms() { pgbench -n -c 1 -t 10 -f "$dir/$1.sql" -h "$dir" -p "$port" -U postgres postgres 2>&1 |
    awk '/latency average/ { print $4 }'; }
select_plain_ms=$(select_ms select_plain) select_view_ms=$(select_ms select_view)
# The cryptography alone, per value, outside PostgreSQL: the floor under the rows above.
value_costs=$(cd "$here/.." && cargo run --release -q -p akko_crypt_core --example value_cost)
value_ns() { awk -F'|' -v n="$1" '$1 == n { print $2 }' <<<"$value_costs"; }
# floor BASE_MS NANOSECONDS_PER_ROW PLAIN_MS: (BASE + 100,000 rows of crypto) / PLAIN
floor() { awk -v base="$1" -v ns="$2" -v plain="$3" 'BEGIN { printf "%.2f", (base + ns * 100000 / 1e6) / plain }'; }
# over_floor BASE_MS NANOSECONDS_PER_ROW MEASURED_MS: how far MEASURED is above its floor
over_floor() { awk -v base="$1" -v ns="$2" -v m="$3" 'BEGIN { printf "%.2f", m / (base + ns * 100000 / 1e6) }'; }
insert_crypto_ns=$(( 3 * $(value_ns seal) + $(value_ns blind_index) ))
read_crypto_ns=$(( 3 * $(value_ns open) ))
migration_rows=${AKKO_BENCH_MIGRATION_ROWS:-1000000}
q -c "CREATE TABLE migrating (id int PRIMARY KEY, ssn text NOT NULL, note text)" \
  -c "INSERT INTO migrating SELECT g, lpad(g::text, 9, '0'), 'row ' || g FROM generate_series(1, $migration_rows) g" \
  -c "VACUUM ANALYZE migrating" -c "SELECT akko_crypt.protect('migrating', 'ssn', migrate => false)" >/dev/null
migration_ms=$(q <<'SQL' | tail -1
SELECT clock_timestamp() AS t0 \gset
CALL akko_crypt.migrate('migrating', 10000);
SELECT round(extract(epoch FROM clock_timestamp() - :'t0') * 1000);
SQL
)
migrated_check=$(q -c "SELECT count(*) FILTER (WHERE substr(ssn, 1, 4) = '\\xac4b4345') FROM migrating")

# The keyring's cost on a session's first seals: the first seal in a new session, the first
# seal of a second class in that session (a keyring read and one unwrap), later seals.
# Every statement pays the same client round trip, timed by psql.
q -c "SELECT akko_crypt.seal_pii('{}', 'financial')" >/dev/null
sessions=${AKKO_BENCH_SESSIONS:-15}
for _ in $(seq "$sessions"); do
    q <<'SQL' | awk '/^Time:/ { n++; print n, $2 }'
SELECT 1;
\timing on
SELECT length(akko_crypt.seal_pii('{"name": "Ada"}'));
SELECT length(akko_crypt.seal_pii('{"iban": "GB00"}', 'financial'));
SELECT length(akko_crypt.seal_pii('{"name": "Ada"}'));
SELECT length(akko_crypt.seal_pii('{"name": "Ada"}'));
SELECT length(akko_crypt.seal_pii('{"name": "Ada"}'));
SELECT length(akko_crypt.seal_pii('{"name": "Ada"}'));
SQL
done >"$dir/first_seals.txt"
first_seal=$(awk '$1 == 1 { print $2 }' "$dir/first_seals.txt" | median)
second_class_seal=$(awk '$1 == 2 { print $2 }' "$dir/first_seals.txt" | median)
later_seal=$(awk '$1 > 2 { print $2 }' "$dir/first_seals.txt" | median)

# Unlock latency at connection checkout against OpenBao on loopback: pgbench opens a new
# connection for every transaction (-C) and logs each statement's latency, which excludes
# the connection itself; pgbench reports the average connection time apart.
bao=${AKKO_BAO:-$here/../.venv/bin/bao}
vport=$((port + 20))
export BAO_ADDR="http://127.0.0.1:$vport" BAO_TOKEN=akko-bench-root
. "$here/../tests/bao.sh"
bao_start "$dir/bao.log"
trap 'kill $bao_pid 2>/dev/null; "$here/../tests/cluster.sh" stop "$dir"' EXIT
"$bao" kv put secret/akko_crypt root_key="$(head -c 32 /dev/urandom | base64)" >/dev/null
printf 'path "secret/data/akko_crypt" { capabilities = ["read"] }\npath "transit/*" { capabilities = ["update"] }\n' |
    "$bao" policy write akko_bench - >/dev/null
bao_token_file "$dir/vault.token" akko_bench
for mode in kv transit; do
    q -c "CREATE DATABASE akko_$mode" -c "ALTER DATABASE akko_$mode SET akko_crypt.vault_addr = '$BAO_ADDR'" \
      -c "ALTER DATABASE akko_$mode SET akko_crypt.vault_token_file = '$dir/vault.token'" >/dev/null
    q -d "akko_$mode" -c "CREATE EXTENSION akko_crypt" >/dev/null
done
q -c "ALTER DATABASE akko_kv SET akko_crypt.vault_kv_path = 'secret/data/akko_crypt'" \
  -c "ALTER DATABASE akko_transit SET akko_crypt.vault_transit_key = 'akko_root'" >/dev/null
env -u PGOPTIONS psql -X -q -A -t -h "$dir" -p "$port" -U postgres -c "SELECT akko_crypt.vault_init_transit()" akko_transit >/dev/null
connections=${AKKO_BENCH_CONNECTIONS:-300}
printf 'SELECT akko_crypt.unlock();\n' >"$dir/unlock.sql"
printf 'SELECT 1;\n' >"$dir/plain.sql"
checkout() { # checkout NAME SCRIPT DATABASE: median and p99 statement latency (ms), connection time
    local summary
    summary=$(cd "$dir" && env -u PGOPTIONS pgbench -n -C -c 1 -t "$connections" -f "$2" -l --log-prefix="$1" \
        -h "$dir" -p "$port" -U postgres "$3" 2>&1)
    sort -n -k3 "$dir/$1".* | awk -v conn="$(awk '/average connection time/ { print $5 }' <<<"$summary")" \
        '{ v[NR] = $3 } END { printf "%.2f|%.2f|%.2f", v[int((NR + 1) / 2)] / 1000, v[int(NR * 0.99)] / 1000, conn }'
}
plain_checkout=$(checkout plain plain.sql akko_kv)
kv_checkout=$(checkout kv unlock.sql akko_kv)
transit_checkout=$(checkout transit unlock.sql akko_transit)
field() { cut -d'|' -f"$2" <<<"$1"; }

# Instructions per row (bench/instructions.sh): single-user backends on the cluster stopped
# for them, started again for the queries below.
"$here/../tests/cluster.sh" stop "$dir"
instructions=$("$here/instructions.sh" "$dir/data" "${PGOPTIONS#-c akko_crypt.key=}")
sudo -u postgres env -u RUST_BACKTRACE /usr/lib/postgresql/15/bin/pg_ctl -D "$dir/data" -l "$dir/server.log" -w start >/dev/null
other() { awk -F'|' -v n="$1" '$1 == n { print $2 }' <<<"$instructions"; }
in_crypto() { awk -F'|' -v n="$1" '$1 == n { print $3 }' <<<"$instructions"; }
added() { echo $(( $(other "$1") - $(other "$2") )); }
times() { awk -v a="$(other "$1")" -v b="$(other "$2")" 'BEGIN { printf "%.2f", a / b }'; }

ms() { echo "$results" | awk -F'|' -v n="$1" '$1 == n { print $2 }'; }
workers() { echo "$results" | awk -F'|' -v n="$1" '$1 == n { print ($3 == 0 ? "serial" : $3 " workers + leader") }'; }
ratio() { echo "$results" | awk -F'|' -v n="$1" '$1 == "ratio" && $2 == n { print $3 }'; }
cpu=$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)

cat >"$out" <<MD
# Benchmarks

Written by \`make bench\` (bench/bench.sh, bench/bench.sql) on $(date -u +%Y-%m-%d): PostgreSQL
$(psql -X -A -t -h "$dir" -p "$port" -U postgres -c "SHOW server_version" postgres), $(nproc) cores ($cpu),
$(free -g | awk '/Mem:/ { print $2 }') GiB. 100,000 rows of customer JSON averaging $(ms avg_json_bytes) bytes; each query
ran $rounds times, interleaved round by round in one session, and the table shows medians. The machine
is shared and noisy: compare the ratios within this run, not absolute times across runs.

Each query ran twice per round: in the plan PostgreSQL picks by default, and in a serial plan
(\`max_parallel_workers_per_gather = 0\`). The targets hold for the default plans, which is
what users get; the serial plans compare the cost per row without parallelism. \`seal_pii\`
and \`open_pii\` are \`PARALLEL SAFE\`: each parallel worker receives the key its leader
holds, sealed for it (see the README, "Parallel queries"), and are declared \`COST 100\`; pgcrypto's
functions keep the default cost of 1, which can leave them in a serial plan by default.

| query | default plan | median ms | serial plan, median ms |
|---|---|---:|---:|
| \`count(pii::text::bytea)\` (baseline for seal) | $(workers baseline_text_to_bytea) | $(ms baseline_text_to_bytea) | $(ms baseline_text_to_bytea_serial) |
| \`count(akko_crypt.seal_pii(pii))\` | $(workers akko_seal_pii) | $(ms akko_seal_pii) | $(ms akko_seal_pii_serial) |
| \`count(pgp_sym_encrypt(pii::text, k, 's2k-mode=1, cipher-algo=aes256'))\` | $(workers pgcrypto_encrypt) | $(ms pgcrypto_encrypt) | $(ms pgcrypto_encrypt_serial) |
| \`count(convert_from(plain, 'UTF8')::jsonb)\` (baseline for open) | $(workers baseline_bytea_to_jsonb) | $(ms baseline_bytea_to_jsonb) | $(ms baseline_bytea_to_jsonb_serial) |
| \`count(akko_crypt.open_pii(sealed))\` | $(workers akko_open_pii) | $(ms akko_open_pii) | $(ms akko_open_pii_serial) |
| \`count(pgp_sym_decrypt(pgp, k))\` | $(workers pgcrypto_decrypt) | $(ms pgcrypto_decrypt) | $(ms pgcrypto_decrypt_serial) |

| ratio | default plans | serial plans | target |
|---|---:|---:|---|
| seal_pii / baseline | $(ratio seal_vs_baseline) | $(ratio seal_vs_baseline_serial) | at most 1.35 |
| open_pii / baseline | $(ratio open_vs_baseline) | $(ratio open_vs_baseline_serial) | at most 1.35 |
| pgcrypto encrypt / seal_pii | $(ratio pgcrypto_encrypt_vs_seal) | $(ratio pgcrypto_encrypt_vs_seal_serial) | at least 3 |
| pgcrypto decrypt / open_pii | $(ratio pgcrypto_decrypt_vs_open) | $(ratio pgcrypto_decrypt_vs_open_serial) | at least 3 |

## Keyring

Re-encryption after \`rotate_key\`, every value of the same 100,000 rows stale, medians of
$reencrypt_rounds rounds (a rotation and a VACUUM before each):

| how | median ms | values per second |
|---|---:|---:|
| \`CALL akko_crypt.reencrypt('bench', 'sealed', batch_size => 1000)\`: online, a commit per batch | $reencrypt_median | $(per_second "$reencrypt_median") |
| \`UPDATE bench SET sealed = seal_pii(open_pii(sealed))\`: one transaction locking every row | $update_median | $(per_second "$update_median") |

reencrypt / UPDATE: $(awk -v a="$reencrypt_median" -v b="$update_median" 'BEGIN { printf "%.2f", a / b }'). reencrypt walks the table twice (the
second pass confirms that nothing is left) and commits every batch; the UPDATE is not
resumable and holds its row locks to the end.

The first seals of a session, medians over $sessions new sessions, each statement timed by psql
(client round trip included):

| statement | median ms |
|---|---:|
| first seal in a new session (keyring read, unwrap, first-call catalog lookups) | $first_seal |
| first seal of a second class in the same session (keyring read and unwrap) | $second_class_seal |
| later seals | $later_seal |

## Protected tables

A table of customers with three protected columns (\`tax_id\` text, \`dob\` date, \`email\` text
with a blind index), written through its decrypting view as applications write plaintext,
against the same table unprotected (a btree on \`email\`) and against the PL/pgSQL trigger
around pgcrypto that users copy (\`pgp_sym_encrypt\` with \`s2k-mode=1\`). 100,000 rows,
medians of $rounds rounds:

| statement | median ms |
|---|---:|
| \`INSERT INTO plain_customers SELECT * FROM src\` | $(table_ms insert_plain) |
| \`INSERT INTO sealed_customers_decrypted SELECT * FROM src\` (view rule, Rust trigger seals 3 columns) | $(table_ms insert_protected) |
| the same rows through a row-level INSTEAD OF trigger (PL/pgSQL) instead of the view's rule | $(table_ms insert_instead_of_trigger) |
| the protected table's rows, already sealed, into a copy of it with no trigger (storage alone) | $(table_ms insert_ciphertext_only) |
| \`INSERT INTO text_customers SELECT * FROM src\` (the same columns in text mode, straight into the table) | $(table_ms insert_text_mode) |
| the same insert into a table with the PL/pgSQL + pgcrypto trigger | $(table_ms insert_pgcrypto_trigger) |
| \`COPY (SELECT * FROM plain_customers) TO '/dev/null'\` | $(table_ms read_plain) |
| \`COPY (SELECT * FROM sealed_customers_decrypted) TO '/dev/null'\` (opens 3 columns a row) | $(table_ms read_view) |
| the same two reads on one core (\`max_parallel_workers_per_gather = 0\`): plain | $(table_ms read_plain_serial) |
| view | $(table_ms read_view_serial) |
| \`SELECT * FROM plain_customers\`, every row received by a libpq client (pgbench, average of 10) | $select_plain_ms |
| \`SELECT * FROM sealed_customers_decrypted\`, the same | $select_view_ms |
| \`INSERT INTO plain_customers SELECT * FROM src ON CONFLICT (id) DO UPDATE SET tax_id = EXCLUDED.tax_id, email = EXCLUDED.email\` (every row updated) | $(table_ms upsert_plain) |
| the same upsert into \`text_customers\` (text mode: the INSERT seals 3 columns, the UPDATE takes 2 of its envelopes) | $(table_ms upsert_text_mode) |

pgbench, 8 clients, $pgbench_seconds s a run, medians of 3 runs (transactions per second):

| workload | plain table | protected | difference |
|---|---:|---:|---:|
| single-row INSERT (through the view for the protected table) | $(tps_median ins_plain) | $(tps_median ins_sealed) | $(tps_loss ins_sealed ins_plain)% fewer |
| single-row INSERT through a pass-through view with a DO INSTEAD rule, no protection | $(tps_median ins_plain) | $(tps_median ins_routed) | $(tps_loss ins_routed ins_plain)% fewer |
| single-row INSERT straight into a text-mode table | $(tps_median ins_plain) | $(tps_median ins_text) | $(tps_loss ins_text ins_plain)% fewer |
| the same two, \`-M prepared\` | $(tps_median ins_plain_prepared) | $(tps_median ins_text_prepared) | $(tps_loss ins_text_prepared ins_plain_prepared)% fewer |
| single-row upsert by key (\`ON CONFLICT (id) DO UPDATE\`), text mode | $(tps_median ups_plain) | $(tps_median ups_text) | $(tps_loss ups_text ups_plain)% fewer |
| the same, \`-M prepared\` | $(tps_median ups_plain_prepared) | $(tps_median ups_text_prepared) | $(tps_loss ups_text_prepared ups_plain_prepared)% fewer |
| point lookup by email: btree on plaintext / blind index | $(tps_median lookup_plain) | $(tps_median lookup_bidx) | $(tps_loss lookup_bidx lookup_plain)% fewer |

| ratio | measured | target |
|---|---:|---|
| bulk insert, protected / plain | $(table_ratio insert_protected insert_plain) | |
| bulk insert, storage alone / plain (the floor the envelope sets) | $(table_ratio insert_ciphertext_only insert_plain) | |
| bulk insert, text mode straight into the table / plain | $(table_ratio insert_text_mode insert_plain) | |
| bulk upsert, text mode / plain | $(table_ratio upsert_text_mode upsert_plain) | |
| bulk insert, INSTEAD OF trigger / view rule | $(table_ratio insert_instead_of_trigger insert_protected) | |
| bulk insert, pgcrypto trigger / protected | $(table_ratio insert_pgcrypto_trigger insert_protected) | |
| read through the view / plain table (COPY, server only) | $(table_ratio read_view read_plain) | |
| the same on one core | $(table_ratio read_view_serial read_plain_serial) | |
| SELECT received by a client, view / plain table | $(awk -v a="$select_view_ms" -v b="$select_plain_ms" 'BEGIN { printf "%.2f", a / b }') | |
| bulk insert floor: (storage alone + 3 seals and a blind index a row) / plain | $(floor "$(table_ms insert_ciphertext_only)" "$insert_crypto_ns" "$(table_ms insert_plain)") | |
| read floor on one core: (plain + 3 opens a row) / plain | $(floor "$(table_ms read_plain_serial)" "$read_crypto_ns" "$(table_ms read_plain_serial)") | |
| bulk insert through the view / its floor | $(over_floor "$(table_ms insert_ciphertext_only)" "$insert_crypto_ns" "$(table_ms insert_protected)") | at most 1.15 |
| read through the view on one core / its floor | $(over_floor "$(table_ms read_plain_serial)" "$read_crypto_ns" "$(table_ms read_view_serial)") | at most 1.25 |
| single-row insert throughput lost, text mode, \`-M simple\` | $(tps_loss ins_text ins_plain)% | under 10% |
| the same, \`-M prepared\` | $(tps_loss ins_text_prepared ins_plain_prepared)% | under 5% |
| single-row insert throughput lost through the view | $(tps_loss ins_sealed ins_plain)% | |
| the same, through the pass-through rule view alone | $(tps_loss ins_routed ins_plain)% | |
| blind-index lookup time / btree lookup time | $(awk -v a="$(tps_median lookup_plain)" -v b="$(tps_median lookup_bidx)" 'BEGIN { printf "%.2f", a / b }') | at most 1.2 |

How to read these rows. The storage-alone row inserts the protected table's own rows, already
sealed, into a copy of the table without the trigger: what the envelope (47 bytes a value for
the class \`identity\`), the blind-index column and its btree cost whatever the trigger does.
The floors add to it (or to the plain read) what the cryptography alone costs per row, measured
outside PostgreSQL by \`core/examples/value_cost.rs\` (AES-256-GCM from the \`aes-gcm\` crate,
HMAC-SHA256 from \`hmac\`) for the benchmark's 11-byte tax id; no trigger or view can go below
them. The pass-through rule view is a plain table behind a view with a \`DO INSTEAD\` rule and no
protection: the part of the single-row loss that PostgreSQL's rewrite of a view alone costs. The
planner gives the view's scan parallel workers, since opening is costed, and never the plain
table's; the one-core rows compare the per-row cost alone, and the client rows add what a BI
tool adds: receiving every row over a connection. The text-mode rows write the same three
columns straight into the table, as an application or ORM does (no view, no rule): the
single-row and upsert workloads there are what an application sees; an upsert seals each
value in its INSERT and takes the envelope in its UPDATE (\`SET col = EXCLUDED.col\`) without
asking the right to open, then opens it again to check it and set its blind index.

| per value, outside PostgreSQL | ns |
|---|---:|
| seal (nonce, AES-256-GCM, envelope) | $(value_ns seal) |
| open (parse, AES-256-GCM) | $(value_ns open) |
| blind index (normalise, HMAC-SHA256) | $(value_ns blind_index) |

Migrating a populated column: \`CALL akko_crypt.migrate('migrating', 10000)\` on $migration_rows rows
(\`ssn\` text, protected with \`migrate => false\`): $migration_ms ms, $(awk -v ms="$migration_ms" -v n="$migration_rows" 'BEGIN { printf "%d", n / (ms / 1000) }') rows per second,
$migrated_check values sealed; a commit per batch of about 10,000 rows, each batch holding its rows' locks only,
then a brief ACCESS EXCLUSIVE lock to drop the emptied plaintext column and a scan for SET NOT NULL.

## Instructions per row

Wall-clock times on this machine move by a third from run to run; instruction counts do not.
\`bench/instructions.sh\` runs each statement below in a single-user backend on the stopped
benchmark cluster under callgrind, for 1 row and for 10,001, and divides the difference by
10,000. Under valgrind the crypto crates take their portable code paths (no AES-NI, no SHA
extensions), so what they execute is counted apart; the other column is what PostgreSQL, the
trigger and the view do around the cryptography, the part this project's code decides.

| statement | outside the cryptography | in the cryptography (portable code) |
|---|---:|---:|
| \`INSERT INTO plain_customers SELECT * FROM src\` | $(other insert_plain) | $(in_crypto insert_plain) |
| the protected table's rows, already sealed, into a copy with no trigger (storage alone) | $(other insert_ciphertext_only) | $(in_crypto insert_ciphertext_only) |
| \`INSERT INTO sealed_customers_decrypted SELECT * FROM src\` (view rule, trigger) | $(other insert_protected) | $(in_crypto insert_protected) |
| \`INSERT INTO text_customers SELECT * FROM src\` (text mode) | $(other insert_text_mode) | $(in_crypto insert_text_mode) |
| \`COPY (SELECT * FROM plain_customers) TO '/dev/null'\`, one core | $(other read_plain) | $(in_crypto read_plain) |
| the same through the decrypting view | $(other read_view) | $(in_crypto read_view) |

Around the cryptography, the view's rule and the trigger add $(added insert_protected insert_ciphertext_only) instructions a row to
the storage-alone insert ($(times insert_protected insert_ciphertext_only)x), text mode $(added insert_text_mode insert_ciphertext_only) ($(times insert_text_mode insert_ciphertext_only)x); opening three columns
through the view adds $(added read_view read_plain) to the plain read ($(times read_view read_plain)x).

## Unlock from Vault at connection checkout

\`SELECT akko_crypt.unlock()\` as the first statement of $connections new connections each, against
OpenBao $("$bao" version | awk '{ print $2; exit }') (\`bao server -dev\`) on loopback, next to \`SELECT 1\` on the same kind of
connection. Timed by pgbench (\`-C\`, one connection per transaction); a statement's time
excludes opening the connection, which pgbench reports apart.

| first statement of a new connection | median ms | p99 ms |
|---|---:|---:|
| \`SELECT 1\` | $(field "$plain_checkout" 1) | $(field "$plain_checkout" 2) |
| \`unlock()\`, KV v2 (one read of the secret) | $(field "$kv_checkout" 1) | $(field "$kv_checkout" 2) |
| \`unlock()\`, Transit (one decrypt of the wrapped root) | $(field "$transit_checkout" 1) | $(field "$transit_checkout" 2) |

Opening the connection itself took $(field "$plain_checkout" 3) ms on average. Target: unlock median at most 5 ms.
Each unlock also checks the root against the keyring and appends to the audit log.
MD
echo "wrote $out"
