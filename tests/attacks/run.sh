#!/usr/bin/env bash
# The attack tier: each finding of issues 15 and 16, tried the way an attacker or an ordinary
# application would, with variants, on a cluster of its own that logs every statement,
# duration and bound parameter in full, records utility statements in pg_stat_statements
# and can replicate logically. Every case asserts that the attack fails, beside a control
# that shows what it aimed at was there to take.
#   tests/attacks/run.sh [DIR] [PORT]
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dir=${1:-/tmp/akko_crypt_attacks} port=${2:-55470}
export AKKO_CLUSTER_SETTINGS="log_min_duration_statement = 0
log_parameter_max_length = -1
log_parameter_max_length_on_error = -1
wal_level = logical
max_wal_senders = 4
max_replication_slots = 4"
"$here/../cluster.sh" start "$dir" "$port" akko_crypt,pg_stat_statements
trap '"$here/../cluster.sh" stop "$dir"' EXIT
. "$here/lib.sh"
for case in "$here"/${AKKO_ATTACKS:-[0-9]}*.sh; do  # AKKO_ATTACKS=04 runs one case
    echo "# $(basename "$case")"
    . "$case"
done
echo "attacks: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
