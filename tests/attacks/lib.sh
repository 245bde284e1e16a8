# Shared by the attack cases (sourced by run.sh, which sets dir and port).
. "$(dirname "${BASH_SOURCE[0]}")/../checks.sh"
# run_as ROLE DB -c SQL...: what the statements print, errors with their SQLSTATE.
run_as() {
    local role=$1 db=$2; shift 2
    psql -X -q -A -t -h "$dir" -p "$port" -U "$role" -c '\set VERBOSITY verbose' "$@" "$db" 2>&1
}
# keyed_as ROLE DB -c SQL...: the same, with the tests' root key in the startup packet.
keyed_as() { PGOPTIONS="-c akko_crypt.key=$root" run_as "$@"; }
# new_db DB: a database with the extension, made by the superuser.
new_db() { psql_ -c "CREATE DATABASE $1" postgres && psql_ -c "CREATE EXTENSION akko_crypt" "$1"; }
# refused CODE OUTPUT: OUTPUT holds an error with SQLSTATE CODE.
refused() { grep -q "ERROR:  $1:" <<<"$2"; }
# The server's major; force_parallel_mode is named debug_parallel_query from 16 on.
server_major=$(psql_ -c "SELECT current_setting('server_version_num')::int / 10000" postgres)
force_parallel=debug_parallel_query
[ "$server_major" -ge 16 ] || force_parallel=force_parallel_mode
# Forces the next parallel plans to run in workers only.
parallel_only="SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0;
SET $force_parallel = on; SET parallel_leader_participation = off;"
