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
