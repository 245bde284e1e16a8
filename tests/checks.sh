# Shared by the out-of-process test tiers (sourced; they set dir and port first): psql
# against the test cluster, with and without the tests' root key, and a check that counts
# passes and failures.
psql_() { psql -X -q -A -t -h "$dir" -p "$port" -U postgres "$@"; }
passed=0 failed=0
check() { # check NAME COMMAND...: passes when COMMAND succeeds
    local name=$1; shift
    if "$@"; then passed=$((passed + 1)); echo "ok - $name"; else failed=$((failed + 1)); echo "not ok - $name"; fi
}
root=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
keyed() { # keyed DB SQL: runs SQL in DB with the root key loaded, prints its rows
    psql_ -c "SELECT set_config('akko_crypt.key', '$root', false) IS NULL" -c "$2" "$1" | tail -n +2
}
