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
# The Reference lists what the catalog has, no more, no less, in a database of its own.
# README_FILE points these checks at another copy of the README (to see that they can fail).
readme=${README_FILE:-$here/../README.md}
psql_ -c "CREATE DATABASE reference" postgres >/dev/null
psql_ -c "CREATE EXTENSION akko_crypt" reference >/dev/null
# The table rows of one "### " subsection of "## Reference", without header or rule.
reference_rows() {
    awk -v part="### $1" '
        /^## / { inside = ($0 == "## Reference"); here = 0; next }
        inside && /^### / { here = ($0 == part); next }
        inside && here && /^\| / && !/^\| (function|setting) \|/' "$readme"
}
# The first cell of each row, without its backquotes.
first_cells() { reference_rows "$1" | awk -F' [|] ' '{ sub(/^[|] `/, "", $1); sub(/`$/, "", $1); print $1 }'; }
function_names() { grep -oE 'akko_crypt\.[a-z0-9_]+\(' | sed 's/^akko_crypt\.//; s/($//'; }
# covers WHAT LISTED ACTUAL: every line of ACTUAL is in LISTED; within: every line of LISTED
# is in ACTUAL (and LISTED is not empty); same: both. Each prints what is missing.
covers() {
    local missing
    missing=$(comm -13 <(sort -u <<<"$2") <(sort -u <<<"$3") | paste -sd' ')
    [ -z "$missing" ] || echo "#   in the catalog, not in the Reference's $1: $missing"
    [ -z "$missing" ]
}
within() {
    local extra
    extra=$(comm -23 <(sort -u <<<"$2") <(sort -u <<<"$3") | paste -sd' ')
    [ -z "$extra" ] || echo "#   in the Reference's $1, not in the catalog: $extra"
    [ -n "$2" ] && [ -z "$extra" ]
}
same() { local ok=0; covers "$@" || ok=1; within "$@" || ok=1; return $ok; }

catalog_functions=$(psql_ -c "SELECT DISTINCT proname FROM pg_proc WHERE pronamespace = 'akko_crypt'::regnamespace" reference)
listed_functions=$(first_cells Functions | function_names)
check "every function of schema akko_crypt ($(wc -l <<<"$catalog_functions") names) is in the Reference's Functions tables" \
    covers "functions" "$listed_functions" "$catalog_functions"
check "every function the Functions tables list is in pg_proc" \
    within "functions" "$listed_functions" "$catalog_functions"
# Signatures as the catalog gives them, without the casts of defaults; a procedure as CALL,
# its INOUT argument as what it returns.
catalog_signatures=$(psql_ reference <<'SQL'
SELECT CASE WHEN prokind = 'p'
    THEN 'CALL akko_crypt.' || proname || '(' || regexp_replace(args, ', INOUT (\w+ \w+) DEFAULT NULL$', '') || ') → ' || substring(args FROM ', INOUT (\w+ \w+) DEFAULT NULL$')
    ELSE 'akko_crypt.' || proname || '(' || args || ') → ' || pg_get_function_result(oid) END
FROM (SELECT p.oid, p.proname, p.prokind,
             regexp_replace(regexp_replace(pg_get_function_arguments(p.oid), '::[a-z ]+(,|$)', '\1', 'g'), '(^|, )IN ', '\1', 'g') AS args
      FROM pg_proc p WHERE p.pronamespace = 'akko_crypt'::regnamespace) f
SQL
)
check "each signature in the Functions tables is the catalog's, every overload listed ($(wc -l <<<"$catalog_signatures"))" \
    same "signatures" "$(first_cells Functions)" "$catalog_signatures"
catalog_public=$(psql_ -c "SELECT DISTINCT proname FROM pg_proc WHERE pronamespace = 'akko_crypt'::regnamespace AND has_function_privilege('public', oid, 'EXECUTE')" reference)
listed_public=$(reference_rows Functions | awk -F' [|] ' '$NF == "PUBLIC |"' | function_names)
check "the rows saying PUBLIC are the functions PUBLIC may execute ($(paste -sd' ' <<<"$catalog_public"))" \
    same "PUBLIC functions" "$listed_public" "$catalog_public"

catalog_settings=$(psql_ -c "SELECT name FROM pg_settings WHERE name LIKE 'akko\_crypt.%'" reference)
listed_settings=$(first_cells Settings)
check "the library is preloaded: pg_settings has akko_crypt's settings ($(wc -l <<<"$catalog_settings"))" \
    [ "$(wc -l <<<"$catalog_settings")" -gt 10 ]
check "every akko_crypt.* setting in pg_settings is in the Reference's Settings table" \
    covers "settings" "$listed_settings" "$catalog_settings"
# The prefix is reserved, so current_setting(name, true) is NULL for any name akko_crypt did
# not define, and not NULL for one it hides from pg_settings (akko_crypt.key).
defined_settings=$(for name in $(grep -xE 'akko_crypt\.[a-z0-9_]+' <<<"$listed_settings"); do
    [ "$(psql_ -c "SELECT current_setting('$name', true) IS NOT NULL" reference)" = t ] && echo "$name"
done)
check "every setting the Settings table lists exists (current_setting)" \
    within "settings" "$listed_settings" "$defined_settings"
# Type, default (as SHOW prints it, in lower case; "empty") and context of each row, against
# pg_settings; a row for a setting absent from it must say it is hidden.
hidden='^Hidden from `SHOW ALL` and `pg_settings`'
catalog_attributes=$(psql_ -F ' | ' -c "SELECT name, vartype, CASE current_setting(name) WHEN '' THEN 'empty' ELSE lower(current_setting(name)) END, context FROM pg_settings WHERE name LIKE 'akko\_crypt.%'" reference)
listed_attributes=$(reference_rows Settings | awk -F' [|] ' -v hidden="$hidden" '$5 !~ hidden { sub(/^[|] /, "", $1); print $1 " | " $2 " | " $3 " | " $4 }' | tr -d '`')
hidden_settings=$(reference_rows Settings | awk -F' [|] ' -v hidden="$hidden" '$5 ~ hidden { sub(/^[|] /, "", $1); print $1 }' | tr -d '`')
attributes_match() {
    local shown
    shown=$(comm -12 <(sort -u <<<"$hidden_settings") <(sort -u <<<"$catalog_settings") | paste -sd' ')
    [ -z "$shown" ] || echo "#   said hidden, but in pg_settings: $shown"
    [ -z "$shown" ] && same "settings rows" "$listed_attributes" "$catalog_attributes"
}
check "each setting's type, default and context are pg_settings' (those said hidden, $(paste -sd' ' <<<"$hidden_settings"), are not in it)" \
    attributes_match
echo "readme: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
