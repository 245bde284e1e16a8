#!/usr/bin/env bash
# Crash recovery: the backend running a column migration, then one running a reencrypt,
# killed with SIGKILL. PostgreSQL then restarts every backend and replays the WAL; the job
# resumes where its last committed batch left it, and every value opens.
#   tests/crash.sh DIR PORT     (the last tier: a SIGKILL restarts every backend)
set -uo pipefail
dir=$1 port=$2
. "$(dirname "$0")/checks.sh"
server_is_back() {
    for _ in $(seq 150); do
        psql_ -c "SELECT 1" postgres >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    return 1
}
kill_job_after_progress() { # DB PROGRESS_SQL: SIGKILLs the backend running CALL akko_crypt.* once PROGRESS_SQL > 0
    local progress=0 pid
    for _ in $(seq 400); do
        progress=$(psql_ -c "$2" "$1" 2>/dev/null)
        [ "${progress:-0}" -gt 0 ] && break
        sleep 0.02
    done
    pid=$(psql_ -c "SELECT pid FROM pg_stat_activity WHERE datname = '$1' AND query LIKE 'CALL akko_crypt.%'" postgres)
    [ -n "$pid" ] && kill -KILL "$pid"
    echo "${progress:-0}"
}
in_log() { grep -c "$1" "$dir/server.log"; }
crash_during() { # crash_during JOB DB CALL PROGRESS_SQL: runs CALL, SIGKILLs its backend once PROGRESS_SQL > 0
    local job=$1 db=$2 kills recoveries progress runner
    kills=$(in_log "was terminated by signal 9") recoveries=$(in_log "automatic recovery in progress")
    keyed "$db" "$3" >"$dir/crash_$job.txt" 2>&1 &
    runner=$!
    progress=$(kill_job_after_progress "$db" "$4")
    wait $runner
    check "a $job was under way when its backend was killed ($progress committed)" [ "$progress" -gt 0 ]
    check "the server came back after the SIGKILL" server_is_back
    check "the server log shows the $job's backend killed by signal 9" [ "$(in_log "was terminated by signal 9")" -gt "$kills" ]
    check "the server replayed its WAL to recover" [ "$(in_log "automatic recovery in progress")" -gt "$recoveries" ]
}

psql_ -c "CREATE DATABASE akko_crash" postgres
psql_ -c "CREATE EXTENSION akko_crypt" akko_crash

# A populated plaintext column migrating in small batches.
rows=300000
keyed akko_crash "CREATE TABLE m (id int PRIMARY KEY, ssn text NOT NULL);
    INSERT INTO m SELECT i, lpad(i::text, 9, '0') FROM generate_series(1, $rows) i;
    SELECT akko_crypt.protect('m', 'ssn', migrate => false)" >/dev/null
crash_during migration akko_crash "CALL akko_crypt.migrate('m', 500)" \
    "SELECT migrated FROM akko_crypt.protected_columns WHERE tbl = 'm'::regclass"
left=$(psql_ -c "SELECT state, migrated < $rows FROM akko_crypt.protected_columns WHERE tbl = 'm'::regclass" akko_crash)
check "the killed migration is recorded part-way" [ "$left" = "migrating|t" ]
keyed akko_crash "CALL akko_crypt.migrate('m', 20000)" >/dev/null
after=$(keyed akko_crash "SELECT p.state, (SELECT count(*) FROM m), (SELECT count(*) FROM m WHERE akko_crypt.open_text(ssn) = lpad(id::text, 9, '0')),
                                 (SELECT count(*) FROM pg_attribute WHERE attrelid = 'm'::regclass AND attname = 'ssn_akko_plain' AND NOT attisdropped)
                          FROM akko_crypt.protected_columns p WHERE p.tbl = 'm'::regclass")
check "the resumed migration finishes: every row there, sealed and opening, the plaintext column gone" [ "$after" = "protected|$rows|$rows|0" ]

# A reencrypt after a rotation, in batches of 100.
keyed akko_crash "CREATE TABLE r (id int PRIMARY KEY, v bytea);
    INSERT INTO r SELECT i, akko_crypt.seal_pii(jsonb_build_object('id', i)) FROM generate_series(1, 100000) i;
    SELECT akko_crypt.rotate_key('identity')" >/dev/null
crash_during reencrypt akko_crash "CALL akko_crypt.reencrypt('r', 'v', batch_size => 100)" \
    "SELECT coalesce(sum(sealed), 0) FROM akko_crypt.batch_runs WHERE job = 'reencrypt' AND finished_at IS NULL"
check "status() reports the killed run as interrupted" \
    [ "$(psql_ -c "SELECT r ->> 'state' FROM jsonb_array_elements(akko_crypt.status() -> 'runs') r WHERE r ->> 'job' = 'reencrypt' AND r ->> 'table' = 'public.r'" akko_crash)" = interrupted ]
keyed akko_crash "CALL akko_crypt.reencrypt('r', 'v', batch_size => 5000)" >/dev/null 2>&1
after=$(keyed akko_crash "SELECT count(*), count(*) FILTER (WHERE get_byte(v, 9) = 2),
                                 count(*) FILTER (WHERE (akko_crypt.open_pii(v) ->> 'id')::int = id) FROM r")
check "the resumed reencrypt finishes: every value under the new version and opening" [ "$after" = "100000|100000|100000" ]

echo "crash: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
