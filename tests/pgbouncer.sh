#!/usr/bin/env bash
# Debian's pgbouncer in front of the test cluster, one server connection per pool so that
# clients take turns on the same backend. Session mode with server_reset_query = DISCARD
# ALL: the next client never inherits the key. Transaction mode with the documented
# per-transaction pattern, set_config('akko_crypt.key', $1, true): the key works inside
# the transaction and is gone after it, for the same client and for the next.
#   tests/pgbouncer.sh DIR PORT     (against the running test cluster)
set -uo pipefail
dir=$1 port=$2
. "$(dirname "$0")/checks.sh"
bouncer="$dir-pgbouncer" bport=$((port + 4))
rm -rf "$bouncer"
mkdir -p "$bouncer"
echo '"postgres" ""' >"$bouncer/users.txt"
cat >"$bouncer/pgbouncer.ini" <<INI
[databases]
akko_session = host=$dir port=$port dbname=akko_pool pool_mode=session
akko_transaction = host=$dir port=$port dbname=akko_pool pool_mode=transaction
[pgbouncer]
listen_addr =
listen_port = $bport
unix_socket_dir = $bouncer
auth_type = trust
auth_file = $bouncer/users.txt
default_pool_size = 1
server_reset_query = DISCARD ALL
logfile = $bouncer/pgbouncer.log
pidfile = $bouncer/pgbouncer.pid
INI
chown -R postgres: "$bouncer"
bouncer_psql() { psql -X -q -A -t -h "$bouncer" -p "$bport" -U postgres "$@"; }

psql_ -c "CREATE DATABASE akko_pool" postgres
keyed akko_pool "CREATE EXTENSION akko_crypt; CREATE TABLE sealed AS SELECT akko_crypt.seal_pii('{\"n\": 1}') AS v" >/dev/null
sudo -u postgres pgbouncer -d "$bouncer/pgbouncer.ini"
trap 'kill "$(cat "$bouncer/pgbouncer.pid")" 2>/dev/null' EXIT
for _ in $(seq 50); do [ -S "$bouncer/.s.PGSQL.$bport" ] && break; sleep 0.1; done

# Session mode: a client loads the key and leaves; the next client gets the same backend.
first=$(bouncer_psql -c "SELECT set_config('akko_crypt.key', '$root', false) IS NULL" \
    -c "SELECT pg_backend_pid(), akko_crypt.open_pii(v) ->> 'n' FROM sealed" akko_session | tail -1)
check "session mode: the client with the key opens ($first)" [ "${first#*|}" = 1 ]
second=$(bouncer_psql -c "SELECT pg_backend_pid(), current_setting('akko_crypt.key')" akko_session)
check "session mode: the next client is on the same backend, which holds no key after DISCARD ALL" \
    [ "$second" = "${first%|*}|" ]
check "session mode: the next client cannot open" \
    bash -c "psql -X -q -h '$bouncer' -p $bport -U postgres -c 'SELECT akko_crypt.open_pii(v) FROM sealed' akko_session 2>&1 |
             grep -q 'no akko_crypt key is loaded'"

# Transaction mode: the key for one transaction only.
inside=$(bouncer_psql -c "BEGIN" -c "SELECT set_config('akko_crypt.key', '$root', true) IS NULL" \
    -c "SELECT pg_backend_pid(), akko_crypt.open_pii(v) ->> 'n' FROM sealed" -c "COMMIT" akko_transaction | sed -n 2p)
check "transaction mode: the key opens inside its transaction ($inside)" [ "${inside#*|}" = 1 ]
after=$(bouncer_psql -c "BEGIN" -c "SELECT set_config('akko_crypt.key', '$root', true) IS NULL" -c "COMMIT" \
    -c "SELECT pg_backend_pid(), current_setting('akko_crypt.key')" akko_transaction | tail -1)
check "transaction mode: after COMMIT the same client's next transaction holds no key" [ "$after" = "${inside%|*}|" ]
next=$(bouncer_psql -c "SELECT pg_backend_pid(), current_setting('akko_crypt.key')" akko_transaction)
check "transaction mode: the next client, on the same backend, holds no key" [ "$next" = "${inside%|*}|" ]
check "transaction mode: a rolled-back transaction leaves no key either" \
    bash -c "psql -X -q -h '$bouncer' -p $bport -U postgres -c 'BEGIN' \
                  -c \"SELECT set_config('akko_crypt.key', '$root', true)\" -c 'ROLLBACK' \
                  -c 'SELECT akko_crypt.open_pii(v) FROM sealed' akko_transaction 2>&1 | grep -q 'no akko_crypt key is loaded'"
check "pgbouncer's log holds no key" bash -c "! grep -qF '$root' '$bouncer/pgbouncer.log'"

echo "pgbouncer: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
