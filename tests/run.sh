#!/usr/bin/env bash
# Runs the test tiers against the extension installed into each PostgreSQL major given (15,
# 16, 17, 18; default 15): for each, the pg_regress suite (tests/sql, tests/expected) in a
# throwaway cluster, the isolation specs (tests/isolation), then the out-of-process checks of
# tests/integration.sh and upgrade.sh against the same cluster, and attacks/run.sh on a
# cluster of its own. On 15 also vault.sh, replica.sh, pgbouncer.sh, load.sh and, last
# because a SIGKILL restarts every backend, crash.sh against that cluster; leaks.sh runs the
# demo, readme.sh the README's examples and clients.sh real client libraries, on a cluster of
# their own each. Once, before them: the unit tests and a short fuzzing run of the pgrx-free
# core, which no major changes. After them, when 15 and a later major are both given,
# pg_upgrade.sh upgrades a 15 cluster to each later one; and packages.sh checks the packages
# of `make package` and `make dist`, installing the 15 one with dpkg.
#   tests/run.sh [MAJOR...]       (where each is installed: packaging/pg-config.sh MAJOR)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
majors=("${@:-15}")
base=${AKKO_TEST_DIR:-/tmp/akko_crypt_test}
port=${AKKO_TEST_PORT:-55439}
passed=0 failed=0
tally() { # tally NAME EXIT_CODE
    if [ "$2" -eq 0 ]; then passed=$((passed + 1)); echo "== $1: ok"; else failed=$((failed + 1)); echo "== $1: FAILED"; fi
}

cargo test -p akko_crypt_core -p akko_crypt_errors -p akko_crypt_vault --manifest-path "$here/../Cargo.toml" 2>&1 | grep -E "^test |test result|panicked|error"
tally "unit tests (akko_crypt_core, akko_crypt_errors, akko_crypt_vault)" "${PIPESTATUS[0]}"

"$here/fuzz.sh" "${AKKO_FUZZ_SECONDS:-15}"
tally "fuzzing, quick form (tests/fuzz.sh)" $?

# The tiers of each major run against its server, client programs and pg_regress.
path=$PATH
trap '"$here/cluster.sh" stop "$dir"' EXIT
for major in "${majors[@]}"; do
    pg_config=$("$here/../packaging/pg-config.sh" "$major")
    export PGBIN
    PGBIN=$("$pg_config" --bindir)
    export PATH="$PGBIN:$path"
    pg_regress=$(dirname "$("$pg_config" --pgxs)")/../test/regress/pg_regress
    dir=$base-$major
    "$here/cluster.sh" start "$dir" "$port"

    out="$dir/regress"
    mkdir -p "$out"
    (cd "$here" && "$pg_regress" --bindir="$PGBIN" --host="$dir" --port="$port" --user=postgres --inputdir=. \
        --outputdir="$out" --dbname=akko_regress --schedule=schedule)
    status=$?
    [ $status -eq 0 ] || cat "$out/regression.diffs"
    tally "$major: pg_regress (tests/sql)" $status

    # Concurrent sessions, step by step, with PostgreSQL's isolation tester.
    out="$dir/isolation"
    mkdir -p "$out"
    "$(dirname "$pg_regress")/../isolation/pg_isolation_regress" --bindir="$PGBIN" --host="$dir" --port="$port" --user=postgres \
        --inputdir="$here/isolation" --outputdir="$out" --dbname=akko_isolation --schedule="$here/isolation_schedule"
    status=$?
    [ $status -eq 0 ] || cat "$out/regression.diffs"
    tally "$major: isolation (tests/isolation)" $status

    "$here/integration.sh" "$dir" "$port"
    tally "$major: integration (tests/integration.sh)" $?

    "$here/upgrade.sh" "$dir" "$port"
    tally "$major: upgrade from the previous release (tests/upgrade.sh)" $?

    "$here/attacks/run.sh" "$dir-attacks" $((port + 7))
    tally "$major: attacks on the findings of issues 15, 16 and 17 (tests/attacks)" $?

    if [ "$major" = 15 ]; then
        "$here/vault.sh" "$dir" "$port" "${AKKO_BAO:-$here/../.venv/bin/bao}"
        tally "$major: vault (tests/vault.sh, a real OpenBao)" $?

        "$here/leaks.sh" "$dir" "$port"
        tally "$major: secret-leak scan of the demo (tests/leaks.sh)" $?

        "$here/readme.sh" "$dir-readme" $((port + 9))
        tally "$major: the README's quick start and table section, pasted in order (tests/readme.sh)" $?

        "$here/clients.sh" "$dir-clients" $((port + 11))
        tally "$major: psycopg 3, psycopg_pool and SQLAlchemy writing a text-mode table (tests/clients.sh)" $?

        "$here/replica.sh" "$dir" "$port"
        tally "$major: streaming replica (tests/replica.sh)" $?

        "$here/pgbouncer.sh" "$dir" "$port"
        tally "$major: pgbouncer, session and transaction pooling (tests/pgbouncer.sh)" $?

        "$here/load.sh" "$dir" "$port"
        tally "$major: load while keys rotate (tests/load.sh)" $?

        "$here/crash.sh" "$dir" "$port"
        tally "$major: crash recovery (tests/crash.sh, SIGKILL mid-job)" $?
    fi
    "$here/cluster.sh" stop "$dir"
done
export PATH=$path
unset PGBIN

later=()
for major in "${majors[@]}"; do [ "$major" = 15 ] || later+=("$major"); done
if [[ " ${majors[*]} " == *" 15 "* ]] && [ ${#later[@]} -gt 0 ]; then
    "$here/pg_upgrade.sh" "$base-pg_upgrade" "$port" "${later[@]}"
    tally "pg_upgrade from 15 to ${later[*]} (tests/pg_upgrade.sh)" $?
fi

"$here/packages.sh" "$base-packages" "$port" "${majors[@]}"
tally "packages: .deb per major, dpkg -i of 15's, PGXN archive (tests/packages.sh)" $?

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
