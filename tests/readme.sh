#!/usr/bin/env bash
# The README as a newcomer pastes it: the ```sql blocks of "Quick start" and "Protecting a
# table", in order, as one psql script with ON_ERROR_STOP, taking the root key from the psql
# variable `key` as the README says, in a new database of a cluster of its own. Then checks
# that what the README says happened did.
#   tests/readme.sh [DIR] [PORT]
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dir=${1:-/tmp/akko_crypt_readme} port=${2:-55448}
"$here/cluster.sh" start "$dir" "$port"
trap '"$here/cluster.sh" stop "$dir"' EXIT
. "$here/checks.sh"

# The sql blocks of one "## " section of the README, in order.
sql_blocks() {
    awk -v section="## $1" '
        /^## / { inside = ($0 == section) }
        inside && /^```/ { if (block) { block = 0; next } if ($0 == "```sql") { block = 1; next } }
        inside && block' "$here/../README.md"
}
script="$dir/readme.sql"
{ sql_blocks "Quick start"; sql_blocks "Protecting a table"; } >"$script"
check "the two sections hold psql input ($(grep -c ';' "$script") statements)" [ "$(grep -c ';' "$script")" -gt 20 ]
psql_ -c "CREATE DATABASE mydb" postgres >/dev/null
key=$(openssl rand -base64 32)
out=$(psql -X -h "$dir" -p "$port" -U postgres -v ON_ERROR_STOP=1 -v key="$key" -f "$script" mydb 2>&1)
status=$?
check "pasted in order, every statement runs (ON_ERROR_STOP)" [ $status -eq 0 ]
[ $status -eq 0 ] || tail -5 <<<"$out"
check "SHOW akko_crypt.key printed the fingerprint, never the key" \
    bash -c '! grep -qF "$1" <<<"$2" && grep -qE "^ [0-9a-f]{16}$" <<<"$2"' _ "$key" "$out"
check "the quick start's value opened: ada@example.com" grep -q "ada@example.com" <<<"$out"
keyed_with() { psql -X -q -A -t -h "$dir" -p "$port" -U postgres -c "SELECT set_config('akko_crypt.key', '$key', false)" "$@" mydb | tail -n +2; }
check "customers holds envelopes only: no tax id, date or email in clear" \
    [ "$(psql_ -c "SELECT count(*) FROM customers WHERE position('123-45'::bytea IN tax_id) + position('987-65'::bytea IN tax_id) + position('example.com'::bytea IN email) + position('1815-12'::bytea IN dob) + position('1906-12'::bytea IN dob) > 0" mydb)" = 0 ]
check "the view reads both customers back" \
    [ "$(keyed_with -c "SELECT string_agg(name || ' ' || tax_id || ' ' || dob || ' ' || email, '; ' ORDER BY id) FROM customers_decrypted")" = \
      "Grace 987-65-4321 1906-12-09 grace@example.com; Ada 123-45-6789 1815-12-10 ada@example.com" ]
check "the blind-index lookup found Ada, whatever the case" \
    [ "$(keyed_with -c "SELECT id FROM customers WHERE email_bidx = akko_crypt.blind_index('ADA@example.com ', 'customers', 'email')")" = 2 ]
check "events.pii is protected in jsonb mode, the default for jsonb" \
    [ "$(psql_ -c "SELECT mode FROM akko_crypt.protected_columns WHERE tbl = 'events'::regclass" mydb)" = jsonb ]
check "suppliers migrated: 100,000 rows sealed, none left in clear" \
    [ "$(psql_ -c "SELECT state || ' ' || migrated FROM akko_crypt.protected_columns WHERE tbl = 'suppliers'::regclass" mydb)" = "protected 100000" ]
check "accounts (text mode): one row, its upserts sealed, the second updated Ada's iban" \
    [ "$(keyed_with -c "SELECT count(*) || ' ' || string_agg(iban, '') FROM accounts_decrypted")|$(psql_ -c "SELECT count(*) FROM accounts WHERE email LIKE '\$akko:%' AND iban LIKE '\$akko:%'" mydb)" = "1 GB29 NWBK 6016 1331 9268 19|1" ]
echo "readme: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
