#!/usr/bin/env bash
# make bench: seal/open against their no-crypto baselines and against pgcrypto, side by side
# in one session on one throwaway cluster; writes the medians and ratios to docs/benchmarks.md.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dir=${AKKO_BENCH_DIR:-/tmp/akko_crypt_bench}
port=${AKKO_BENCH_PORT:-55460}
rounds=${AKKO_BENCH_ROUNDS:-7}
out="$here/../docs/benchmarks.md"

"$here/../tests/cluster.sh" start "$dir" "$port"
trap '"$here/../tests/cluster.sh" stop "$dir"' EXIT
psql -X -q -h "$dir" -p "$port" -U postgres -c "ALTER SYSTEM SET log_statement = 'none'" \
    -c "ALTER SYSTEM SET log_min_messages = 'warning'" -c "SELECT pg_reload_conf()" -c "CREATE EXTENSION akko_crypt" postgres >/dev/null
results=$(psql -X -q -h "$dir" -p "$port" -U postgres -v rounds="$rounds" -f "$here/bench.sql" postgres)
echo "$results"

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

Every query runs in a serial plan (\`max_parallel_workers_per_gather = 0\`) except the last two
rows, the baselines again in their default plans. \`seal_pii\` and \`open_pii\` are
\`PARALLEL RESTRICTED\`: the key lives only in the backend that loaded it, so the planner keeps
them in the leader, while the baselines and pgcrypto spread over parallel workers. A serial
query against a parallel one measures the parallelism, not the cost of encryption, so the
targets compare like with like; the last two ratios show what a query gives up by not
parallelising.

| query | plan | median ms |
|---|---|---:|
| \`count(pii::text::bytea)\` (baseline for seal) | $(workers baseline_text_to_bytea) | $(ms baseline_text_to_bytea) |
| \`count(akko_crypt.seal_pii(pii))\` | $(workers akko_seal_pii) | $(ms akko_seal_pii) |
| \`count(pgp_sym_encrypt(pii::text, k, 's2k-mode=1, cipher-algo=aes256'))\` | $(workers pgcrypto_encrypt) | $(ms pgcrypto_encrypt) |
| \`count(convert_from(plain, 'UTF8')::jsonb)\` (baseline for open) | $(workers baseline_bytea_to_jsonb) | $(ms baseline_bytea_to_jsonb) |
| \`count(akko_crypt.open_pii(sealed))\` | $(workers akko_open_pii) | $(ms akko_open_pii) |
| \`count(pgp_sym_decrypt(pgp, k))\` | $(workers pgcrypto_decrypt) | $(ms pgcrypto_decrypt) |
| \`count(pii::text::bytea)\` | $(workers baseline_text_to_bytea_parallel) | $(ms baseline_text_to_bytea_parallel) |
| \`count(convert_from(plain, 'UTF8')::jsonb)\` | $(workers baseline_bytea_to_jsonb_parallel) | $(ms baseline_bytea_to_jsonb_parallel) |

| ratio | measured | target |
|---|---:|---|
| seal_pii / baseline | $(ratio seal_vs_baseline) | at most 1.35 |
| open_pii / baseline | $(ratio open_vs_baseline) | at most 1.35 |
| pgcrypto encrypt / seal_pii | $(ratio pgcrypto_encrypt_vs_seal) | at least 3 |
| pgcrypto decrypt / open_pii | $(ratio pgcrypto_decrypt_vs_open) | at least 3 |
| seal_pii / baseline in its default plan | $(ratio seal_vs_parallel_baseline) | none (parallelism) |
| open_pii / baseline in its default plan | $(ratio open_vs_parallel_baseline) | none (parallelism) |
MD
echo "wrote $out"
