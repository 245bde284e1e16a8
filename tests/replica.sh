#!/usr/bin/env bash
# A streaming replica on loopback: pg_basebackup of the test cluster into a second cluster
# that follows it. The standby's data files and WAL hold no plaintext, a session on the
# standby with the key opens the data, and a key rotation on the primary reaches it.
#   tests/replica.sh DIR PORT     (against the running test cluster, as its primary)
set -uo pipefail
dir=$1 port=$2
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
. "$(dirname "$0")/checks.sh"
standby="$dir-standby" sport=$((port + 3))
spsql() { psql -X -q -A -t -h "$standby" -p "$sport" -U postgres "$@"; }
skeyed() { # skeyed SQL: runs SQL on the standby's copy of akko_replica with the key loaded
    spsql -c "SELECT set_config('akko_crypt.key', '$root', false) IS NULL" -c "$1" akko_replica | tail -n +2
}
caught_up() { # waits until the standby has replayed everything the primary wrote
    local target
    target=$(psql_ -c "SELECT pg_current_wal_lsn()" postgres)
    for _ in $(seq 150); do
        [ "$(spsql -c "SELECT pg_last_wal_replay_lsn() >= '$target'" postgres 2>/dev/null)" = t ] && return 0
        sleep 0.2
    done
    return 1
}
holds() { grep -rqaF -- "$1" "$2"; } # holds TEXT DIR: a file under DIR contains TEXT
holds_no() { ! holds "$1" "$2"; }
marker="replica-plaintext-$$-$RANDOM"

psql_ -c "CREATE DATABASE akko_replica" postgres
keyed akko_replica "CREATE EXTENSION akko_crypt;
    CREATE TABLE people (id int PRIMARY KEY, name text, notes jsonb);
    SELECT akko_crypt.protect('people', 'name'), akko_crypt.protect('people', 'notes', mode => 'jsonb');
    SELECT akko_crypt.create_view('people');
    INSERT INTO people_decrypted VALUES (1, '$marker-before', '{\"n\": \"$marker-before\"}')" >/dev/null

rm -rf "$standby"
mkdir -p "$standby"
chown postgres: "$standby"
sudo -u postgres "$PGBIN/pg_basebackup" -h "$dir" -p "$port" -U postgres -D "$standby/data" -R -X stream >/dev/null
cat >>"$standby/data/postgresql.conf" <<CONF
port = $sport
unix_socket_directories = '$standby'
CONF
sudo -u postgres env -u RUST_BACKTRACE "$PGBIN/pg_ctl" -D "$standby/data" -l "$standby/server.log" -w start >/dev/null
trap 'sudo -u postgres "$PGBIN/pg_ctl" -D "$standby/data" -m fast -w stop >/dev/null' EXIT
check "the standby runs in recovery, streaming from the primary" \
    [ "$(spsql -c "SELECT pg_is_in_recovery()" postgres)" = t ]

# Rows written after the base backup reach the standby through the WAL stream alone.
keyed akko_replica "INSERT INTO people_decrypted SELECT i, '$marker-' || i, jsonb_build_object('n', '$marker-' || i)
    FROM generate_series(2, 500) i" >/dev/null
psql_ -c "CHECKPOINT" postgres >/dev/null
check "the standby caught up with the primary" caught_up
spsql -c "CHECKPOINT" postgres >/dev/null
check "the standby's data files and WAL hold no plaintext" holds_no "$marker" "$standby/data"
check "the primary's data files and WAL hold no plaintext" holds_no "$marker" "$dir/data"
# The control: the same search finds a value that is not protected.
psql_ -c "CREATE TABLE unprotected (t text); INSERT INTO unprotected VALUES ('$marker-control'); CHECKPOINT" akko_replica >/dev/null
caught_up
check "control: an unprotected value is found in the standby's files" holds "$marker-control" "$standby/data"
expected="CASE WHEN d.id = 1 THEN '$marker-before' ELSE '$marker-' || d.id END"
opened=$(skeyed "SELECT count(*) FILTER (WHERE d.name = $expected), count(*) FILTER (WHERE d.notes ->> 'n' = $expected) FROM people_decrypted d")
check "a session on the standby with the key opens every value" [ "$opened" = "500|500" ]
check "a session on the standby without the key gets 55000" \
    bash -c "psql -X -q -h '$standby' -p $sport -U postgres -c 'SELECT name FROM people_decrypted' akko_replica 2>&1 | grep -q 'no akko_crypt key is loaded'"

# A rotation and a re-encryption on the primary: the standby opens the values under the new key.
psql_ -c "SELECT set_config('akko_crypt.key', '$root', false) IS NULL" -c "SELECT akko_crypt.rotate_key('identity')" \
    -c "CALL akko_crypt.reencrypt('people', 'name')" akko_replica >/dev/null 2>&1
check "the rotation reached the standby" caught_up
rotated=$(skeyed "SELECT count(*) FILTER (WHERE get_byte(p.name, 9) = 2 AND d.name = $expected)
    FROM people p JOIN people_decrypted d USING (id)")
check "the standby opens every value re-encrypted under the new key version" [ "$rotated" = 500 ]

echo "replica: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
