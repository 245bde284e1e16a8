#!/usr/bin/env bash
# Runs every test tier against the installed extension: unit tests and a short fuzzing run
# of the pgrx-free core, the pg_regress suite (tests/sql, tests/expected) in a throwaway
# PostgreSQL 15 cluster, the isolation specs (tests/isolation), then the out-of-process
# checks of tests/integration.sh, upgrade.sh, vault.sh, replica.sh, pgbouncer.sh, load.sh
# and, last because a SIGKILL restarts every backend, crash.sh, all against the same
# cluster; leaks.sh runs the demo, attacks/run.sh its attacks, readme.sh the README's
# examples and clients.sh real client libraries, on a cluster of their own each.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dir=${AKKO_TEST_DIR:-/tmp/akko_crypt_test}
port=${AKKO_TEST_PORT:-55439}
pg_regress=$(dirname "$(pg_config --pgxs)")/../test/regress/pg_regress
passed=0 failed=0
tally() { # tally NAME EXIT_CODE
    if [ "$2" -eq 0 ]; then passed=$((passed + 1)); echo "== $1: ok"; else failed=$((failed + 1)); echo "== $1: FAILED"; fi
}

cargo test -p akko_crypt_core -p akko_crypt_errors -p akko_crypt_vault --manifest-path "$here/../Cargo.toml" 2>&1 | grep -E "^test |test result|panicked|error"
tally "unit tests (akko_crypt_core, akko_crypt_errors, akko_crypt_vault)" "${PIPESTATUS[0]}"

"$here/fuzz.sh" "${AKKO_FUZZ_SECONDS:-15}"
tally "fuzzing, quick form (tests/fuzz.sh)" $?

"$here/cluster.sh" start "$dir" "$port"
trap '"$here/cluster.sh" stop "$dir"' EXIT

out="$dir/regress"
mkdir -p "$out"
(cd "$here" && "$pg_regress" --host="$dir" --port="$port" --user=postgres --inputdir=. \
    --outputdir="$out" --dbname=akko_regress --schedule=schedule)
status=$?
[ $status -eq 0 ] || cat "$out/regression.diffs"
tally "pg_regress (tests/sql)" $status

# Concurrent sessions, step by step, with PostgreSQL's isolation tester.
out="$dir/isolation"
mkdir -p "$out"
"$(dirname "$pg_regress")/../isolation/pg_isolation_regress" --host="$dir" --port="$port" --user=postgres \
    --inputdir="$here/isolation" --outputdir="$out" --dbname=akko_isolation --schedule="$here/isolation_schedule"
status=$?
[ $status -eq 0 ] || cat "$out/regression.diffs"
tally "isolation (tests/isolation)" $status

"$here/integration.sh" "$dir" "$port"
tally "integration (tests/integration.sh)" $?

"$here/upgrade.sh" "$dir" "$port"
tally "upgrade from the previous release (tests/upgrade.sh)" $?

"$here/vault.sh" "$dir" "$port" "${AKKO_BAO:-$here/../.venv/bin/bao}"
tally "vault (tests/vault.sh, a real OpenBao)" $?

"$here/leaks.sh" "$dir" "$port"
tally "secret-leak scan of the demo (tests/leaks.sh)" $?

"$here/attacks/run.sh" "$dir-attacks" $((port + 7))
tally "attacks on the findings of issues 15, 16 and 17 (tests/attacks)" $?

"$here/readme.sh" "$dir-readme" $((port + 9))
tally "the README's quick start and table section, pasted in order (tests/readme.sh)" $?

"$here/clients.sh" "$dir-clients" $((port + 11))
tally "psycopg 3, psycopg_pool and SQLAlchemy writing a text-mode table (tests/clients.sh)" $?

"$here/replica.sh" "$dir" "$port"
tally "streaming replica (tests/replica.sh)" $?

"$here/pgbouncer.sh" "$dir" "$port"
tally "pgbouncer, session and transaction pooling (tests/pgbouncer.sh)" $?

"$here/load.sh" "$dir" "$port"
tally "load while keys rotate (tests/load.sh)" $?

"$here/crash.sh" "$dir" "$port"
tally "crash recovery (tests/crash.sh, SIGKILL mid-job)" $?

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
