#!/usr/bin/env bash
# Starts or stops a throwaway PostgreSQL cluster owned by the postgres OS user (the server
# refuses to run as root), listening only on a Unix socket inside DIR; init makes one without
# starting it. The server is PGBIN's (default Debian's PostgreSQL 15).
#   tests/cluster.sh start|init DIR PORT [preload]   preload: shared_preload_libraries (default akko_crypt)
#   tests/cluster.sh stop DIR
# AKKO_CLUSTER_SETTINGS, if set, is appended to postgresql.conf (a later line wins), and
# AKKO_INITDB_OPTIONS passed to initdb.
set -euo pipefail
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
action=$1 dir=$2

case "$action" in
start | init)
    port=$3 preload=${4-akko_crypt}
    if [ -f "$dir/data/postmaster.pid" ]; then "$0" stop "$dir"; fi
    rm -rf "$dir"
    mkdir -p "$dir"
    chown postgres: "$dir"
    sudo -u postgres "$PGBIN/initdb" -D "$dir/data" -U postgres -A trust --no-sync ${AKKO_INITDB_OPTIONS:-} >/dev/null
    cat >>"$dir/data/postgresql.conf" <<CONF
port = $port
listen_addresses = ''
unix_socket_directories = '$dir'
shared_preload_libraries = '$preload'
fsync = off
log_statement = 'all'
log_min_messages = debug1
log_line_prefix = '%m [%p] %q%u@%d '
${AKKO_CLUSTER_SETTINGS:-}
CONF
    [ "$action" = start ] || exit 0
    # No backtraces in the server: every error would otherwise grow one.
    sudo -u postgres env -u RUST_BACKTRACE "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w start >/dev/null
    ;;
stop)
    if [ -f "$dir/data/postmaster.pid" ]; then
        sudo -u postgres "$PGBIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
    fi
    ;;
*)
    echo "usage: $0 start|init DIR PORT [preload] | stop DIR" >&2
    exit 2
    ;;
esac
